"""The local Ray session is always hyperfcn's own."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("ray")


@pytest.mark.integration
def test_a_dead_cluster_left_by_ray_start_is_not_joined(tmp_path):
    """`ray start` leaves its address behind (RAY_ADDRESS, /tmp/ray/ray_current_cluster);
    ray.init() without an address would try to join it and hang when it is gone."""
    code = ("from hyperfcn import session; r = session.start(num_cpus=1); "
            "print('cpus', r['cpus']); session.shutdown()")
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}  # nothing listens there
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cpus 1.0" in r.stdout


@pytest.mark.integration
@pytest.mark.parametrize("user,want", [(None, "2"), ("4", "4")])
def test_workers_start_with_few_malloc_arenas_unless_the_user_set_them(user, want):
    """A reused worker stays flat only with few malloc arenas (benchmarks/memory.py); glibc
    reads MALLOC_ARENA_MAX as a process starts, so the worker must start with it."""
    code = ("import os, ray; from hyperfcn import session; session.start(num_cpus=1); "
            "f = ray.remote(lambda: os.environ.get('MALLOC_ARENA_MAX')); "
            "print('arenas', ray.get(f.remote())); session.shutdown()")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if user:
        env["MALLOC_ARENA_MAX"] = user
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"arenas {want}" in r.stdout
