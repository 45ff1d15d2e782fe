"""Classification metrics in NumPy: accuracy, confusion matrix, per-class precision/recall."""

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
        # the mean recall of the classes present: accuracy as if the classes were balanced
        "balanced_accuracy": float(np.mean([v["recall"] for v in per_class.values()
                                            if v["support"]])) if len(labels) else 0.0,
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
