"""What would an ensemble of a finished search's models score? Offline, on run dirs that
`hyperfcn tune` left: every checkpoint each trial kept and the saved model.keras are scored
on the validation set, then combined (averaged probabilities) in three ways: the final
model alone, the final model with the best trial's checkpoint (a snapshot pair), and greedy
ensemble selection by val loss (Caruana et al. 2004, with replacement, at most 5 picks).

    python benchmarks/probes/ensemble_probe.py RUN_DIR [RUN_DIR ...] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import emit  # noqa: E402


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))


def _acc(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(p.argmax(1) == y))


def greedy(probs: dict[str, np.ndarray], y: np.ndarray, picks: int = 5) -> list[str]:
    """Caruana's forward selection with replacement: add the member that lowers the
    average's val loss most; stop when none does."""
    chosen: list[str] = []
    total = None
    for _ in range(picks):
        best, best_loss = None, _nll(total / len(chosen), y) if chosen else np.inf
        for name, p in probs.items():
            s = p if total is None else total + p
            loss = _nll(s / (len(chosen) + 1), y)
            if loss < best_loss - 1e-6:
                best, best_loss = name, loss
        if best is None:
            break
        chosen.append(best)
        total = probs[best] if total is None else total + probs[best]
    return chosen


def probe(run: Path) -> dict:
    import keras

    from hyperfcn import feed
    from hyperfcn.data import arrays
    from hyperfcn.data.prepare import prepare
    from hyperfcn.final import load_core

    s = json.loads((run / "settings.json").read_text())
    size = int(json.loads((run / "best_config.json").read_text())["image_size"])
    data, _ = prepare(s["data"], [size], val_dir=s.get("val_dir"), max_buckets=4)
    val = data.val[size]
    y = arrays.labels_of(val)
    probs: dict[str, np.ndarray] = {}
    for ck in sorted(run.glob("tune*/trial_*/checkpoint_*")):
        cfg = json.loads((ck.parent / "params.json").read_text())
        if int(cfg["image_size"]) != size:
            continue
        probs[f"{ck.parent.name}/{ck.name}"] = feed.predict_packed(load_core(ck), val, 64)
    final = keras.saving.load_model(run / "model.keras")
    probs["final"] = feed.predict_packed(final, val, 64)
    metrics = json.loads((run / "metrics.json").read_text())
    bt = (metrics.get("final") or {}).get("best_trial") or {}
    scores = {k: {"acc": _acc(p, y), "loss": _nll(p, y)} for k, p in probs.items()}
    best_ck = [k for k in probs if bt.get("trial_id") and bt["trial_id"] in k]
    pair = ["final", min(best_ck, key=lambda k: scores[k]["loss"])] if best_ck else ["final"]
    chosen = greedy(probs, y)

    def avg(names: list[str]) -> np.ndarray:
        return sum(probs[n] for n in names) / len(names)

    return {"run": str(run), "members": scores, "final_acc": scores["final"]["acc"],
            "final_source": metrics["final"]["source"],
            "pair": pair, "pair_acc": _acc(avg(pair), y), "greedy": chosen,
            "greedy_acc": _acc(avg(chosen), y), "greedy_loss": _nll(avg(chosen), y)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = [probe(Path(r)) for r in a.runs]
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "members"}), flush=True)
    text = "; ".join(f"{Path(r['run']).name}: final {r['final_acc']:.3f}, pair "
                     f"{r['pair_acc']:.3f}, greedy {r['greedy_acc']:.3f} "
                     f"({len(r['greedy'])} picks)" for r in rows)
    emit({"benchmark": "ensemble_probe", "rows": rows, "figure": text}, a.out)


if __name__ == "__main__":
    main()
