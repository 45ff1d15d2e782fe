"""hyperfcn: tune a fully convolutional image classifier with Ray Tune, HyperOpt and ASHA.

The Python API mirrors the CLI::

    from hyperfcn import TuneOptions, tune, train, predict, evaluate
    result = tune(TuneOptions(data=Path("photos"), out=Path("runs/flowers"), samples=20))
"""

__version__ = "0.1.0"

from .api import RunResult, TuneOptions, evaluate, predict, report, train, tune  # noqa: E402

__all__ = ["RunResult", "TuneOptions", "evaluate", "predict", "report", "train", "tune",
           "__version__"]
