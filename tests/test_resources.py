"""How many trials run at once, and with how much of the machine each."""

from pathlib import Path

import pytest

from hyperfcn.api import CPU_THREADS_PER_TRIAL, TuneOptions, plan_resources
from hyperfcn.errors import UserError


def plan(cpus: float, gpus: float = 0.0, node_cpus: float | None = None, **opts):
    cluster = {"cpus": cpus, "gpus": gpus, **({"node_cpus": node_cpus} if node_cpus else {})}
    return plan_resources(TuneOptions(data=Path("."), **opts), cluster)


@pytest.mark.parametrize("cpus, per_trial, at_once", [
    (1, 1, 1),  # a one-core machine still runs a trial
    (2, 2, 1),  # the laptop: one trial at a time on both cores
    (16, 2, 8),
])
def test_cpu_trials_get_two_threads_each_where_the_node_has_them(cpus, per_trial, at_once):
    assert CPU_THREADS_PER_TRIAL == 2
    res = plan(cpus)
    assert (res.cpus_per_trial, res.concurrency, res.gpus_per_trial) == (per_trial, at_once, 0)


def test_a_cluster_packs_trials_by_its_nodes_cpus():
    res = plan(64, node_cpus=16)
    assert (res.cpus_per_trial, res.concurrency) == (2, 32)


def test_the_users_cpus_per_trial_and_concurrency_win():
    res = plan(2, cpus_per_trial=1)
    assert (res.cpus_per_trial, res.concurrency) == (1, 2)
    assert plan(16, concurrency=3).concurrency == 3


def test_gpu_trials_share_each_gpu_four_ways_and_split_the_cpus():
    res = plan(16, gpus=1)
    assert (res.gpus_per_trial, res.cpus_per_trial, res.concurrency) == (0.25, 4, 4)


def test_more_cpus_per_trial_than_a_node_has_is_refused_naming_the_flag():
    with pytest.raises(UserError, match=r"--cpus-per-trial 8.*4 CPUs of the largest node"):
        plan(8, node_cpus=4, cpus_per_trial=8)
