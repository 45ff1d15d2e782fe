"""hyperfcn: tune a fully convolutional image classifier with Ray Tune, HyperOpt and ASHA.

The Python API mirrors the CLI::

    from hyperfcn import TuneOptions, tune, train, predict, evaluate, load
    result = tune(TuneOptions(data="photos", out="runs/flowers", samples=20))
    model = load("runs/flowers")
    model.predict([pil_image, numpy_array])  # -> ["daisy", "roses"]
"""

__version__ = "0.1.0"

from . import moved  # noqa: E402

moved.install()  # modules that moved stay importable by their old paths (Ray's pickles)

from .api import (  # noqa: E402
    RunResult,
    TuneOptions,
    cache_entries,
    clear_cache,
    evaluate,
    export,
    load,
    predict,
    report,
    train,
    tune,
)

__all__ = ["RunResult", "TuneOptions", "cache_entries", "clear_cache", "evaluate", "export",
           "load", "predict", "report", "train", "tune", "__version__"]
