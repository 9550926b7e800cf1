"""Building the zoo's teachers: train from a recipe of :mod:`kdlib.zoo.recipes`, evaluate or probe, save.

Each build returns the teacher's manifest entry (recipe, corpus, provenance, metrics); the command line
(``python -m kdlib.zoo build --teacher NAME``) saves it atomically and registers it.
"""

from __future__ import annotations

import time
from pathlib import Path

from torch.utils.data import DataLoader

from kdlib import train
from kdlib.data import corpus as corpus_mod
from kdlib.data.datasets import SVTrainCrops
from kdlib.data.features import mfcc_baseline
from kdlib.evaluation import verification
from kdlib.evaluation.bench import count_params
from kdlib.models import save_speaker_model, speaker_model
from kdlib.runtime import device as default_device
from kdlib.runtime import provenance, seed_everything
from kdlib.zoo.recipes import SV_RECIPES, recipe_with


def checkpoint_path(name: str) -> Path:
    """Where a build keeps its resumable training checkpoint: the git-ignored cache, never the zoo."""
    from kdlib.runtime import data_dir

    return data_dir() / "cache" / "zoo" / f"{name}.train.pt"


def _record(data, started: float, device: str) -> dict:
    """The ``corpus`` and ``build`` parts of a manifest entry: what a teacher was trained on, where, how long."""
    return {
        "corpus": {
            "name": data.info["name"],
            "version": data.info["version"],
            "content_hash": data.info["content_hash"],
        },
        "build": {"wall_time_s": round(time.time() - started, 1), "device": device, **provenance()},
    }


def build_sv(name: str, out_dir: Path, corpus: str = "default", smoke: bool = False, seed: int = 0) -> dict:
    """Train SV teacher ``name`` and save it to ``out_dir``; return its manifest entry (without file hashes)."""
    recipe = dict(SV_RECIPES[name])
    if smoke:
        recipe.update(
            epochs=1,
            kwargs={**recipe["kwargs"], **({"channels": 32} if "channels" in recipe["kwargs"] else {"base": 4})},
        )
    seed_everything(seed)
    data = corpus_mod.load(corpus)
    start = time.time()
    train_set = SVTrainCrops(data, seconds=recipe["crop_seconds"])
    loader = DataLoader(train_set, batch_size=recipe["batch"], shuffle=True, drop_last=True)
    model = speaker_model(
        recipe["architecture"], train_set.n_speakers, recipe["margin"], recipe["scale"], **recipe["kwargs"]
    )
    device = default_device()
    ckpt = checkpoint_path(name)
    history = train.fit(
        model,
        loader,
        model.loss,
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        weight_decay=recipe["weight_decay"],
        warmup_steps=len(loader) // 2,
        device=device,
        seed=seed,
        max_steps_per_epoch=2 if smoke else None,
        checkpoint=ckpt,
        desc=name,
    )
    teacher, mfcc = model.deployable(), mfcc_baseline(data)
    metrics = {}
    for prefix, embedder in (("", teacher), ("mfcc_stats_", mfcc)):
        for which in ("trials", "trials_other"):
            res = verification.sv(embedder, data, trials=which, progress=False)
            metrics[prefix + which] = {"eer": round(res["eer"], 5), "min_dcf": round(res["min_dcf"], 5)}
    record = _record(data, start, device)
    save_speaker_model(teacher, out_dir, recipe["architecture"], recipe["kwargs"])
    ckpt.unlink(missing_ok=True)
    return {
        "name": name,
        "architecture": recipe["architecture"],
        "params": count_params(teacher),
        "recipe": {"name": name, **recipe, "seed": seed, "final_train_loss": history.epoch_means()[-1]},
        **record,
        "metrics": metrics,
    }


def _ssl_model(recipe: dict, zoo: Path | None):
    if recipe.get("init"):
        from kdlib.zoo import load

        return load(recipe["init"], zoo=zoo).train()
    from transformers import HubertModel, WavLMModel

    from kdlib.zoo.recipes import ssl_config

    return {"hubert": HubertModel, "wavlm": WavLMModel}[recipe["model_type"]](ssl_config(recipe["model_type"]))


def build_ssl(
    name: str,
    out_dir: Path,
    corpus: str = "default",
    smoke: bool = False,
    seed: int = 0,
    overrides: dict | None = None,
    zoo: Path | None = None,
) -> dict:
    """Pretrain SSL teacher ``name``, probe it, save it in transformers' format; return its manifest entry.
    ``overrides`` replace recipe settings (``{"steps": 8000}``) and are recorded in the manifest; a recipe
    that continues another teacher (``init``) loads it from ``zoo``."""
    from kdlib.data.features import mfcc_frames
    from kdlib.evaluation.probing import probe_report, probe_spread
    from kdlib.train import pretraining

    recipe = recipe_with(name, overrides)
    steps = 2 if smoke else recipe["steps"]
    seed_everything(seed)
    data = corpus_mod.load(corpus)
    rows = data.select("train", ("sentence", "keyword", "unknown"))
    device = default_device()
    start = time.time()
    log = {}
    if recipe["model_type"] == "wav2vec2":
        model, history = pretraining.train_wav2vec2(data, rows, recipe, steps, device, seed)
        log["final_contrastive"] = history.epoch_means("contrastive")[-1]
    else:
        model = _ssl_model(recipe, zoo)
        for iteration in range(recipe["iterations"]):
            if iteration == 0 and not recipe.get("init"):  # HuBERT iteration 1: k-means on MFCC frames
                feats = pretraining.frame_features(mfcc_frames, data, rows, "cpu")
                targets = pretraining.kmeans_targets(feats, recipe["n_clusters"], seed)
            else:  # HuBERT iteration 2, or continued training: re-cluster the model's own middle-layer features
                model.eval()
                layer = recipe["recluster_layer"]
                feats = pretraining.frame_features(
                    lambda w: model(w, output_hidden_states=True).hidden_states[layer], data, rows, device
                )
                targets = pretraining.kmeans_targets(feats, recipe["n_clusters"], seed + iteration)
            history = pretraining.train_masked_prediction(
                model, targets, data, rows, recipe, steps, device, seed + iteration
            )
            log[f"iteration{iteration + 1}_masked_accuracy"] = history.epoch_means("masked_accuracy")[-1]
    record = _record(data, start, device)
    model = model.eval().cpu()
    probes = probe_report(model, data, device=device)
    spread = {"splits": 2, "twin_seeds": 1} if smoke else {}  # else probe_spread's own defaults, as kdlib.zoo probe
    probes["probe_spread"] = probe_spread(model, data, device=device, progress=False, **spread)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "name": name,
        "architecture": type(model).__name__,
        "params": count_params(model),
        "recipe": {"name": name, **recipe, "steps": steps, "seed": seed, **log},
        **record,
        "metrics": probes,
    }
