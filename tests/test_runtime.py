"""The worker's runtime set-up: JAX's persistent compilation cache."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

PROBE = """
import json
from hyperfcn.runtime import configure_runtime
configure_runtime(1, 0)
import jax
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir,
                  "max": jax.config.jax_compilation_cache_max_size,
                  "min_s": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def _run_under_jax(code: str, tmp_path, **env) -> str:
    """Run code in a fresh JAX process with no JAX settings but env's; its last line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**clean, "KERAS_BACKEND": "jax",
                              "XDG_CACHE_HOME": str(tmp_path), **env}, check=True)
    return out.stdout.strip().splitlines()[-1]


def _probe(tmp_path, **env) -> dict:
    return json.loads(_run_under_jax(PROBE, tmp_path, **env))


@pytest.mark.integration
def test_jax_trials_share_a_compilation_cache_in_the_users_cache_folder(tmp_path):
    got = _probe(tmp_path)
    assert got["dir"] == str(tmp_path / "hyperfcn" / "jax")
    assert got["max"] == 2 << 30
    # weight initialisers compile in 0.1-0.5 s each: JAX's default 1 s would skip them
    assert got["min_s"] == 0.1


@pytest.mark.integration
def test_the_users_own_jax_cache_settings_win(tmp_path):
    got = _probe(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"),
                 JAX_COMPILATION_CACHE_MAX_SIZE="1000",
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")
    assert got == {"dir": str(tmp_path / "mine"), "max": 1000, "min_s": 2.0}


@pytest.mark.integration
def test_a_reused_jax_worker_forgets_what_earlier_trials_compiled(tmp_path):
    probe = """
from hyperfcn.runtime import configure_runtime, forget_compiled
configure_runtime(1, 0)
import jax
f = jax.jit(lambda x: x + 1)
f(1.0)
before = f._cache_size()
forget_compiled()
print(before, f._cache_size())
"""
    assert _run_under_jax(probe, tmp_path).split() == ["1", "0"]


@pytest.mark.integration
def test_a_reused_jax_worker_keeps_what_the_same_program_compiled(tmp_path):
    """A trial that compiles what the last one did (another learning rate) finds it in
    memory; a trial of another architecture starts with the caches cleared."""
    probe = """
from hyperfcn.runtime import configure_runtime, forget_compiled
configure_runtime(1, 0)
import jax
f = jax.jit(lambda x: x + 1)
sizes = []
for program in ("a", "a", "b"):
    forget_compiled(program)
    sizes.append(f._cache_size())
    f(1.0)
print(*sizes)
"""
    assert _run_under_jax(probe, tmp_path).split() == ["0", "1", "0"]
