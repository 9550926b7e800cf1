"""kdlib: the helper package behind the speech-model compression notebooks.

Submodules are imported lazily (``kdlib.metrics``, ``kdlib.models`` ...) so that ``import kdlib`` stays
cheap, which matters for the corpus builder's worker processes.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"attribution", "audio", "augment", "bench", "book", "config", "corpus", "datasets", "distill",
               "distributed", "downstream", "ensemble", "espeak", "evaluate", "features", "metrics", "models",
               "multitask", "one_step", "plots", "pretraining", "probing", "progress", "quant", "report", "results",
               "runner", "screenshots", "sentences", "sources", "throughput", "train", "transfer", "variants", "zoo"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"kdlib.{name}")
    if name == "env_report":
        from kdlib.config import env_report

        return env_report
    raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
