"""Unbalanced classes: a balanced accuracy to judge by, and loss weights that give every
class the same total weight in training."""

import numpy as np
import pytest

from hyperfcn.data.arrays import TrialData, class_weights
from hyperfcn.data.buckets import pack, plan_buckets
from hyperfcn.metrics import balanced_accuracy, classification_report, score
from hyperfcn.records import METRICS, Objective
from hyperfcn.trial import LocalReporter, TrialSettings, run_trial


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    labels = np.array([0] * 18 + [1] * 2)
    always_0 = np.zeros(20, int)
    assert (always_0 == labels).mean() == 0.9  # plain accuracy flatters it
    assert balanced_accuracy(always_0, labels) == pytest.approx(0.5)
    assert balanced_accuracy(labels, labels) == 1.0
    probs = np.eye(3)[np.r_[labels, 2]]  # a class absent from the labels is not averaged
    assert score(probs[:20, :], labels)["val_balanced_accuracy"] == 1.0
    # the per-class report says the same figure as the trials' score
    report = classification_report(np.eye(3)[always_0], labels, ["a", "b", "c"])
    assert report["balanced_accuracy"] == pytest.approx(0.5)
    assert "val_balanced_accuracy" in METRICS
    assert Objective("val_balanced_accuracy").mode == "max"


def test_class_weights_give_each_class_the_same_total_and_keep_the_mean_at_1():
    labels = np.array([0] * 18 + [1] * 2)
    w = class_weights(labels, 3)
    assert w[0] * 18 == pytest.approx(w[1] * 2)
    assert np.mean([w[int(c)] for c in labels]) == pytest.approx(1.0)
    assert w[2] == 0.0  # absent from training


def _unbalanced(n0=20, n1=3, seed=0):
    rng = np.random.default_rng(seed)
    imgs = [np.clip(rng.normal(40 + 170 * c, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            for c in [0] * n0 + [1] * n1]
    labels = [0] * n0 + [1] * n1
    return pack(imgs, labels, plan_buckets([im.shape[:2] for im in imgs], 1))


def test_balanced_training_weights_the_rare_class_in_the_loss():
    cfg = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
           "learning_rate": 0.01}
    data = TrialData(classes=["common", "rare"], train={16: _unbalanced()},
                     val={16: _unbalanced(4, 4, seed=1)})
    losses = {}
    for how in ("none", "none again", "balanced"):
        out = run_trial(cfg, data, TrialSettings(max_epochs=1, class_weight=how.split()[0]),
                        LocalReporter())
        losses[how] = out.history[0]["loss"]
        assert "val_balanced_accuracy" in out.history[0]
    # the same seed, batches and weights at the start: only the loss weights differ
    assert losses["none again"] == pytest.approx(losses["none"], rel=1e-4)
    assert losses["balanced"] != pytest.approx(losses["none"], rel=1e-2)
