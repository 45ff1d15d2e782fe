"""The only place hyperfcn reaches past Ray's public API, each where Ray offers no public way.

Supported: Ray 2.52 (the first with token authentication) to 2.60. Every entry says what it
works around and what happens when Ray moves it; tests/test_compat.py fails on a Ray that
changes any of them, so a new release is checked before the range is widened.
"""

from __future__ import annotations

import logging
import os
import threading
from importlib import metadata

SUPPORTED = ((2, 52), (2, 60))  # oldest and newest minor release tested

log = logging.getLogger("hyperfcn")


def ray_version() -> tuple[int, int]:
    major, minor = metadata.version("ray").split(".")[:2]
    return int(major), int(minor)


def check_ray_version() -> str | None:
    """A warning when the installed Ray is outside the tested range (None inside it)."""
    v = ray_version()
    lo, hi = SUPPORTED
    if lo <= v <= hi:
        return None
    return (f"Ray {v[0]}.{v[1]} is outside the range hyperfcn is tested with "
            f"({lo[0]}.{lo[1]} to {hi[0]}.{hi[1]}); it may work, but nothing checked it")


def trial_stop_event() -> threading.Event | None:
    """The event Tune sets when the scheduler stops the running trial.

    A function trainable otherwise learns of the stop only at its next report, an epoch
    later, and a reused worker cannot start its next trial until this one returns. Public
    Ray has no "should I stop" call. Without it (None), a trial stops at its next report.
    """
    try:
        from ray.train._internal.session import get_session
    except ImportError:
        return None
    return getattr(get_session(), "stop_event", None)


def token_auth_enabled() -> bool:
    """Whether the Ray cluster this process joined runs with token authentication.

    Public Ray only reads the setting for itself; False when it cannot tell (the warning
    that the cluster is unprotected then errs on the safe side).
    """
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return bool(is_token_auth_enabled())


def require_token_auth() -> None:
    """Token authentication on, for the cluster this process starts and for this process.

    The cluster's processes read RAY_AUTH_MODE from the environment; this process read its
    Ray settings when Ray was imported, so without a refresh it would start a cluster it
    cannot talk to. Ray refreshes them the same way when it turns token auth on by default
    (Ray 2.59+); public Ray has no call for it.
    """
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config

    Config.initialize("")


def keep_local_cluster_on_loopback() -> None:
    """A single-machine cluster binds its HTTP agents to loopback only.

    Ray maps 127.0.0.1 to the machine's public address unless multi-node clusters are off
    (how it runs on macOS and Windows). Child processes read the environment variable; the
    driver's Ray has already read it into a constant at import, which is set here too.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants
    except ImportError:
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
