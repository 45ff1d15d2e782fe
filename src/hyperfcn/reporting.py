"""RUN_DIR/report.html: one self-contained page that says what was tried, what won, and what
the final model gets wrong. Reads only RUN_DIR's files (no TensorFlow, no Ray); the plots are
also written as PNG files in RUN_DIR/report/."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from . import artifacts as art
from .config import ModelConfig
from .data.epoch import describe as describe_epoch
from .errors import UserError
from .records import Objective, TrialStatus, read_history, record, status_of

GALLERY = 16  # most confident mistakes shown
PARAMS_SHOWN = 8  # parameters on the parallel-coordinates plot
MIN_TRIALS_FOR_IMPORTANCE = 8


@dataclass
class Run:
    dir: Path
    settings: dict[str, Any]
    data: dict[str, Any]
    trials: list[dict[str, Any]]
    metrics: dict[str, Any]
    best_config: dict[str, Any]
    predictions: list[dict[str, str]]
    skipped: list[tuple[str, str]]

    @property
    def metric(self) -> str:
        return self.settings.get("metric", "val_loss")

    @property
    def mode(self) -> str:
        return Objective(self.metric).mode

    @property
    def searched(self) -> bool:
        """A `tune` run; a `train` run trained one configuration and has no trials."""
        kind = self.settings.get("kind")
        if kind is not None:
            return kind == "tune"
        return bool(self.trials) or "scheduler_plan" in self.settings


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def load(run_dir: str | Path) -> Run:
    d = Path(run_dir)
    if not d.is_dir():
        raise UserError(f"{d}: no such run folder; give the --out folder of `hyperfcn tune`")
    if not (d / art.SETTINGS).is_file():
        raise UserError(f"{d}: not a hyperfcn run folder (no {art.SETTINGS}); give the --out "
                        f"folder of `hyperfcn tune` or `hyperfcn train`")
    preds = art.read_val_predictions(d)
    skipped: list[tuple[str, str]] = []
    if (d / art.SKIPPED).is_file():
        for line in (d / art.SKIPPED).read_text(encoding="utf-8").splitlines():
            path, _, why = line.partition("\t")
            skipped.append((path, why))
    settings = _read(d / art.SETTINGS, {})
    trials = _read(d / art.TRIALS_JSON, None)
    if trials is None:  # a run that stopped before writing it: read Ray's own results
        trials = _trials_from_ray(d, int(settings.get("max_epochs", 0)),
                                  (settings.get("scheduler_plan") or {}).get("name"))
    return Run(dir=d, settings=settings, data=_read(d / art.DATA_SUMMARY, {}),
               trials=trials, metrics=_read(d / art.METRICS, {}),
               best_config=_read(d / art.BEST_CONFIG, {}), predictions=preds,
               skipped=skipped)


def _trials_from_ray(d: Path, max_epochs: int, scheduler: str | None) -> list[dict[str, Any]]:
    """The trials of a run that ended before it wrote trials.json (killed, interrupted):
    every round's result.json, through the search's own reader and status rule."""

    stops = art.read_stops(d / art.SCHEDULER_STOPS)
    out = []
    for trial_dir in sorted(d.glob(f"{art.RAY_DIR}*/trial_*")):
        hist = read_history(trial_dir)
        if not hist:
            continue
        tid = trial_dir.name.removeprefix("trial_")
        epochs = max(int(h.get("epoch", 0)) for h in hist)
        # ASHA logs each trial it stops and FIFO stops none: the rest had not finished.
        logged = scheduler in ("asha", "fifo")
        status = status_of(failed=False, ended=epochs >= max_epochs or tid in stops
                           or not logged, epochs=epochs, max_epochs=max_epochs,
                           stopped_by_scheduler=True, budget_can_cut=False)
        rec = record(tid, hist[0].get("config", {}), TrialStatus(status), hist,
                     search=trial_dir.parent.name)
        out.append(dataclasses.asdict(rec))
    return out


# ---------------------------------------------------------------- analysis (plain data)

def best_of(trial: dict[str, Any], metric: str, mode: str) -> float | None:
    """A trial's best score (records.Objective's rule; ``mode`` is the metric's own)."""
    return Objective(metric).best_value(trial.get("history", []))


def best_so_far(trials: list[dict[str, Any]], metric: str, mode: str
                ) -> list[tuple[float, float]]:
    """(seconds since the search began, best value so far) at each improvement."""
    points = [(h["timestamp"], h[metric]) for t in trials for h in t.get("history", [])
              if "timestamp" in h and metric in h and math.isfinite(h[metric])]
    if not points:
        return []
    starts = [h["timestamp"] - h.get("time_total_s", 0.0) for t in trials
              for h in t.get("history", []) if "timestamp" in h]
    t0 = min(starts)
    out: list[tuple[float, float]] = []
    best = None
    for ts, v in sorted(points):
        if best is None or (v < best if mode == "min" else v > best):
            best = v
            out.append((ts - t0, v))
    return out


def _param_names(trials: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for t in trials:
        for k, v in t.get("config", {}).items():
            if k not in names and not isinstance(v, dict):
                names.append(k)
    varying = [n for n in names
               if len({json.dumps(t["config"].get(n)) for t in trials}) > 1]
    return varying


def importance(trials: list[dict[str, Any]], metric: str, mode: str) -> list[tuple[str, float]]:
    """Share of the variance of each trial's best metric that a parameter explains (epsilon
    squared, i.e. eta squared corrected for chance; numbers grouped in quartiles), highest
    first. A rough guide, not causal: it
    needs tens of trials to mean much, and correlated choices share the credit."""
    rows = [(t["config"], best_of(t, metric, mode)) for t in trials]
    rows = [(c, v) for c, v in rows if v is not None]
    if len(rows) < MIN_TRIALS_FOR_IMPORTANCE:
        return []
    y = np.array([v for _, v in rows], dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return []
    out = []
    for name in _param_names([{"config": c} for c, _ in rows]):
        raw = [c.get(name) for c, _ in rows]
        nums = [v for v in raw if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(nums) == len(raw) and len(set(raw)) > 4:
            edges = np.quantile(np.array(nums, float), [0.25, 0.5, 0.75])
            groups = [int(np.searchsorted(edges, v)) for v in nums]
        else:
            groups = [json.dumps(v) for v in raw]
        between = 0.0
        for g in set(groups):
            sel = y[[i for i, gi in enumerate(groups) if gi == g]]
            between += len(sel) * (sel.mean() - y.mean()) ** 2
        # epsilon squared: eta squared less what k groups explain by chance alone
        k, n = len(set(groups)), len(y)
        within = (total - between) / max(n - k, 1)
        out.append((name, max(0.0, float((between - (k - 1) * within) / (total + within)))))
    return sorted(out, key=lambda kv: -kv[1])


def display_order(trials: list[dict[str, Any]], metric: str, mode: str,
                  ranked: list[tuple[str, float]]) -> list[str]:
    """Parameters to show first: by importance once there are enough trials, else by the
    share of the metric's spread each explains (eta squared, uncorrected: fine for
    ordering a handful of trials), then by how many values it took."""
    if ranked:
        return [n for n, _ in ranked]
    names = _param_names(trials)
    rows = [(t["config"], best_of(t, metric, mode)) for t in trials]
    rows = [(c, v) for c, v in rows if v is not None]
    y = np.array([v for _, v in rows], dtype=float)
    total = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0

    def eta2(name: str) -> float:
        if total <= 0:
            return 0.0
        groups = [json.dumps(c.get(name)) for c, _ in rows]
        between = sum(len(sel) * (sel.mean() - y.mean()) ** 2 for sel in (
            y[[i for i, gi in enumerate(groups) if gi == g]] for g in set(groups)))
        return float(between / total)

    def distinct(name: str) -> int:
        return len({json.dumps(t["config"].get(name)) for t in trials})

    return sorted(names, key=lambda n: (-round(eta2(n), 6), -distinct(n)))


# ---------------------------------------------------------------- plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    # Every label is the user's text (class names, config values), never a formula: a class
    # named "$5 note" must show as written, not fail as mathtext.
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def plot_curves(run: Run) -> bytes | None:
    trials = [t for t in run.trials if t.get("history")]
    if not trials and not run.metrics.get("history"):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    max_epochs = int(run.settings.get("max_epochs", 0))
    cmap = plt.get_cmap("tab20")
    for i, t in enumerate(trials):
        h = [x for x in t["history"] if run.metric in x]
        ep = [x["epoch"] for x in h]
        v = [x[run.metric] for x in h]
        style = "--" if t["status"] == "failed" else "-"
        ax.plot(ep, v, style, color=cmap(i % 20), lw=1.2, alpha=0.85)
        if ep and t["status"] == "stopped":
            ax.plot(ep[-1], v[-1], "x", color="black", ms=6)
        elif ep and t["status"] == "failed":
            ax.plot(ep[-1], v[-1], "v", color="red", ms=6)
        elif ep and t["status"] == "out_of_budget":
            ax.plot(ep[-1], v[-1], "|", color="grey", ms=8)
    final = run.metrics.get("history") or []
    source = (run.metrics.get("final") or {}).get("source", "retrain")
    if not run.searched:
        source = "trained once"
    # a continuation goes on from the best trial's best epoch
    start = int((run.metrics.get("final") or {}).get("start_epoch") or 0)
    if final and run.metric in final[0]:
        # drawn dashed and thin, so a curve that repeats the best trial's leaves it visible
        ax.plot([start + x["epoch"] for x in final], [x[run.metric] for x in final], "--",
                color="black", lw=1.5, label=f"final model ({source})")
        ax.legend(loc="best")
    plan = run.settings.get("scheduler_plan") or {}
    if plan.get("name") == "asha":
        t, rf = int(plan.get("grace_period", 1)), int(plan.get("reduction_factor", 3))
        while t < max_epochs:
            ax.axvline(t, color="grey", lw=0.8, ls=":")
            t *= rf
    ax.set_xlabel("epoch")
    ax.set_ylabel(run.metric)
    ax.set_title("every trial (x: stopped early by the scheduler, |: out of budget, "
                 "dotted lines: its rungs)" if run.searched else
                 f"the training's {run.metric} each epoch", fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_best_so_far(run: Run) -> bytes | None:
    pts = best_so_far(run.trials, run.metric, run.mode)
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    end = max(h["timestamp"] for t in run.trials for h in t.get("history", [])
              if "timestamp" in h)
    t0 = end - max(h.get("time_total_s", 0) for t in run.trials for h in t.get("history", [])
                   if h.get("timestamp") == end)
    xs = [p[0] / 60 for p in pts]
    ys = [p[1] for p in pts]
    last = max(xs[-1], (end - t0) / 60, max(xs))
    ax.step(xs + [last], ys + [ys[-1]], where="post", color="tab:blue", lw=2)
    ax.plot(xs, ys, "o", color="tab:blue", ms=4)
    ax.set_xlabel("minutes since the search began")
    ax.set_ylabel(f"best {run.metric} so far")
    ax.grid(alpha=0.3)
    return _png(fig)


def _axis_values(vals: list[Any]) -> tuple[list[float], list[str] | None, bool]:
    nums = all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
    if nums and len(set(vals)) > 4:
        arr = np.array(vals, float)
        log = bool(arr.min() > 0 and arr.max() / arr.min() > 20)
        a = np.log10(arr) if log else arr
        lo, hi = float(a.min()), float(a.max())
        return [float((x - lo) / (hi - lo)) if hi > lo else 0.5 for x in a], None, log
    cats = sorted({json.dumps(v) for v in vals})
    pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return [pos[json.dumps(v)] for v in vals], [json.loads(c) for c in cats], False


def plot_parallel(run: Run, ranked: list[tuple[str, float]]) -> bytes | None:
    rows = [(t["config"], best_of(t, run.metric, run.mode)) for t in run.trials]
    rows = [(c, v) for c, v in rows if v is not None]
    names = display_order(run.trials, run.metric, run.mode, ranked)[:PARAMS_SHOWN]
    if len(rows) < 2 or not names:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * (len(names) + 1)), 4.2))
    cols = []
    for n in names:
        pos, cats, log = _axis_values([c.get(n, "") for c, _ in rows])
        cols.append(pos)
        raw = [c.get(n, "") for c, _ in rows]
        if cats is not None:
            for cat, p in zip(cats, np.linspace(0, 1, len(cats)) if len(cats) > 1 else [0.5]):
                ax.text(len(cols) - 1 + 0.03, p, _fmt(cat)[:12], fontsize=7, va="center")
        else:
            lo, hi = min(raw), max(raw)
            ax.text(len(cols) - 1 + 0.03, 0, f"{lo:.3g}", fontsize=7, va="center")
            ax.text(len(cols) - 1 + 0.03, 1, f"{hi:.3g}{' (log)' if log else ''}",
                    fontsize=7, va="center")
    y = np.array([v for _, v in rows])
    cols.append(list((y - y.min()) / (y.max() - y.min()) if y.max() > y.min()
                     else np.full(len(y), 0.5)))
    good = (y.max() - y) if run.mode == "min" else (y - y.min())
    good = good / good.max() if good.max() > 0 else np.ones_like(good)
    cmap = plt.get_cmap("viridis")
    order = np.argsort(good)
    mat = np.array(cols)
    for i in order:
        ax.plot(range(len(cols)), mat[:, i], color=cmap(good[i]), alpha=0.7,
                lw=2.2 if good[i] == 1 else 1)
    for x in range(len(cols)):
        ax.axvline(x, color="grey", lw=0.8)
    ax.text(len(cols) - 1 + 0.03, 0, f"{y.min():.3g}", fontsize=7, va="center")
    ax.text(len(cols) - 1 + 0.03, 1, f"{y.max():.3g}", fontsize=7, va="center")
    ax.set_xticks(range(len(cols)), names + [run.metric], rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_title("each line is a trial; yellow is best")
    return _png(fig)


def plot_importance(ranked: list[tuple[str, float]]) -> bytes | None:
    if not ranked:
        return None
    plt = _plt()
    top = ranked[:12][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(top) + 1))
    ax.barh([n for n, _ in top], [v for _, v in top], color="tab:green")
    ax.set_xlabel("share of the metric's variance it explains")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def plot_confusion(rep: dict[str, Any]) -> bytes | None:
    cm = np.array(rep.get("confusion_matrix") or [])
    classes = rep.get("classes") or []
    if cm.size == 0:
        return None
    plt = _plt()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * k, 0.8 + 0.6 * k))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), [c[:16] for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(k), [c[:16] for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    return _png(fig)


# ---------------------------------------------------------------- HTML

def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _img(png: bytes, alt: str, mime: str = "image/png") -> str:
    return (f'<img alt="{_e(alt)}" src="data:{mime};base64,'
            f'{base64.b64encode(png).decode("ascii")}">')


def _thumb(path: str, size: int = 144) -> bytes | None:
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.draft("RGB", (size * 2, size * 2))
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
            return buf.getvalue()
    except Exception:
        return None


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<div class='scroll'><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.lead{font-size:15px;background:#f6f8fa;padding:10px 14px;border-radius:6px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:150px;font-size:12px;
overflow-wrap:anywhere}.card img{display:block;max-width:144px;max-height:144px}
img{max-width:100%}.muted{color:#666}.bad{color:#b00}.scroll{overflow-x:auto}
.pixels{image-rendering:pixelated}
"""


def render(run: Run) -> tuple[str, dict[str, bytes]]:
    """The page and its plots (name -> PNG bytes)."""
    ranked = importance(run.trials, run.metric, run.mode)
    plots = _plots(run, ranked)
    scored = [(t, best_of(t, run.metric, run.mode)) for t in run.trials]
    scored = [(t, v) for t, v in scored if v is not None]
    scored.sort(key=lambda tv: tv[1] if run.mode == "min" else -tv[1])
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>hyperfcn report: {_e(run.dir.name)}</title><style>{CSS}</style>"
             f"</head><body>", f"<h1>hyperfcn report <span class='muted'>{_e(run.dir)}"
                               f"</span></h1>"]
    parts += _summary_html(run, scored, ranked)
    parts += _data_html(run)
    parts += _race_html(run)
    parts += _search_html(run, scored, ranked, plots)
    parts += _final_model_html(run, plots)
    parts.append(f"<p class='muted'>Written {time.strftime('%Y-%m-%d %H:%M')} by hyperfcn "
                 f"{_e((run.settings.get('versions') or {}).get('hyperfcn', ''))}.</p>"
                 f"</body></html>")
    return "\n".join(parts), plots


def _plots(run: Run, ranked: list[tuple[str, float]]) -> dict[str, bytes]:
    plots: dict[str, bytes] = {}
    for name, fn in (("learning_curves", lambda: plot_curves(run)),
                     ("best_so_far", lambda: plot_best_so_far(run)),
                     ("parallel_coordinates", lambda: plot_parallel(run, ranked)),
                     ("parameter_importance", lambda: plot_importance(ranked)),
                     ("confusion_matrix",
                      lambda: plot_confusion(run.metrics.get("validation") or {}))):
        png = fn()
        if png:
            plots[name] = png
    return plots


def _summary_html(run: Run, scored: list, ranked: list[tuple[str, float]]) -> list[str]:
    """The one-minute summary, and a warning about the saved model before anything else."""
    trials, metric = run.trials, run.metric
    rep = run.metrics.get("validation") or {}
    lead = []
    if not run.searched:
        m = run.metrics
        lead.append(f"one configuration trained, no search: {m.get('epochs_run', '?')} "
                    f"epochs in {float(m.get('train_seconds') or 0) / 60:.1f} min, its best "
                    f"at epoch {m.get('best_epoch', '?')}")
    elif trials:
        wall = (run.metrics.get("search_wall_seconds")
                or _read(run.dir / art.SEARCH, {}).get("search_wall_seconds"))
        n = f"{len(trials)} trial{'' if len(trials) == 1 else 's'}"
        lead.append(f"{n} in {wall / 60:.1f} min" if wall else n)
        status = Counter(t.get("status", "?") for t in trials)
        lead.append(", ".join(f"{n} {_e(k)}" for k, n in status.most_common()))
    if scored:
        t, v = scored[0]
        lead.append(f"best trial {_e(t['trial_id'])}: {metric} {v:.4f}")
    elif run.searched and not (run.dir / art.MODEL).is_file():
        lead.append("no trial finished an epoch, so there is no model")
    if run.metrics.get("val_accuracy") is not None:
        lead.append(f"saved model: val accuracy <b>{run.metrics['val_accuracy']:.1%}</b>, "
                    f"val loss {run.metrics['val_loss']:.4f} on {rep.get('count', '?')} "
                    f"validation images (the file, loaded back)")
    elif (run.metrics.get("final") or {}).get("source") == "train+val":
        lead.append("saved model: fitted on train+val, so it has no validation score")
    test = run.metrics.get("test") or {}
    if run.metrics.get("test_accuracy") is not None:
        lead.append(f"on the {test.get('count', '?')} test images no decision of the run saw: "
                    f"accuracy <b>{run.metrics['test_accuracy']:.1%}</b>, loss "
                    f"{run.metrics['test_loss']:.4f}")
    if ranked:
        lead.append("parameters that mattered most: " + ", ".join(
            f"{_e(n)} ({v:.0%})" for n, v in ranked[:3]))
    parts = ["<p class='lead'>" + "; ".join(lead) + ".</p>"]
    warning = (run.metrics.get("final") or {}).get("warning")
    if warning:  # the first thing a reader must know about this model
        parts.append(f"<p class='bad'><b>Warning:</b> {_e(warning)}</p>")
    note = (run.metrics.get("final") or {}).get("note")
    if note:
        parts.append(f"<p>Note: {_e(note)}.</p>")
    return parts


def _data_html(run: Run) -> list[str]:
    rep = run.metrics.get("validation") or {}
    classes = run.data.get("classes") or rep.get("classes") or []
    tc, vc = run.data.get("train_counts", {}), run.data.get("val_counts", {})
    parts = ["<h2>Data</h2>", _table(["class", "training images", "validation images"],
                                     [[c, tc.get(c, 0), vc.get(c, 0)] for c in classes]
                                     + [["all", sum(tc.values()), sum(vc.values())]])]
    unmeasured = [c for c in classes if not vc.get(c)]
    if unmeasured:
        parts.append(f"<p class='bad'>No validation image for {_e(', '.join(unmeasured))}: "
                     f"the validation score that picked the model does not measure "
                     f"{'it' if len(unmeasured) == 1 else 'them'}.</p>")
    shapes = run.data.get("bucket_shapes", {})
    pad = run.data.get("padded_fraction", {})
    sized = "Image sizes searched" if run.searched else "Image size"
    parts.append(f"<p>{sized}: " + ", ".join(
        f"{_e(k)} px (batch shapes {_e(', '.join(f'{h}x{w}' for h, w in v))}; padding "
        f"{pad.get(k, 0):.1%})" for k, v in shapes.items()) + ".</p>")
    rule = (run.settings.get("image_size_rule") or {}).get("text")
    rules = run.settings.get("data_rules") or {}
    read = rules.get("read") and f"read from the training images: {rules['read']}"
    epoch = describe_epoch(sum(tc.values()), sum(vc.values()))
    for text in (rule, *(rules.get("said") or [read]), epoch):
        if text:
            parts.append(f"<p>{_e(text[0].upper() + text[1:])}.</p>")
    if run.skipped:
        parts.append(f"<p class='bad'>{len(run.skipped)} file(s) skipped as unreadable:</p>")
        parts.append(_table(["file", "reason"], [[p, r] for p, r in run.skipped[:50]]))
    else:
        parts.append("<p>No files skipped.</p>")
    return parts


def _race_html(run: Run) -> list[str]:
    """The recipe's variants, and the race where the budget ran one: each racer's score
    at the race's end, and why the winner won."""
    found = run.settings.get("race_variants") or []
    if not found:
        return []
    race = _read(run.dir / art.SEARCH, {}).get("race") or {}
    parts = ["<h2>The recipe and its variants</h2>", "<p>Run right after the recipe, as "
             "the choices most likely wrong for this data:</p>",
             _table(["variant", "why"], [[v.get("name"), v.get("why")] for v in found])]
    if not race:
        parts.append("<p>The budget ran no race: they were the search's first trials, "
                     "or the recipe trained alone.</p>")
        return parts
    metric = race.get("metric", run.metric)
    parts.append(f"<p>The race: each racer trained {race.get('epochs')} epochs on the same "
                 f"schedule; scored at its best epoch of those.</p>")
    parts.append(_table(["racer", "trial", metric, "standard error", "val accuracy"], [
        [r.get("racer"), r.get("trial_id"), _num(r.get(metric)), _num(r.get("se")),
         _num(r.get("val_accuracy"))] for r in race.get("racers", [])]))
    parts.append(f"<p>Winner: trial {_e(race.get('winner', '?'))}. "
                 f"{_e(race.get('why', ''))}.</p>")
    return parts


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "–"


def _settings_table(run: Run) -> str:
    s = run.settings
    plan = s.get("scheduler_plan") or {}
    res = s.get("resources") or {}
    budget = s.get("budget_s")
    if not run.searched:
        return _table(["setting", "value"], [
            ["command", s.get("command", "")], ["seed", s.get("seed", "")],
            ["budget", f"{budget / 60:.1f} min" if budget else
             f"up to {s.get('max_epochs', '?')} epochs"],
            ["machine", f"{res.get('cpus', '?')} CPUs, {res.get('gpus', '?')} GPUs"],
            ["backend", s.get("backend", "")], ["precision", s.get("precision", "float32")]])
    return _table(["setting", "value"], [
        ["command", s.get("command", "")],
        ["searcher", f"{s.get('searcher', '')} (seed {s.get('seed', '')})"],
        ["scheduler", f"{plan.get('name', '')}: max {plan.get('max_t', '')} epochs, grace "
                      f"{plan.get('grace_period', '')}, reduction factor "
                      f"{plan.get('reduction_factor', '')}"],
        ["metric", run.metric],
        ["budget", f"{budget / 60:.1f} min" if budget else f"{s.get('samples')} samples"],
        ["resources", "{} CPUs, {} GPUs; {} CPU and {} GPU per trial, up to {} at once"
         .format(*(res.get(k, "?") for k in ("cpus", "gpus", "cpus_per_trial",
                                              "gpus_per_trial", "concurrency")))],
        ["backend", s.get("backend", "")],
        ["precision", s.get("precision", "float32")]])


def _search_html(run: Run, scored: list, ranked: list[tuple[str, float]],
                 plots: dict[str, bytes]) -> list[str]:
    if not run.searched:
        parts = ["<h2>Training</h2>", _settings_table(run)]
        if "learning_curves" in plots:
            parts.append(f"<h3>Learning curve</h3>{_img(plots['learning_curves'], 'curve')}")
        return parts
    parts = ["<h2>Search</h2>", _settings_table(run)]
    for name, title in (("learning_curves", "Learning curves"),
                        ("best_so_far", "Best so far against wall-clock time"),
                        ("parallel_coordinates", "Parameters against the metric"),
                        ("parameter_importance", "Parameter importance")):
        if name in plots:
            parts.append(f"<h3>{title}</h3>{_img(plots[name], title)}")
    if not ranked:
        parts.append(f"<p class='muted'>Parameter importance needs at least "
                     f"{MIN_TRIALS_FOR_IMPORTANCE} trials with results.</p>")
    else:
        parts.append("<p class='muted'>Importance is the share of the variance of each "
                     "trial's best metric explained by grouping trials on that parameter. "
                     "It is a guide, not proof: it needs tens of trials, and parameters "
                     "chosen together share the credit.</p>")
    names = display_order(run.trials, run.metric, run.mode, ranked)[:10]
    rows = [[t["trial_id"], t["status"], t.get("epochs", ""), _fmt(v)]
            + [_fmt(t["config"].get(n, "")) for n in names] for t, v in scored[:15]]
    failed = [t for t in run.trials if t.get("status") == "failed"]
    if rows:
        parts.append("<h3>Best trials</h3>" + _table(
            ["trial", "status", "epochs", f"best {run.metric}"] + names, rows))
    if failed:
        parts.append("<h3>Failed trials</h3>" + _table(
            ["trial", "reason"], [[t["trial_id"], t.get("error", "")] for t in failed]))
    return parts


def _final_model_html(run: Run, plots: dict[str, bytes]) -> list[str]:
    parts = ["<h2>Final model</h2>"]
    final = run.metrics.get("final") or {}
    rep = run.metrics.get("validation") or {}
    if final:
        # a `train` run's model is its one training, not a retrain of a trial
        parts.append(_final_html(final if run.searched else {**final, "source": "trained"}))
    if run.best_config:
        unused = _unused(run.best_config)
        parts.append(_table(["parameter", "value"],
                            [[k, _fmt(v)] for k, v in run.best_config.items()
                             if k not in unused]))
    if rep:
        parts.append(_table(["class", "precision", "recall", "support"], [
            [c, f"{pc['precision']:.3f}", f"{pc['recall']:.3f}", pc["support"]]
            for c, pc in rep.get("per_class", {}).items()]))
    if "confusion_matrix" in plots:
        parts.append(f"<h3>Confusion matrix</h3>{_img(plots['confusion_matrix'], 'confusion')}")
    parts += _mistakes_html(run)
    prev = run.dir / art.AUGMENT_PREVIEW
    if prev.is_file():
        parts.append("<h3>Augmentation preview</h3><p class='muted'>Validation images "
                     "(left) and five draws of the winning configuration's training-time "
                     "augmentation. It is off at inference.</p>"
                     + _img(prev.read_bytes(), "augmentation preview").replace(
                         "<img ", "<img class='pixels' ", 1))
    return parts


def _mistakes_html(run: Run) -> list[str]:
    mistakes = [r for r in run.predictions if r["label"] != r["predicted"]]
    mistakes.sort(key=lambda r: -float(r["confidence"]))
    if not mistakes:
        return []
    parts = [f"<h3>Most confident mistakes</h3><p class='muted'>{len(mistakes)} of "
             f"{len(run.predictions)} validation images are misclassified; the "
             f"{min(GALLERY, len(mistakes))} the model was surest about:</p>"
             "<div class='grid'>"]
    for r in mistakes[:GALLERY]:
        th = _thumb(r["path"])
        pic = _img(th, Path(r["path"]).name, "image/jpeg") if th else (
            "<p class='muted'>(file no longer readable)</p>")
        parts.append(f"<div class='card'>{pic}<b>{_e(r['predicted'])}</b> "
                     f"{float(r['confidence']):.0%}<br>true: {_e(r['label'])}<br>"
                     f"<span class='muted'>{_e(Path(r['path']).name)}</span></div>")
    parts.append("</div>")
    return parts


def _unused(config: dict[str, Any]) -> set[str]:
    try:
        return ModelConfig.from_dict(config).unused()
    except Exception:  # a config from another version: show it all
        return set()


def _final_html(final: dict[str, Any]) -> str:
    """Where the saved model came from, and its checked score beside the best trial's."""
    best = final.get("best_trial") or {}
    checked = final.get("checked") or {}
    rows = []
    if final.get("held_out", True) and checked:
        rows.append(["saved model (loaded back from model.keras)",
                     _fmt(checked.get("val_accuracy")), _fmt(checked.get("val_loss"))])
    if best:
        rows.append([f"best trial {best.get('trial_id')} at epoch {best.get('epoch')}",
                     _fmt(best.get("val_accuracy")), _fmt(best.get("val_loss"))])
    out = (f"<p>Source: <b>{_e(final.get('source', ''))}</b>: "
           f"{_e(final.get('reason', ''))}.</p>")
    if rows:
        out += _table(["", "val accuracy", "val loss"], rows)
    if not final.get("held_out", True):
        out += ("<p class='muted'>Fitted on train+val: the validation images were trained "
                "on, so the score shown is the search's.</p>")
    if final.get("warning"):
        out += f"<p class='bad'>Warning: {_e(final['warning'])}.</p>"
    return out


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html and RUN_DIR/report/*.png; return the HTML's path."""
    run = load(run_dir)
    page, plots = render(run)
    for name, png in plots.items():
        art.write_bytes(run.dir / art.REPORT_DIR / f"{name}.png", png)
    out = run.dir / art.REPORT
    art.write_text(out, page)
    return out
