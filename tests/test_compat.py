"""hyperfcn's reach past Ray's public API: all of it in compat.py, and each piece still
works on the installed Ray. These fail when a Ray release moves what compat.py relies on;
widen compat.SUPPORTED only once they pass."""

import re
import sys
from pathlib import Path

import pytest

from hyperfcn.tuning import compat

SRC = Path(__file__).resolve().parents[1] / "src" / "hyperfcn"
PRIVATE = re.compile(r"ray\._private|ray\.train\._internal|ray\._raylet|_Bracket|_local_tuner"
                     r"|_experiment_analysis|_setup_signal_catching|_num_stopped|_hpopt_trials"
                     r"|_points_to_evaluate|\._trial_info|\._brackets|__class__ *=")


def test_no_private_ray_name_outside_the_compat_module():
    hits = [f"{p.name}:{i}: {line.strip()}" for p in SRC.glob("*.py") if p.name != "compat.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert not hits, hits


def test_the_installed_ray_is_in_the_supported_range():
    assert compat.check_ray_version() is None, compat.check_ray_version()
    lo, hi = compat.SUPPORTED
    assert lo == (2, 52)


def test_what_compat_reaches_for_is_still_there():
    from ray._private import ray_constants
    from ray._private.authentication.authentication_utils import is_token_auth_enabled
    from ray._raylet import Config
    from ray.train._internal.session import _TrainSession, get_session

    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool)
    assert callable(is_token_auth_enabled) and callable(Config.initialize)
    assert get_session() is None  # outside a trial: none, and compat.trial_stop_event -> None
    assert compat.trial_stop_event() is None
    assert "stop_event" in Path(sys.modules[_TrainSession.__module__].__file__).read_text()
    # the hint our logging filter drops is still worded so (session._OurResumeHintOnly)
    import ray.tune.tune as tune_module

    assert "Resume experiment with" in Path(tune_module.__file__).read_text()


def _looks_for_the_stop_event(config):
    import threading

    from ray import tune

    from hyperfcn.tuning import compat as c

    event = c.trial_stop_event()
    Path(config["out"]).write_text(
        "event" if isinstance(event, threading.Event) and not event.is_set() else repr(event))
    tune.report({"epoch": 1})


@pytest.mark.integration
def test_inside_a_trial_compat_finds_the_event_the_scheduler_sets(tmp_path, deadline):
    """The trial polls it before every step, so that a stop takes effect within a step
    (tests/test_trial.py drives that part with a scripted reporter)."""
    import ray.cloudpickle
    from ray import tune

    from hyperfcn.tuning import session

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    deadline(240)
    session.start(num_cpus=1, quiet=True)
    out = tmp_path / "seen.txt"
    try:
        tune.Tuner(_looks_for_the_stop_event, param_space={"out": str(out)},
                   run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    finally:
        session.shutdown()
    assert out.read_text() == "event"
