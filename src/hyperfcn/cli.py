"""`hyperfcn` command line: a thin layer over :mod:`hyperfcn.api`.

Exit codes: 0 success, 2 bad usage or bad input (one line, no traceback), 1 internal error,
130 interrupted (with the command that resumes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shlex
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import SearchFailed, UserError

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """'90s', '20m', '1.5h', '1h30m' or plain seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)", t)
    if not parts or "".join(f"{a}{b}" for a, b in parts) != t.replace(" ", ""):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 90s, 20m, 1.5h or 1h30m")
    return sum(float(a) * _UNITS[b] for a, b in parts)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return v


def _add_data_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="folder with one sub-folder of images per class")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val-dir", type=Path, help="validation folder with the same classes")
    g.add_argument("--val-split", type=float, default=0.2,
                   help="fraction of DATA held out, stratified and seeded (default 0.2)")
    p.add_argument("--out", type=Path, default=Path("runs/hyperfcn"),
                   help="RUN_DIR for the model, logs and tables (default runs/hyperfcn)")
    p.add_argument("--max-epochs", type=_positive_int, default=10,
                   help="epochs per trial and for the final model (default 10)")
    p.add_argument("--image-size", type=int,
                   help="fix the short image side in pixels (default: searched)")
    p.add_argument("--cpus-per-trial", type=float, help="default: 1 on CPU machines")
    p.add_argument("--gpus-per-trial", type=float,
                   help="fraction of a GPU per trial; default 0.25 when GPUs exist")
    p.add_argument("--seed", type=int, default=0, help="seed for split, searcher, weights")
    p.add_argument("--address", help="join an existing Ray cluster: auto, HOST:PORT or "
                                     "ray://HOST:10001")
    p.add_argument("--storage", help="where Ray keeps results and checkpoints (a shared "
                                     "folder or an object-store URI; default RUN_DIR)")
    p.add_argument("--max-buckets", type=_positive_int, default=4,
                   help="most batch shapes per image size (default 4)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.add_argument("--json", dest="json_out", action="store_true",
                   help="print nothing but one JSON summary at the end (for scripts)")
    p.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                   help="backbone mode: ImageNet weights (Keras' download and cache), none "
                        "(random init), or a .weights.h5 file of the backbone without its top")
    p.add_argument("--mlflow", metavar="URI",
                   help="log trials and the final model to this MLflow tracking URI "
                        "(needs hyperfcn[mlflow])")
    p.add_argument("--wandb", metavar="PROJECT",
                   help="log trials and the final model to this Weights & Biases project "
                        "(needs hyperfcn[wandb]; WANDB_MODE=offline works without network)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hyperfcn",
        description="Search the hyperparameters of a fully convolutional image classifier "
                    "with Ray Tune, HyperOpt TPE and ASHA; retrain, save, predict.")
    ap.add_argument("--version", action="version", version=f"hyperfcn {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("tune", help="search hyperparameters, save the best model found")
    _add_data_opts(t)
    t.add_argument("--samples", type=_positive_int,
                   help="most trials (default 20 when no --budget)")
    t.add_argument("--budget", type=parse_duration,
                   help="wall-clock time until the model is saved, e.g. 20m: the search "
                        "stops in time for the final step (with --samples: the first "
                        "reached ends the search)")
    t.add_argument("--searcher", choices=["hyperopt", "random", "optuna"], default="hyperopt")
    t.add_argument("--scheduler", choices=["asha", "hyperband", "fifo"], default="asha")
    t.add_argument("--metric", choices=["val_loss", "val_accuracy"], default="val_loss")
    t.add_argument("--random-starts", type=_positive_int, metavar="N",
                   help="random configurations before TPE models the results (default: "
                        "twice --concurrency, 4 to 20, at most a third of --samples)")
    t.add_argument("--concurrency", type=_positive_int,
                   help="trials at once (default: as many as the resources fit)")
    t.add_argument("--space", type=Path, help="search-space YAML (see `hyperfcn space`)")
    t.add_argument("--backbone", choices=["mobilenetv2", "efficientnetb0", "resnet50"],
                   help="tune the training recipe of this standard network instead of the "
                        "FCN's shape (its own space: `hyperfcn space --backbone NAME`)")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted search in --out")
    t.add_argument("--checkpoint-every", type=parse_duration, default=60.0, metavar="DURATION",
                   help="save a trial's checkpoint (to resume it) at an epoch's end at most "
                        "this often (default 60s; 0: every epoch)")
    t.add_argument("--max-failures", type=int, default=0,
                   help="retry a failed trial up to N times from its last checkpoint")
    t.add_argument("--final", choices=["auto", "train+val"], default="auto",
                   help="auto (default): the best trial's weights at its best epoch, "
                        "retrained only if the trial was cut short and time is left, and "
                        "kept only if the retrain scores better; train+val: refit the best "
                        "config on training + validation images for the epochs it needed "
                        "(no held-out score afterwards)")
    t.add_argument("--no-final", dest="final", action="store_const", const="none",
                   help="search only: write trials.csv and best_config.json, no final model")

    tr = sub.add_parser("train", help="train one configuration (no search)")
    _add_data_opts(tr)
    tr.add_argument("--config", type=Path, required=True,
                    help="JSON (or YAML) config, e.g. a run's best_config.json")

    pr = sub.add_parser("predict", help="classify image files or folders")
    pr.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    pr.add_argument("--model", type=Path, required=True, help="a RUN_DIR")
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table")
    pr.add_argument("--top-k", type=_positive_int, default=1)

    ev = sub.add_parser("evaluate", help="accuracy, per-class precision/recall, confusion")
    ev.add_argument("data", type=Path)
    ev.add_argument("--model", type=Path, required=True, help="a RUN_DIR")
    ev.add_argument("--format", choices=["table", "json"], default="table")

    rp = sub.add_parser("report", help="write RUN_DIR/report.html (plots, mistakes, ...)")
    rp.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    sp = sub.add_parser("space", help="print the default search space (the --space format)")
    sp.add_argument("--backbone", choices=["mobilenetv2", "efficientnetb0", "resnet50"],
                    help="the recipe space of backbone mode instead of the FCN's")
    return ap


def _opts(args: argparse.Namespace):
    from .api import TuneOptions

    kw = dict(data=args.data, out=args.out, val_dir=args.val_dir, val_split=args.val_split,
              max_epochs=args.max_epochs, image_size=args.image_size,
              cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
              seed=args.seed, address=args.address, storage=args.storage,
              max_buckets=args.max_buckets, quiet=args.quiet or args.json_out,
              mlflow=args.mlflow, wandb=args.wandb, weights=args.weights)
    if args.command == "tune":
        kw.update(samples=args.samples, budget_s=args.budget, searcher=args.searcher,
                  scheduler=args.scheduler, metric=args.metric, concurrency=args.concurrency,
                  space=args.space, resume=args.resume, final=args.final,
                  max_failures=args.max_failures, backbone=args.backbone,
                  random_starts=args.random_starts,
                  checkpoint_every_s=args.checkpoint_every)
    return TuneOptions(**kw)


def _resume_command(argv: list[str]) -> str:
    args = [a for a in argv if a != "--resume"]
    return "hyperfcn " + " ".join(shlex.quote(a) for a in args) + " --resume"


def _summary(result, argv: list[str]) -> dict:
    from collections import Counter

    from . import artifacts as art

    m = result.metrics
    out = {"status": "interrupted" if result.interrupted else "done",
           "run_dir": str(result.run_dir),
           "trials": dict(Counter(t.status for t in result.trials)),
           "best_config": result.best_config,
           "val_accuracy": m.get("val_accuracy"), "val_loss": m.get("val_loss"),
           "final_source": (m.get("final") or {}).get("source"),
           "warning": (m.get("final") or {}).get("warning"),
           "model": str(result.run_dir / art.MODEL)
           if (result.run_dir / art.MODEL).is_file() else None,
           "report": str(result.run_dir / art.REPORT)
           if (result.run_dir / art.REPORT).is_file() else None}
    if result.interrupted:
        out["resume"] = _resume_command(argv)
    return out


def _print_predictions(rows, fmt: str, top_k: int) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        head = ["path", "label", "score"]
        for i in range(2, top_k + 1):
            head += [f"label_{i}", f"score_{i}"]
        w.writerow(head)
        for r in rows:
            line = [r["path"], r["label"], f"{r['score']:.6f}"]
            for t in r["top_k"][1:]:
                line += [t["label"], f"{t['score']:.6f}"]
            w.writerow(line)
        sys.stdout.write(buf.getvalue())
        return
    width = max([4] + [len(r["path"]) for r in rows])
    print(f"{'path':<{width}}  {'label':<16} score")
    for r in rows:
        extra = "  ".join(f"{t['label']} {t['score']:.3f}" for t in r["top_k"][1:])
        print(f"{r['path']:<{width}}  {r['label']:<16} {r['score']:.3f}"
              + (f"   ({extra})" if extra else ""))


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "space":
        from .api import default_space_text

        sys.stdout.write(default_space_text(args.backbone))
        return 0
    if args.command in ("tune", "train"):
        from . import api

        opts = _opts(args)
        try:
            if args.command == "tune":
                result = api.tune(opts)
                if args.json_out:
                    print(json.dumps(_summary(result, argv)))
                if result.interrupted:
                    print(f"search interrupted; finished trials are kept. Resume with:\n  "
                          f"{_resume_command(argv)}", file=sys.stderr)
                    return 130
            else:
                result = api.train(args.data, args.config, opts)
                if args.json_out:
                    print(json.dumps(_summary(result, argv)))
        except KeyboardInterrupt:
            if args.command == "tune":
                print(f"\ninterrupted. Resume with:\n  {_resume_command(argv)}",
                      file=sys.stderr)
            return 130
        return 0
    if args.command == "report":
        from . import api

        print(api.report(args.run_dir))
        return 0
    if args.command == "predict":
        from . import api

        rows, skipped = api.predict(args.paths, args.model, args.top_k)
        _print_predictions(rows, args.format, args.top_k)
        if skipped:
            print(f"skipped {len(skipped)} unreadable file(s): "
                  f"{', '.join(p for p, _ in skipped[:3])}"
                  f"{' ...' if len(skipped) > 3 else ''} ({skipped[0][1]})", file=sys.stderr)
        return 0
    if args.command == "evaluate":
        from . import api
        from .metrics import format_report

        rep, skipped = api.evaluate(args.data, args.model)
        print(json.dumps(rep, indent=2) if args.format == "json" else format_report(rep))
        if skipped:
            print(f"skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
        return 0
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv

    def fail(msg: str, code: int) -> int:
        print(msg, file=sys.stderr)
        if as_json:  # scripts get a JSON answer on stdout whatever happens
            print(json.dumps({"status": "error", "error": msg, "exit_code": code}))
        return code

    try:
        return run(argv)
    except UserError as e:
        return fail(f"hyperfcn: error: {e}", 2)
    except KeyboardInterrupt:
        return 130
    except SearchFailed as e:
        return fail(f"hyperfcn: {e}", 1)
    except Exception as e:  # an internal error: say so, keep the traceback for a report
        traceback.print_exc()
        print(f"hyperfcn: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
