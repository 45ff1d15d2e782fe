"""What an epoch is on large data: capped training steps, a fixed validation sample, and
the trial and the final step using them alike."""

import time

import numpy as np
import pytest
from conftest import make_packed

import hyperfcn.data.epoch as ep
from hyperfcn.data.arrays import labels_of
from hyperfcn.data.buckets import batch_plan, steps
from hyperfcn.feed import predict_packed
from hyperfcn.metrics import score
from hyperfcn.trial import LocalReporter, TrialSettings, run_trial

CFG = {"image_size": 16, "batch_size": 4, "blocks": 2, "filters": 8, "dense_units": 16,
       "learning_rate": 0.01, "lr_schedule": "cosine"}


def test_the_caps_follow_from_the_validation_sample_and_its_share_of_an_epoch():
    # scoring VAL_IMAGES costs FORWARD_COST of a training step each: VAL_SHARE of an epoch
    share = ep.VAL_IMAGES * ep.FORWARD_COST / ep.EPOCH_IMAGES
    assert share == pytest.approx(ep.VAL_SHARE, rel=1e-3)
    # a validation accuracy read on the sample has a standard error of at most half a point
    assert np.sqrt(0.25 / ep.VAL_IMAGES) <= 0.005  # at 50% accuracy, the widest


def test_an_epoch_is_a_pass_up_to_the_cap_and_the_cap_beyond(monkeypatch):
    packed = make_packed(8)  # 16 images in 2 buckets of 8
    assert ep.epoch_steps(packed, 4) == steps(packed, 4) == 4
    monkeypatch.setattr(ep, "EPOCH_IMAGES", 16)  # at the cap: still one whole pass
    assert ep.epoch_steps(packed, 3) == steps(packed, 3) == 6  # 2 topped-up batches
    monkeypatch.setattr(ep, "EPOCH_IMAGES", 9)
    assert ep.epoch_steps(packed, 4) == 3  # ceil(9 / 4)


def test_validation_is_all_images_up_to_the_cap_then_a_fixed_sorted_sample(monkeypatch):
    packed = make_packed(20, shapes=((16, 16), (16, 24), (24, 16)))  # 40 in 3 buckets
    assert ep.scoring_rows(packed) is None
    monkeypatch.setattr(ep, "VAL_IMAGES", 10)
    rows = ep.scoring_rows(packed)
    assert rows is not None and len(rows) == len(packed.buckets)
    assert sum(len(r) for r in rows) == 10
    for r, b in zip(rows, packed.buckets, strict=True):
        assert list(r) == sorted(set(r)) and all(0 <= i < len(b.y) for i in r)
    again = ep.scoring_rows(packed)  # the same sample in every trial and the final step
    assert all(np.array_equal(a, b) for a, b in zip(rows, again, strict=True))


class MeanModel:
    """A stand-in model: its 'probabilities' are a function of each image alone."""

    def predict_on_batch(self, x):
        m = x.mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - m, m], axis=1)


def test_the_sample_is_scored_as_those_images_would_be_among_all():
    packed = make_packed(20, shapes=((16, 16), (16, 24), (24, 16)))
    rows = [np.array([0, 5]), np.array([], dtype=np.int64), np.array([1, 2, 3])]
    every = predict_packed(MeanModel(), packed, 4)
    starts = np.cumsum([0] + [len(b.y) for b in packed.buckets])
    picked = np.concatenate([s + r for s, r in zip(starts, rows, strict=False)])
    got = predict_packed(MeanModel(), packed, 4, rows)
    np.testing.assert_allclose(got, every[picked])
    np.testing.assert_array_equal(labels_of(packed, rows), labels_of(packed)[picked])
    assert [n for _, _, n in batch_plan(packed, 4, None, rows)] == [2, 3]


def test_a_trial_trains_capped_epochs_and_scores_them_on_the_sample(tiny_data, monkeypatch):
    """16 training images at batch 4 are 4 steps a pass; capped at 8 images an epoch is 2,
    which is where a deadline-fitted run's first plan starts (2 epochs in). Each epoch is
    scored on 5 of the 8 validation images, as the final model is scored for comparison."""
    import hyperfcn.model
    from hyperfcn.budget import Deadline
    from hyperfcn.final import _score

    monkeypatch.setattr(ep, "EPOCH_IMAGES", 8)
    monkeypatch.setattr(ep, "VAL_IMAGES", 5)
    plans = []
    real = hyperfcn.model.Cosine.plan
    monkeypatch.setattr(hyperfcn.model.Cosine, "plan",
                        lambda self, **n: (plans.append(n), real(self, **n)))
    monkeypatch.setattr(Deadline, "plan", lambda *a, **k: (3, 0))
    rep = LocalReporter()
    out = run_trial(CFG, tiny_data, TrialSettings(max_epochs=3, patience=None,
                                                  fit_until=time.time() + 1e6), rep)
    assert plans[0]["at"] == 2 * 2 and plans[0]["total"] == 3 * 2
    assert len(rep.history) == 3
    val = tiny_data.val[16]
    rows = ep.scoring_rows(val)
    last = score(predict_packed(out.model, val, 4, rows), labels_of(val, rows))
    assert last["val_loss"] == pytest.approx(rep.history[-1]["val_loss"], rel=1e-4)
    assert rep.history[-1]["val_accuracy"] * 5 == pytest.approx(
        round(rep.history[-1]["val_accuracy"] * 5))
    assert _score(out.model, val, 4, rows)[0]["val_loss"] == pytest.approx(last["val_loss"])


def test_the_startup_line_says_what_an_epoch_is_only_where_it_is_not_a_pass():
    assert ep.describe(ep.EPOCH_IMAGES, ep.VAL_IMAGES) is None
    line = ep.describe(800_000, 200_000)
    assert line is not None
    assert "50,000 of the 800,000 training images" in line
    assert "10,000 of the 200,000 validation images" in line
    assert ep.describe(60_000, 500) == ("an epoch is 50,000 of the 60,000 training images "
                                        "(a new random subset each epoch)")


def test_the_final_line_says_when_the_best_trial_was_scored_on_the_sample(monkeypatch):
    from types import SimpleNamespace

    import hyperfcn.final as final

    best = SimpleNamespace(trial_id="t1", best_epoch=3,
                           best={"val_accuracy": 0.8, "val_loss": 0.5})
    out = SimpleNamespace(checked={"val_accuracy": 0.79, "val_loss": 0.51}, source="best_trial",
                          val_labels=np.zeros(12))
    assert "validation images" not in final._final_text(out, best, "val_loss")
    monkeypatch.setattr(final, "VAL_IMAGES", 10)
    assert final._final_text(out, best, "val_loss").endswith(
        "val_loss 0.5000, on 10 of the 12 validation images)")


def test_the_saved_model_is_compared_with_the_best_trial_on_the_same_sample(monkeypatch):
    """The saved model is scored on every validation image once; what is compared with
    the best trial (whose epochs were scored on the sample) is those images' share."""
    from hyperfcn.final import _on_sample

    val = make_packed(20, shapes=((16, 16), (16, 24), (24, 16)))
    probs = predict_packed(MeanModel(), val, 4)
    checked = score(probs, labels_of(val))
    assert _on_sample(checked, probs, val) is checked  # no sample below the cap
    monkeypatch.setattr(ep, "VAL_IMAGES", 10)
    rows = ep.scoring_rows(val)
    want = score(predict_packed(MeanModel(), val, 4, rows), labels_of(val, rows))
    got = _on_sample(checked, probs, val)
    assert got == pytest.approx(want) and got != pytest.approx(checked)
