"""Classification metrics in NumPy: the one validation score every trial, the final model and
`evaluate` report (:func:`score`), and the per-class report (confusion matrix, precision,
recall)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_report(probs: np.ndarray, labels: np.ndarray,
                          classes: Sequence[str]) -> dict:
    k = len(classes)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = {}
    for i, c in enumerate(classes):
        tp = int(cm[i, i])
        predicted = int(cm[:, i].sum())
        actual = int(cm[i, :].sum())
        per_class[c] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / actual if actual else 0.0,
            "support": actual,
        }
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0) if len(labels) else []
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "balanced_accuracy": balanced_accuracy(pred, labels) if len(labels) else 0.0,
        "loss": float(-np.log(p).mean()) if len(labels) else 0.0,
        "count": int(len(labels)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def format_report(rep: dict) -> str:
    classes = rep["classes"]
    w = max(12, *(len(c) for c in classes)) + 2
    balanced = rep.get("balanced_accuracy")
    lines = [f"accuracy {rep['accuracy']:.4f}   "
             + (f"balanced accuracy {balanced:.4f}   " if balanced is not None else "")
             + f"loss {rep['loss']:.4f}   images {rep['count']}", "",
             f"{'class':<{w}}{'precision':>10}{'recall':>10}{'support':>9}"]
    for c in classes:
        pc = rep["per_class"][c]
        lines.append(f"{c:<{w}}{pc['precision']:>10.3f}{pc['recall']:>10.3f}"
                     f"{pc['support']:>9d}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    cw = max(6, *(len(c) for c in classes)) + 1
    lines.append(" " * w + "".join(f"{c[:cw - 1]:>{cw}}" for c in classes))
    for c, row in zip(classes, rep["confusion_matrix"]):
        lines.append(f"{c:<{w}}" + "".join(f"{v:>{cw}d}" for v in row))
    return "\n".join(lines)


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Plain cross-entropy (no label smoothing), the same after one fitted temperature, and
    accuracy: comparable across trials. Each with its standard error (``*_se``), the noise
    of the validation images' sample, which the race judges a difference against."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    predicted = probs.argmax(1)
    out = {"val_loss": float(-np.log(p).mean()),
           "val_calibrated_loss": calibrated_loss(probs, labels),
           "val_accuracy": float((predicted == labels).mean()),
           "val_balanced_accuracy": balanced_accuracy(predicted, labels)}
    return {**out, **standard_errors(-np.log(p), predicted, labels)}


def standard_errors(losses: np.ndarray, predicted: np.ndarray,
                    labels: np.ndarray) -> dict[str, float]:
    """The standard error of each score's mean over the validation images. The calibrated
    loss takes the plain loss's (one temperature rescales the images' losses alike, near
    enough); balanced accuracy's is the classes' binomial errors averaged."""
    n = len(labels)
    if n < 2:
        return {f"{m}_se": float("nan") for m in ("val_loss", "val_calibrated_loss",
                                                  "val_accuracy", "val_balanced_accuracy")}
    loss_se = float(losses.std(ddof=1) / np.sqrt(n))
    right = (predicted == labels).astype(np.float64)
    per_class = [right[labels == c] for c in np.unique(labels)]
    bal = np.sqrt(sum(r.mean() * (1 - r.mean()) / len(r) for r in per_class)) / len(per_class)
    return {"val_loss_se": loss_se, "val_calibrated_loss_se": loss_se,
            "val_accuracy_se": float(np.sqrt(right.mean() * (1 - right.mean()) / n)),
            "val_balanced_accuracy_se": float(bal)}


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present of each one's recall: what accuracy would be if
    every class had as many images, so a model that ignores a rare class scores low."""
    labels = np.asarray(labels)
    if not len(labels):
        return float("nan")
    present = np.unique(labels)
    return float(np.mean([(predicted[labels == c] == c).mean() for c in present]))


CALIBRATION_ROWS = 20_000  # the temperature is fitted on at most this many images


def calibrated_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Cross-entropy after the one temperature that minimises it on these images (Guo et
    al. 2017; Ashukha et al. 2020's calibrated log-likelihood). Plain cross-entropy also
    scores confidence: a trial trained with label smoothing cannot be confident, so on data
    it classifies almost perfectly its loss sits above an overconfident trial's that makes
    more mistakes. Fitting the temperature takes the confidence level out of the score.
    Newton's method on the inverse temperature, in which the loss is convex."""
    if len(labels) == 0:
        return float("nan")
    step = max(1, len(labels) // CALIBRATION_ROWS)
    beta = _inverse_temperature(_logits(probs[::step]).astype(np.float64), labels[::step])
    # in slices: a large validation set's (images x classes) temporaries stay small
    total = sum(_cross_entropy(beta * _logits(probs[i:i + CALIBRATION_ROWS]),
                               labels[i:i + CALIBRATION_ROWS]) * len(labels[i:i + CALIBRATION_ROWS])
                for i in range(0, len(labels), CALIBRATION_ROWS))
    return float(total / len(labels))


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def _inverse_temperature(z: np.ndarray, labels: np.ndarray) -> float:
    rows, beta = np.arange(len(labels)), 1.0
    for _ in range(50):
        s = beta * z
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean_z = (p * z).sum(1)
        grad = float((mean_z - z[rows, labels]).mean())
        hess = float(((p * z * z).sum(1) - mean_z ** 2).mean())
        if hess <= 1e-12 or abs(grad) < 1e-9:
            break  # separable data: the loss falls towards 0 as beta grows
        beta = min(max(beta - grad / hess, 1e-3), 1e3)
    return beta


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    s = logits - logits.max(1, keepdims=True)
    return float((np.log(np.exp(s).sum(1)) - s[np.arange(len(labels)), labels]).mean())
