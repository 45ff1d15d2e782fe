"""`hyperfcn` command line: a thin layer over :mod:`hyperfcn.api`.

Exit codes: 0 success, 2 bad usage or bad input (one line, no traceback), 1 internal error,
130 interrupted (with the command that resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import json
import re
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, api
from . import artifacts as art
from .api import TuneOptions, default_space_text
from .data.cache_admin import describe_entries, describe_removed
from .errors import SearchFailed, UserError
from .hints import command, redact
from .metrics import format_report
from .progress import bar, counted_bar
from .records import METRICS

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '20m', '1.5h', '1h30m'; a number needs its unit (only 0 goes without)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        if float(t) == 0:
            return 0.0
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit; write {t}s, {t}m or {t}h")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)", t)
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


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for mistyped options and commands (Python 3.11's
    argparse has none)."""

    def error(self, message: str) -> NoReturn:
        words = re.findall(r"unrecognized arguments: (.*)", message)
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        known = _option_strings(self)
        hints = []
        for w in (x for x in (words[0].split() if words else []) if x.startswith("-")):
            close = difflib.get_close_matches(w.split("=")[0], known, n=1, cutoff=0.6)
            if close:
                hints.append(f"{w}: did you mean {close[0]}?")
        if choice:
            options = re.findall(r"'?([\w+.-]+)'?", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.6)
            if close:
                hints.append(f"did you mean {close[0]}?")
        # one line, as every other refusal: the usage block buried it
        self.exit(2, f"{self.prog}: error: {message}" + "".join(f"; {h}" for h in hints)
                     + f" (`{self.prog} --help` lists the options)\n")


def _option_strings(p: argparse.ArgumentParser) -> list[str]:
    """Every option of p and of its sub-commands (argparse reports a sub-command's unknown
    option from the top parser)."""
    out = []
    for a in p._actions:
        out += a.option_strings
        if isinstance(a, argparse._SubParsersAction):
            for sp in dict.fromkeys(a.choices.values()):
                out += _option_strings(sp)
    return list(dict.fromkeys(out))


def _group(p: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    return p.add_argument_group(title)


def _add_data_opts(p: argparse.ArgumentParser) -> None:
    g = _group(p, "data")
    g.add_argument("data", type=Path, metavar="DATA",
                   help="folder with one sub-folder of images per class")
    v = g.add_mutually_exclusive_group()
    v.add_argument("--val-dir", type=Path, metavar="DIR",
                   help="validation folder with the same class sub-folders")
    v.add_argument("--val-split", type=float, default=0.2, metavar="F",
                   help="fraction of DATA held out, stratified and seeded (default 0.2)")
    g.add_argument("--test-dir", type=Path, metavar="DIR",
                   help="images no decision of the run sees, same class sub-folders: the "
                        "saved model is scored on them once, at the end (an unbiased score)")
    g.add_argument("--image-size", type=int, metavar="PX",
                   help="fix the short image side in pixels (tune: searched by default; "
                        "train: the config's)")
    g.add_argument("--class-weight", choices=["none", "balanced"], default="none",
                   help="balanced: weight each training image's loss so that every class "
                        "weighs the same (for unbalanced classes; default none)")
    g.add_argument("--max-buckets", type=_positive_int, default=4, metavar="N",
                   help="most batch shapes per image size (default 4)")
    g.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="where decoded images are kept for this and later runs (default "
                        "$HYPERFCN_CACHE_DIR or ~/.cache/hyperfcn; on a cluster, a path "
                        "every node mounts)")


def _add_resource_opts(p: argparse.ArgumentParser) -> None:
    g = _group(p, "resources")
    g.add_argument("--cpus-per-trial", type=float, metavar="X",
                   help="CPU threads of each trial (default: 2 on CPU machines, 1 on a "
                        "single core)")
    g.add_argument("--gpus-per-trial", type=float, metavar="X",
                   help="fraction of a GPU per trial (default 0.25 when GPUs exist: four "
                        "trials share each GPU)")
    g.add_argument("--address", metavar="ADDR",
                   help="join an existing Ray cluster: auto, HOST:PORT or ray://HOST:10001")
    g.add_argument("--storage", metavar="PATH",
                   help="where Ray keeps results and checkpoints (a shared folder or an "
                        "object-store URI; default RUN_DIR)")


def _add_output_opts(p: argparse.ArgumentParser) -> None:
    g = _group(p, "output")
    g.add_argument("--out", type=Path, metavar="RUN_DIR",
                   help="where the model, logs and tables go (default runs/DATA's name, "
                        "numbered -2, -3, ... past the runs already there; with --resume, "
                        "the last of them)")
    g.add_argument("--quiet", action="store_true", help="print only errors")
    g.add_argument("--json", dest="json_out", action="store_true",
                   help="print nothing but one JSON summary at the end (for scripts)")
    t = _group(p, "tracking")
    t.add_argument("--mlflow", metavar="URI",
                   help="log trials and the final model to this MLflow tracking URI "
                        "(needs hyperfcn[mlflow])")
    t.add_argument("--wandb", metavar="PROJECT",
                   help="log trials and the final model to this Weights & Biases project "
                        "(needs hyperfcn[wandb]; WANDB_MODE=offline works without network)")


def _add_search_opts(t: argparse.ArgumentParser) -> None:
    g = _group(t, "search")
    g.add_argument("--samples", type=_positive_int, metavar="N",
                   help="most trials (default 20 when no --budget)")
    g.add_argument("--budget", type=parse_duration, metavar="DURATION",
                   help="time until the model is saved, e.g. 90s, 20m, 1.5h: the search "
                        "stops in time for the final step (with --samples: the first "
                        "reached ends the search)")
    g.add_argument("--max-epochs", type=_positive_int, metavar="N",
                   help="epochs of a trial never stopped early (default 10)")
    g.add_argument("--searcher", choices=["hyperopt", "random", "optuna", "bohb"],
                   default="hyperopt",
                   help="hyperopt: TPE (default); random; optuna: Optuna's TPE; bohb: "
                        "BOHB with its own HyperBand (pip install '.[bohb]')")
    g.add_argument("--scheduler", choices=["asha", "hyperband", "fifo"],
                   help="asha: early stopping at rungs (default); hyperband; fifo: none "
                        "(bohb: hyperband, its own)")
    g.add_argument("--metric", choices=list(METRICS), default="val_loss",
                   help="what the search optimises and the final model is judged on "
                        "(default val_loss; val_calibrated_loss: the loss after one fitted "
                        "temperature, blind to confidence; val_balanced_accuracy: the mean "
                        "of each class's recall, for unbalanced classes)")
    g.add_argument("--random-starts", type=_positive_int, metavar="N",
                   help="random configurations before TPE models the results (default: "
                        "twice --concurrency, 4 to 20, at most a third of --samples)")
    g.add_argument("--concurrency", type=_positive_int, metavar="N",
                   help="trials at once (default: as many as the resources fit)")
    g.add_argument("--space", type=Path, metavar="FILE",
                   help="search-space YAML (print the default with the `space` command)")
    g.add_argument("--backbone", choices=["mobilenetv2", "efficientnetb0", "resnet50"],
                   help="tune the training recipe of this standard network instead of the "
                        "FCN's shape (its own space: `space --backbone NAME`)")
    g.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                   help="backbone mode: ImageNet weights (Keras' download and cache), none "
                        "(random init), or a .weights.h5 file of the backbone without its top")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the split, the searcher and the weights (default 0)")
    g.add_argument("--final", choices=["auto", "train+val"], default="auto",
                   help="auto (default): the best trial's weights at its best epoch, "
                        "trained on with the time --budget keeps for it (or retrained if the "
                        "trial was cut short and time is left), kept only if that scores "
                        "better; train+val: refit the best "
                        "config on training + validation images for the epochs it needed "
                        "(no held-out score afterwards)")
    g.add_argument("--no-final", dest="final", action="store_const", const="none",
                   help="search only: write trials.csv and best_config.json, no final model")
    r = _group(t, "resume and failures")
    r.add_argument("--resume", action="store_true",
                   help="continue the search in --out: an interrupted one, or a finished "
                        "one with a larger --samples or --budget")
    r.add_argument("--checkpoint-every", type=parse_duration, default=60.0, metavar="DURATION",
                   help="save a trial's checkpoint (to resume it) at an epoch's end at most "
                        "this often (default 60s; 0: every epoch)")
    r.add_argument("--max-failures", type=int, default=0, metavar="N",
                   help="retry a failed trial up to N times from its last checkpoint "
                        "(default 0)")


def _sub(sub: Any, name: str, summary: str, description: str, example: str
         ) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=description,
                          epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="hyperfcn",
        description="Search the hyperparameters of a fully convolutional image classifier "
                    "with Ray Tune, HyperOpt TPE and ASHA; save the best model; predict.",
        epilog="example:\n  hyperfcn tune photos/ --budget 20m --out runs/photos\n"
               "  hyperfcn predict new_photos/ --model runs/photos\n\n"
               "`hyperfcn COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"hyperfcn {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = _sub(sub, "tune", "search hyperparameters, save the best model found",
             "Search the hyperparameters of an image classifier on DATA (one sub-folder of "
             "images per class),\nthen save the best model found in RUN_DIR with its class "
             "names, a table of every trial,\nTensorBoard logs and an HTML report.",
             "hyperfcn tune photos/ --val-dir photos_val/ --budget 20m --out runs/photos")
    _add_data_opts(t)
    _add_search_opts(t)
    _add_resource_opts(t)
    _add_output_opts(t)

    _add_train(sub)
    _add_use_commands(sub)
    _add_cache(sub)
    return ap


def _add_train(sub: Any) -> None:
    """`hyperfcn train`: one configuration, no search."""
    tr = _sub(sub, "train", "train one configuration (no search)",
              "Train one configuration (a run's best_config.json, or any subset of its "
              "keys) on DATA,\nwith the same artifacts as `tune`.",
              "hyperfcn train photos/ --config runs/photos/best_config.json --out runs/again")
    _add_data_opts(tr)
    g = _group(tr, "training")
    g.add_argument("--config", type=Path, required=True, metavar="FILE",
                   help="JSON (or YAML) config, e.g. a run's best_config.json")
    g.add_argument("--max-epochs", type=_positive_int, metavar="N",
                   help="most epochs (early stopping keeps the best; default 10, or with "
                        "--budget as many as fit)")
    g.add_argument("--budget", type=parse_duration, metavar="DURATION",
                   help="time until the model is saved, e.g. 90s, 20m: the config trains "
                        "for as many epochs as fit, its learning-rate schedule spanning "
                        "them (the first two time an epoch; re-timed as it goes)")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the split and the weights (default 0)")
    g.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                   help="backbone configs: ImageNet weights, none, or a .weights.h5 file")
    _add_resource_opts(tr)
    _add_output_opts(tr)


def _add_cache(sub: Any) -> None:
    """`hyperfcn cache`: the decoded cache's entries, listed or cleared."""
    ca = _sub(sub, "cache", "list the decoded cache's entries, or clear them",
              "List the decoded cache: an entry per dataset, validation split and seed a run "
              "has read,\nwith its folder, image sizes, size on disk and last use. --clear "
              "removes entries (never one a\nrunning run uses); a later run decodes its "
              "images again.",
              "hyperfcn cache --clear --older-than 7d")
    ca.add_argument("--cache-dir", type=Path, metavar="DIR",
                    help="the cache's folder (default $HYPERFCN_CACHE_DIR or "
                         "~/.cache/hyperfcn)")
    ca.add_argument("--clear", action="store_true", help="remove the entries no run uses")
    ca.add_argument("--older-than", type=parse_duration, default=0.0, metavar="DURATION",
                    help="with --clear: only entries last used longer ago, e.g. 7d, 12h")


def _add_use_commands(sub: Any) -> None:
    """The commands that use a saved run: predict, evaluate, report; and space."""
    pr = _sub(sub, "predict", "classify image files or folders",
              "Classify image files or folders (searched recursively) with a saved model.",
              "hyperfcn predict new_photos/ --model runs/photos --format csv > out.csv")
    pr.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                    help="image files or folders")
    pr.add_argument("--model", type=Path, required=True, metavar="RUN_DIR",
                    help="a RUN_DIR written by tune or train, or its model.keras")
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table",
                    help="table (default), csv (path,label,score) or json")
    pr.add_argument("--top-k", type=_positive_int, default=1, metavar="K",
                    help="the K most likely classes of each image (default 1)")

    ev = _sub(sub, "evaluate", "accuracy, per-class precision/recall, confusion",
              "Score a saved model on a labelled folder (one sub-folder per class, the "
              "model's classes).",
              "hyperfcn evaluate photos_test/ --model runs/photos")
    ev.add_argument("data", type=Path, metavar="DATA",
                    help="labelled folder with the model's class sub-folders")
    ev.add_argument("--model", type=Path, required=True, metavar="RUN_DIR",
                    help="a RUN_DIR written by tune or train, or its model.keras")
    ev.add_argument("--format", choices=["table", "json"], default="table",
                    help="table (default) or json")

    rp = _sub(sub, "report", "write RUN_DIR/report.html (plots, mistakes, ...)",
              "Write RUN_DIR/report.html again from the files in RUN_DIR.",
              "hyperfcn report runs/photos")
    rp.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="the --out folder of tune or train")

    ex = _sub(sub, "export", "the model as ONNX, SavedModel or LiteRT, checked",
              "Export a saved model for serving, run the file with its own runtime on "
              "validation images and compare it with the Keras model (a mismatch is an "
              "error). It takes float32 RGB pixels in [0, 255], shape (batch, height, width, "
              "3), the short side resized to the run's image size; it returns class "
              "probabilities in the order of the classes.json written beside it.",
              "hyperfcn export runs/photos --format onnx")
    ex.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                    help="the --out folder of tune or train")
    ex.add_argument("--format", choices=["onnx", "saved_model", "litert"], required=True,
                    help="onnx (ONNX Runtime), saved_model (TF Serving) or litert (.tflite)")
    ex.add_argument("--out", type=Path, metavar="PATH",
                    help="where to write it (default RUN_DIR/export/model.onnx, "
                         "saved_model/ or model.tflite)")

    sp = _sub(sub, "space", "print the default search space (the --space format)",
              "Print the default search space in the format --space reads.",
              "hyperfcn space > my_space.yaml")
    sp.add_argument("--backbone", choices=["mobilenetv2", "efficientnetb0", "resnet50"],
                    help="the recipe space of backbone mode instead of the FCN's")


def _opts(args: argparse.Namespace):
    kw = dict(data=args.data, out=args.out, val_dir=args.val_dir, val_split=args.val_split,
              test_dir=args.test_dir,
              max_epochs=args.max_epochs, image_size=args.image_size,
              cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
              seed=args.seed, address=args.address, storage=args.storage,
              max_buckets=args.max_buckets, cache_dir=args.cache_dir,
              quiet=args.quiet or args.json_out,
              mlflow=args.mlflow, wandb=args.wandb, weights=args.weights,
              class_weight=args.class_weight)
    if args.command == "train":
        kw.update(budget_s=args.budget, max_epochs=args.max_epochs)
    if args.command == "tune":
        kw.update(samples=args.samples, budget_s=args.budget, searcher=args.searcher,
                  scheduler=args.scheduler, metric=args.metric, concurrency=args.concurrency,
                  space=args.space, resume=args.resume, final=args.final,
                  max_failures=args.max_failures, backbone=args.backbone,
                  random_starts=args.random_starts,
                  checkpoint_every_s=args.checkpoint_every)
    return TuneOptions(**kw)


def _resume_command(argv: list[str]) -> str:
    """The command that resumes this one; a URL's credentials are left out of it, and the
    line after says where they go instead."""

    cmd = command([a for a in argv if a != "--resume"] + ["--resume"])
    if any(redact(a) != a for a in argv):
        cmd += ("\n  (the URL's credentials are left out: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD before running it)")
    return cmd


def _summary(result, argv: list[str]) -> dict:

    m = result.metrics
    out = {"status": "interrupted" if result.interrupted else "done",
           "run_dir": str(result.run_dir),
           "trials": dict(Counter(t.status for t in result.trials)),
           "best_config": result.best_config,
           "val_accuracy": m.get("val_accuracy"), "val_loss": m.get("val_loss"),
           "test_accuracy": m.get("test_accuracy"), "test_loss": m.get("test_loss"),
           "final_source": (m.get("final") or {}).get("source"),
           "warning": (m.get("final") or {}).get("warning"),
           "model": str(result.run_dir / art.MODEL)
           if (result.run_dir / art.MODEL).is_file() else None,
           "report": str(result.run_dir / art.REPORT)
           if (result.run_dir / art.REPORT).is_file() else None}
    if result.interrupted:
        out["resume"] = _resume_command(argv)
    return out


def _print_predictions(rows, fmt: str, top_k: int, width: int) -> None:
    """Each row as it comes (a million images never sit in memory); ``width``: the table's
    path column."""
    if fmt == "json":  # json.dumps(rows, indent=2), a row at a time
        sys.stdout.write("[")
        n = 0
        for n, r in enumerate(rows, 1):
            sys.stdout.write(("," if n > 1 else "") + "\n  "
                             + json.dumps(r, indent=2).replace("\n", "\n  "))
        sys.stdout.write("\n]\n" if n else "]\n")
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\r\n")
        head = ["path", "label", "score"]
        for i in range(2, top_k + 1):
            head += [f"label_{i}", f"score_{i}"]
        w.writerow(head)
        for r in rows:
            line = [r["path"], r["label"], f"{r['score']:.6f}"]
            for t in r["top_k"][1:]:
                line += [t["label"], f"{t['score']:.6f}"]
            w.writerow(line)
        return
    width = max(4, width)
    print(f"{'path':<{width}}  {'label':<16} score")
    for r in rows:
        extra = "  ".join(f"{t['label']} {t['score']:.3f}" for t in r["top_k"][1:])
        print(f"{r['path']:<{width}}  {r['label']:<16} {r['score']:.3f}"
              + (f"   ({extra})" if extra else ""))


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `hyperfcn` alone: what it does and how to start
        parser.print_help()
        return 0
    if args.command == "space":

        sys.stdout.write(default_space_text(args.backbone))
        return 0
    if args.command in ("tune", "train"):
        return _run_training(args, argv)
    if args.command == "report":

        print(api.report(args.run_dir))
        return 0
    if args.command == "predict":
        return _run_predict(args)
    if args.command == "cache":
        return _run_cache(args)
    if args.command == "evaluate":
        return _run_evaluate(args)
    if args.command == "export":

        e = api.export(args.run_dir, args.format, args.out)
        print(f"{e.path} ({e.format}): checked against the Keras model on "
              f"{e.checked_images} validation images, largest probability difference "
              f"{e.max_abs_diff:.1e}; class names in {e.classes_path}")
        return 0
    return 2


def _run_training(args: argparse.Namespace, argv: list[str]) -> int:
    """`tune` or `train`; Ctrl-C during a search prints the command that resumes it."""

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


def _run_predict(args: argparse.Namespace) -> int:
    skipped: list[tuple[str, str]] = []
    advance: list[Any] = []  # the bar's, once the files are counted
    files, rows = api.predict_stream(args.paths, args.model, args.top_k, skipped,
                                     lambda n: advance[0](n))
    with bar("predicting", len(files)) as done:
        advance.append(done)
        _print_predictions(rows, args.format, args.top_k, max(len(str(f)) for f in files))
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s): "
              f"{', '.join(p for p, _ in skipped[:3])}"
              f"{' ...' if len(skipped) > 3 else ''} ({skipped[0][1]})", file=sys.stderr)
    return 0


def _run_cache(args: argparse.Namespace) -> int:
    if args.older_than and not args.clear:
        raise UserError("--older-than chooses what --clear removes; give both, e.g. "
                        "hyperfcn cache --clear --older-than 7d")
    if args.clear:
        removed, busy = api.clear_cache(args.cache_dir, args.older_than)
        print(describe_removed(removed, busy))
        return 0
    found, root = api.cache_entries(args.cache_dir)
    print(describe_entries(found, root))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    with counted_bar("evaluating") as done:  # its total comes with the work: no second scan
        rep, skipped = api.evaluate(args.data, args.model, done)
    print(json.dumps(rep, indent=2) if args.format == "json" else format_report(rep))
    if rep.get("seen_in_training"):
        print(f"hyperfcn: warning: {rep['seen_in_training']} of {rep['count']} images in "
              f"{args.data} were used to train this model: its accuracy on them is "
              f"optimistic; evaluate on images it has not seen", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # a file name that is not UTF-8 prints escaped (\udcff) instead of ending the command
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
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
