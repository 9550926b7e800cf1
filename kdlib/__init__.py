"""kdlib: the helper package behind the speech-model compression notebooks.

Its rooms, each a subpackage:

==================  ==========================================================================================
``kdlib.data``      audio I/O, augmentation, features, data sources and trial lists, PyTorch datasets, the
                    synthetic corpus (``kdlib.data.corpus``, with its eSpeak NG synthesizer) and real speech
``kdlib.models``    speaker models (ECAPA-TDNN, ResNet, GE2E), SSL models and their students, Whisper, heads,
                    saving and loading
``kdlib.zoo``       the shipped teachers: build, verify, load, measure
``kdlib.kd``        knowledge distillation: the losses, then one module per method (layer distillation,
                    OS-KDFT, ensemble KD, multi-task KD, distilling a real-speech teacher)
``kdlib.evaluation`` metrics, speaker verification, linear probes, the SUPERB-style suite, attribution,
                    size and speed
``kdlib.train``     the training loop (``kdlib.train.fit``), data-parallel training, SSL pretraining
``kdlib.quant``     weight quantization
``kdlib.course``    the collection's machinery: running notebooks, results records, reports, the course
                    book, exercise variants, screenshots, full-scale cost estimates
==================  ==========================================================================================

plus three small modules: ``kdlib.runtime`` (paths, smoke or full mode, seeds, devices, provenance),
``kdlib.progress`` (progress bars) and ``kdlib.plots`` (figures). Everything is imported lazily, so that
``import kdlib`` stays cheap (the corpus builder's worker processes import it).

The flat module names of kdlib 0.1 (``kdlib.evaluate``, ``kdlib.distill``, ``kdlib.runner`` ...) still import,
with a ``DeprecationWarning`` naming the new place; they go in the next release.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.2.0"

ROOMS = ("data", "models", "zoo", "kd", "evaluation", "train", "quant", "course", "runtime", "progress", "plots")

MOVED = {
    "config": "runtime",
    "audio": "data.audio",
    "augment": "data.augment",
    "features": "data.features",
    "sources": "data.sources",
    "datasets": "data.datasets",
    "espeak": "data.espeak",
    "sentences": "data.sentences",
    "corpus": "data.corpus",
    "distill": "kd.losses",
    "one_step": "kd.os_kdft",
    "ensemble": "kd.ensemble",
    "multitask": "kd.multitask",
    "metrics": "evaluation.metrics",
    "evaluate": "evaluation.verification",
    "probing": "evaluation.probing",
    "downstream": "evaluation.superb",
    "attribution": "evaluation.attribution",
    "bench": "evaluation.bench",
    "distributed": "train.distributed",
    "pretraining": "train.pretraining",
    "runner": "course.runner",
    "variants": "course.variants",
    "report": "course.report",
    "results": "course.results",
    "book": "course.book",
    "screenshots": "course.screenshots",
    "throughput": "course.throughput",
}
"""kdlib 0.1's flat module names -> where each module lives now (under ``kdlib.``)."""

SPLIT = {"transfer": ("data.unlabelled", "kd.real_teacher")}
"""kdlib 0.1's modules whose library part now lives in several modules (the rest went to ``experiments/``)."""


def _warn_moved(old: str) -> str:
    new = f"kdlib.{MOVED[old]}" if old in MOVED else " and ".join(f"kdlib.{part}" for part in SPLIT[old])
    warnings.warn(
        f"kdlib.{old} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=3
    )
    return new


def _split_module(old: str):
    """A module holding the public names of the modules ``old`` was split into (``kdlib.transfer``)."""
    import types

    _warn_moved(old)
    module = types.ModuleType(f"kdlib.{old}", f"kdlib 0.1's {old}: now {', '.join(SPLIT[old])}")
    for part in SPLIT[old]:
        source = importlib.import_module(f"kdlib.{part}")
        vars(module).update({k: v for k, v in vars(source).items() if not k.startswith("_")})
    return module


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import kdlib.evaluate`` (and ``kdlib.corpus.real`` ...) give the module at its new place, warning once."""

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if len(parts) < 2 or parts[0] != "kdlib" or parts[1] not in {**MOVED, **SPLIT}:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        old, _, rest = spec.name.partition(".")[2].partition(".")
        if old in SPLIT:
            return _split_module(old)
        module = importlib.import_module(_warn_moved(old) + (f".{rest}" if rest else ""))
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        if module.__spec__.loader_state is not None:  # the import system set the alias's spec; restore
            module.__spec__ = module.__spec__.loader_state


sys.meta_path.insert(0, _MovedModules())  # before the path finder, which would load a second copy


def __getattr__(name):
    if name in ROOMS:
        return importlib.import_module(f"kdlib.{name}")
    if name in MOVED or name in SPLIT:
        return importlib.import_module(f"kdlib.{name}")  # through _MovedModules: warns
    if name == "env_report":
        from kdlib.runtime import env_report

        return env_report
    raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
