"""Recipes for the speaker-verification teachers: ECAPA-TDNN (C=512) and ResNet-34, trained with
AAM-softmax on the embedded corpus's training speakers, evaluated on its test and other-language trials."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from kdlib import corpus as corpus_mod
from kdlib import evaluate, features, train
from kdlib.bench import count_params
from kdlib.config import device as default_device
from kdlib.config import seed_everything
from kdlib.datasets import SVTrainCrops
from kdlib.models import ECAPA_TDNN, ResNet34, SpeakerClassifier
from kdlib.zoo import checkpoint_path, provenance

ARCHITECTURES = {"ecapa_tdnn": ECAPA_TDNN, "resnet34": ResNet34}
SV_RECIPES = {
    "ecapa": {"architecture": "ecapa_tdnn", "kwargs": {"channels": 512, "embed_dim": 192}, "epochs": 8,
              "batch": 32, "crop_seconds": 2.0, "lr": 2e-3, "weight_decay": 2e-5, "margin": 0.2, "scale": 30.0},
    "resnet34": {"architecture": "resnet34", "kwargs": {"base": 32, "embed_dim": 256}, "epochs": 3,
                 "batch": 32, "crop_seconds": 2.0, "lr": 2e-3, "weight_decay": 2e-5, "margin": 0.2, "scale": 30.0},
}


def build_sv(name: str, out_dir: Path, corpus: str = "default", smoke: bool = False, seed: int = 0) -> dict:
    """Train SV teacher ``name`` and save it to ``out_dir``; return its manifest entry (without file hashes)."""
    recipe = dict(SV_RECIPES[name])
    if smoke:
        recipe.update(epochs=1, kwargs={**recipe["kwargs"], **({"channels": 32} if "channels" in recipe["kwargs"]
                                                                else {"base": 4})})
    seed_everything(seed)
    data = corpus_mod.load(corpus)
    start = time.time()
    train_set = SVTrainCrops(data, seconds=recipe["crop_seconds"])
    loader = DataLoader(train_set, batch_size=recipe["batch"], shuffle=True, drop_last=True)
    encoder = ARCHITECTURES[recipe["architecture"]](**recipe["kwargs"])
    model = SpeakerClassifier(encoder, train_set.n_speakers, margin=recipe["margin"], scale=recipe["scale"])
    device = default_device()
    ckpt = checkpoint_path(name)
    history = train.fit(model, loader, model.loss, epochs=recipe["epochs"], lr=recipe["lr"],
                        weight_decay=recipe["weight_decay"], warmup_steps=len(loader) // 2, device=device, seed=seed,
                        max_steps_per_epoch=2 if smoke else None, checkpoint=ckpt)
    encoder = model.encoder.eval()
    mfcc = features.MFCCStats().fit(train_set.audio(r["path"]) for r in train_set.rows[:: max(1, len(train_set) // 400)])
    metrics = {}
    for prefix, embed, dev in (("", encoder, device), ("mfcc_stats_", mfcc, "cpu")):
        for which in ("trials", "trials_other"):
            res = evaluate.evaluate_sv(embed, data, which, device=dev, progress=False)
            metrics[prefix + which] = {"eer": round(res["eer"], 5), "min_dcf": round(res["min_dcf"], 5)}
    record = provenance(data, start, device)
    save_sv(encoder.cpu(), out_dir, recipe["architecture"], recipe["kwargs"])
    ckpt.unlink(missing_ok=True)
    return {"name": name, "architecture": recipe["architecture"], "params": count_params(encoder),
            "recipe": {"name": name, **recipe, "seed": seed, "final_train_loss": history.epoch_means()[-1]},
            **record, "metrics": metrics}


def save_sv(encoder: torch.nn.Module, out_dir: Path, architecture: str, kwargs: dict) -> None:
    """config.json + fp16 model.safetensors (fp16 halves the shipped size; weights are cast back on load)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps({"kdlib_architecture": architecture, "kwargs": kwargs}, indent=1))


def load_sv(folder: Path) -> torch.nn.Module:
    config = json.loads((Path(folder) / "config.json").read_text())
    model = ARCHITECTURES[config["kdlib_architecture"]](**config["kwargs"])
    state = load_file(str(Path(folder) / "model.safetensors"))
    reference = model.state_dict()
    model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    return model.eval()
