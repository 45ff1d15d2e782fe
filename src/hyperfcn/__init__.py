"""hyperfcn: tune a fully convolutional image classifier with Ray Tune, HyperOpt and ASHA.

The Python API mirrors the CLI::

    from hyperfcn import TuneOptions, tune, train, predict, evaluate
    result = tune(TuneOptions(data=Path("photos"), out=Path("runs/flowers"), samples=20))
"""

__version__ = "0.1.0"

from .api import (  # noqa: E402
    RunResult,
    TuneOptions,
    cache_entries,
    clear_cache,
    evaluate,
    export,
    predict,
    report,
    train,
    tune,
)

__all__ = ["RunResult", "TuneOptions", "cache_entries", "clear_cache", "evaluate", "export",
           "predict", "report", "train", "tune", "__version__"]
