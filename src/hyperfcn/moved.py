"""Old module paths of moved modules, still importable: Ray pickles classes and functions by
their module path (the searcher's and the scheduler's state, the trainable, the callbacks in
`tune/tuner.pkl`), so a run interrupted before a module moved must still resume after.
Resolved lazily: importing hyperfcn imports none of them (nor Ray)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

# old path -> new path
MOVED = {**{f"hyperfcn.{m}": f"hyperfcn.tuning.{m}"
            for m in ("bohb", "compat", "scheduler", "search", "searchers", "session",
                      "trackers")},
         **{f"hyperfcn.{m}": f"hyperfcn.data.{m}"
            for m in ("sizing", "footprint", "cache_plan", "cache", "cache_admin", "prepare",
                      "buckets", "epoch")},
         # the classes a pickle can name (TrialData) stayed in arrays; its Keras glue is
         # hyperfcn.feed, its scores hyperfcn.metrics
         "hyperfcn.arrays": "hyperfcn.data.arrays"}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path=None, target=None):
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])  # the module itself, not a copy

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
