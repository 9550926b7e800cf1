"""Recipes for the small SSL teachers, each a faithful miniature of its paper's objective.

- ``hubert-tiny``  HuBERT (Hsu et al., TASLP 2021): k-means on MFCC frames gives frame targets; the model
  sees the audio with spans of frames replaced by a learned mask embedding and predicts the targets,
  ``L = CE_masked + w_u·CE_unmasked`` with logits ``cos(W h_t, e_c)/τ``. Iteration 2 re-clusters the
  iteration-1 model's middle-layer features and trains again on the new targets.
- ``wav2vec2-tiny``  wav2vec 2.0 (Baevski et al., NeurIPS 2020): contrastive loss between the context
  vector at each masked frame and its Gumbel-quantized latent against K distractors, plus the codebook
  diversity loss (transformers' ``Wav2Vec2ForPreTraining``). It needed more than the others: with 1 s crops
  (49 frames, so the distractors come from a handful of frames of one utterance) it stayed below its random
  twin on the speaker probe at 2,700 and at 8,000 steps; 2 s crops pass, best with the paper's masking
  (p = 0.65, spans of 10). Every attempt is recorded in the zoo manifest under ``attempts``.
- ``wavlm-tiny``  WavLM (Chen et al., JSTSP 2022): HuBERT-style masked prediction with utterance mixing
  (a segment of another utterance overlaid at −5..5 dB on up to half of the input; the targets stay the
  primary utterance's) on the transformers WavLM architecture with gated relative position bias.
- ``hubert-tiny-robust``  the Robust HuBERT idea (Huang et al., ICASSP 2022): continue ``hubert-tiny``
  on distorted audio (noise at 0..10 dB SNR, reverberation, gain) against targets computed on clean audio
  (k-means of ``hubert-tiny``'s own layer-2 features, as in its second iteration).

All share one architecture size (4 layers of width 256, 64-channel CNN, 50 frames per second) so that the
ensemble notebook can average their layers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdlib import augment
from kdlib import corpus as corpus_mod
from kdlib import train
from kdlib.bench import count_params
from kdlib.config import device as default_device
from kdlib.audio import SAMPLE_RATE
from kdlib.config import seed_everything
from kdlib.datasets import AudioCache
from kdlib.probing import mfcc_frames

HOP, WINDOW = 320, 400  # the CNN's stride and receptive field in samples

ARCH = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
            conv_dim=(64,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
            feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=64,
            num_conv_pos_embedding_groups=16, hidden_dropout=0.05, attention_dropout=0.05,
            activation_dropout=0.0, feat_proj_dropout=0.05, layerdrop=0.0, mask_time_prob=0.05,
            mask_time_length=5)
"""Shared teacher size. ``mask_time_prob`` is the SpecAugment rate a user of the saved model inherits in
train mode (transformers' default 0.05); the recipes' own masking is set per recipe below."""

SSL_RECIPES = {
    "hubert-tiny": {"model_type": "hubert", "iterations": 2, "steps": 2500, "batch": 32, "crop_seconds": 1.0,
                    "lr": 1e-3, "warmup": 250, "n_clusters": 50, "mask_prob": 0.35, "mask_length": 5,
                    "unmasked_weight": 0.5, "temperature": 0.1, "recluster_layer": 2},
    "wavlm-tiny": {"model_type": "wavlm", "iterations": 2, "steps": 2500, "batch": 32, "crop_seconds": 1.0,
                   "lr": 1e-3, "warmup": 250, "n_clusters": 50, "mask_prob": 0.35, "mask_length": 5,
                   "unmasked_weight": 0.5, "temperature": 0.1, "recluster_layer": 2, "mix_prob": 0.2},
    "hubert-tiny-robust": {"model_type": "hubert", "init": "hubert-tiny", "iterations": 1, "steps": 1000,
                           "batch": 32, "crop_seconds": 1.0, "lr": 3e-4, "warmup": 100, "n_clusters": 50,
                           "recluster_layer": 2,
                           "mask_prob": 0.35, "mask_length": 5, "unmasked_weight": 0.5, "temperature": 0.1,
                           "distort": {"snr_db": [0.0, 10.0], "p_reverb": 0.5}},
    "wav2vec2-tiny": {"model_type": "wav2vec2", "steps": 8000, "batch": 32, "crop_seconds": 2.0, "lr": 1e-3,
                      "warmup": 250, "mask_prob": 0.65, "mask_length": 10, "num_negatives": 50,
                      "codevectors": 64, "groups": 2, "diversity_weight": 0.1, "gumbel": [2.0, 0.5]},
}


def ssl_config(model_type: str, **overrides):
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig

    cls = {"hubert": HubertConfig, "wavlm": WavLMConfig, "wav2vec2": Wav2Vec2Config}[model_type]
    return cls(**{**ARCH, **overrides})


# --------------------------------------------------------------------------------------------- data

class FrameCrops(Dataset):
    """Frame-aligned random crops of training clips and, when ``targets`` are given, their frame labels."""

    def __init__(self, source, rows, seconds: float, targets: dict[str, np.ndarray] | None = None):
        self.rows, self.audio, self.targets = rows, AudioCache(source), targets
        self.frames = (int(seconds * SAMPLE_RATE) - WINDOW) // HOP + 1
        self.samples = (self.frames - 1) * HOP + WINDOW

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path = self.rows[i]["path"]
        wave = self.audio(path)
        total = (len(wave) - WINDOW) // HOP + 1
        start = int(torch.randint(0, max(1, total - self.frames + 1), ()).item())
        chunk = wave[start * HOP: start * HOP + self.samples]
        chunk = np.pad(chunk, (0, self.samples - len(chunk)))
        item = {"wave": torch.from_numpy(np.ascontiguousarray(chunk))}
        if self.targets is not None:
            labels = self.targets[path][start: start + self.frames]
            item["labels"] = torch.from_numpy(np.pad(labels, (0, self.frames - len(labels)), constant_values=-100))
        return item


def _train_rows(data) -> list[dict]:
    return data.select("train", ("sentence", "keyword", "unknown"))


@torch.inference_mode()
def _frame_features(fn, data, rows, device) -> dict[str, np.ndarray]:
    audio = AudioCache(data)
    return {r["path"]: fn(torch.from_numpy(audio(r["path"])).unsqueeze(0).to(device))[0].cpu().numpy() for r in rows}


def kmeans_targets(features: dict[str, np.ndarray], n_clusters: int, seed: int, max_frames: int = 200_000):
    """Fit k-means on (a sample of) the frames and label every frame: ``{path: labels}``."""
    from sklearn.cluster import MiniBatchKMeans

    stacked = np.concatenate(list(features.values()))
    rng = np.random.default_rng(seed)
    sample = stacked[rng.choice(len(stacked), min(max_frames, len(stacked)), replace=False)]
    km = MiniBatchKMeans(n_clusters=n_clusters, batch_size=10_000, n_init=3, random_state=seed).fit(sample)
    return {path: km.predict(f).astype(np.int64) for path, f in features.items()}


# --------------------------------------------------------------------------------------------- objectives

def compute_mask(batch: int, frames: int, prob: float, length: int) -> torch.Tensor:
    """Span masks as in wav2vec 2.0 / HuBERT (transformers' sampler): ``(batch, frames)`` bools."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    return torch.from_numpy(_compute_mask_indices((batch, frames), prob, length, min_masks=2))


class MaskedPredictionHead(nn.Module):
    r"""HuBERT's target predictor: ``p(c | h_t) ∝ exp(cos(W h_t, e_c)/τ)`` over the k-means classes."""

    def __init__(self, hidden: int, n_clusters: int, dim: int = 128, temperature: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(hidden, dim)
        self.codes = nn.Parameter(torch.randn(n_clusters, dim) * 0.1)
        self.temperature = temperature

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.proj(hidden), dim=-1) @ nn.functional.normalize(self.codes, dim=-1).T \
            / self.temperature


def masked_prediction_loss(logits, labels, mask, unmasked_weight: float):
    """``CE over masked frames + w_u · CE over unmasked frames`` (frames labelled −100 are ignored);
    returns the loss and the masked-frame accuracy."""
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    valid = labels != -100
    m, u = mask & valid, ~mask & valid
    loss = ce[m].mean() + (unmasked_weight * ce[u].mean() if unmasked_weight and u.any() else 0.0)
    acc = (logits.argmax(-1)[m] == labels[m]).float().mean()
    return loss, acc


def mix_utterances(wave: torch.Tensor, prob: float, generator: np.random.Generator) -> torch.Tensor:
    """WavLM's utterance mixing: overlay a random segment (at most half the length) of another batch item at
    an energy ratio drawn from −5..5 dB on a fraction ``prob`` of the batch."""
    out = wave.clone()
    n, length = wave.shape
    for i in range(n):
        if n < 2 or generator.random() >= prob:
            continue
        j = (i + 1 + int(generator.integers(0, n - 1))) % n
        seg = int(generator.integers(1, length // 2 + 1))
        src, dst = int(generator.integers(0, length - seg + 1)), int(generator.integers(0, length - seg + 1))
        secondary = wave[j, src: src + seg]
        ratio_db = generator.uniform(-5, 5)
        e1, e2 = wave[i].pow(2).mean(), secondary.pow(2).mean().clamp(min=1e-8)
        scale = torch.sqrt(e1 / (e2 * 10 ** (ratio_db / 10)))
        out[i, dst: dst + seg] += scale * secondary
    return out


def distort(wave: torch.Tensor, generator: np.random.Generator, snr_db=(0.0, 10.0), p_reverb: float = 0.5):
    """Robust-HuBERT style distortion of a batch: reverberation, noise at a low SNR, random gain."""
    out = []
    for x in wave.numpy():
        y = augment.reverb(x, generator, SAMPLE_RATE) if generator.random() < p_reverb else x
        y = augment.add_noise(y, generator, tuple(snr_db))
        out.append(y * generator.uniform(0.3, 1.5))
    return torch.from_numpy(np.stack(out).astype(np.float32))


# --------------------------------------------------------------------------------------------- training

class _MaskedPredictor(nn.Module):
    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head


def _train_masked_prediction(model, targets, data, rows, recipe, steps, device, seed):
    head = MaskedPredictionHead(model.config.hidden_size, recipe["n_clusters"], temperature=recipe["temperature"])
    net = _MaskedPredictor(model, head)
    loader = DataLoader(FrameCrops(data, rows, recipe["crop_seconds"], targets), batch_size=recipe["batch"],
                        shuffle=True, drop_last=True)
    rng = np.random.default_rng(seed)

    def loss_fn(batch):
        wave, labels = batch["wave"], batch["labels"]
        if recipe.get("mix_prob"):
            wave = mix_utterances(wave.cpu(), recipe["mix_prob"], rng).to(wave.device)
        if recipe.get("distort"):
            wave = distort(wave.cpu(), rng, **recipe["distort"]).to(wave.device)
        mask = compute_mask(wave.shape[0], labels.shape[1], recipe["mask_prob"], recipe["mask_length"]).to(wave.device)
        hidden = net.model(wave, mask_time_indices=mask).last_hidden_state
        loss, acc = masked_prediction_loss(net.head(hidden), labels, mask, recipe["unmasked_weight"])
        return loss, {"masked_accuracy": acc}

    return _fit_steps(net, loader, loss_fn, recipe, steps, device, seed)


def _fit_steps(net, loader, loss_fn, recipe, steps, device, seed):
    """Train for about ``steps`` optimizer steps (whole passes over the loader, at least one)."""
    epochs = max(1, round(steps / len(loader)))
    return train.fit(net, loader, loss_fn, epochs=epochs, lr=recipe["lr"], weight_decay=0.01,
                     warmup_steps=recipe["warmup"], device=device, seed=seed,
                     max_steps_per_epoch=min(len(loader), steps))


def _train_wav2vec2(data, rows, recipe, steps, device, seed):
    from transformers import Wav2Vec2ForPreTraining
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    config = ssl_config("wav2vec2", num_codevectors_per_group=recipe["codevectors"],
                        num_codevector_groups=recipe["groups"], codevector_dim=128, proj_codevector_dim=128,
                        num_negatives=recipe["num_negatives"], diversity_loss_weight=recipe["diversity_weight"])
    net = Wav2Vec2ForPreTraining(config)
    loader = DataLoader(FrameCrops(data, rows, recipe["crop_seconds"]), batch_size=recipe["batch"], shuffle=True,
                        drop_last=True)
    t_start, t_end = recipe["gumbel"]
    state = {"step": 0}

    def loss_fn(batch):
        wave = batch["wave"]
        frames = (wave.shape[1] - WINDOW) // HOP + 1
        mask = compute_mask(wave.shape[0], frames, recipe["mask_prob"], recipe["mask_length"])
        negatives = _sample_negative_indices((wave.shape[0], frames), recipe["num_negatives"], mask.numpy())
        net.set_gumbel_temperature(max(t_end, t_start * (t_end / t_start) ** (state["step"] / max(1, steps))))
        state["step"] += 1
        out = net(wave, mask_time_indices=mask.to(wave.device),
                  sampled_negative_indices=torch.from_numpy(negatives).to(wave.device))
        n_masked = mask.sum().clamp(min=1)
        return out.loss / n_masked, {"contrastive": out.contrastive_loss / n_masked,
                                     "diversity": out.diversity_loss}

    return net.wav2vec2, _fit_steps(net, loader, loss_fn, recipe, steps, device, seed)


def recipe_with(name: str, overrides: dict | None = None) -> dict:
    """The recipe of ``name`` with ``overrides`` applied; an unknown key is an error, not a silent no-op."""
    recipe = dict(SSL_RECIPES[name])
    unknown = sorted(set(overrides or {}) - set(recipe))
    if unknown:
        raise KeyError(f"recipe '{name}' has no setting {unknown}; its settings are {sorted(recipe)}")
    return {**recipe, **(overrides or {})}


def build_ssl(name: str, out_dir: Path, corpus: str = "default", smoke: bool = False, seed: int = 0,
              overrides: dict | None = None) -> dict:
    """Pretrain SSL teacher ``name``, probe it, save it in transformers' format; return its manifest entry.
    ``overrides`` replace recipe settings (``{"steps": 8000}``) and are recorded in the manifest."""
    from kdlib.zoo import provenance
    from kdlib.zoo.probe import probe_report

    recipe = recipe_with(name, overrides)
    steps = 2 if smoke else recipe["steps"]
    seed_everything(seed)
    data = corpus_mod.load(corpus)
    rows = _train_rows(data)
    device = default_device()
    start = time.time()
    log = {}
    if recipe["model_type"] == "wav2vec2":
        model, history = _train_wav2vec2(data, rows, recipe, steps, device, seed)
        log["final_contrastive"] = history.epoch_means("contrastive")[-1]
    else:
        if recipe.get("init"):
            from kdlib import zoo

            model = zoo.load(recipe["init"]).train()
        else:
            from transformers import HubertModel, WavLMModel

            cls = {"hubert": HubertModel, "wavlm": WavLMModel}[recipe["model_type"]]
            model = cls(ssl_config(recipe["model_type"]))
        for iteration in range(recipe["iterations"]):
            if iteration == 0 and not recipe.get("init"):  # HuBERT iteration 1: k-means on MFCC frames
                targets = kmeans_targets(_frame_features(mfcc_frames, data, rows, "cpu"), recipe["n_clusters"], seed)
            else:  # HuBERT iteration 2, or continued training: re-cluster the model's own middle-layer features
                model.eval()
                layer = recipe["recluster_layer"]
                feats = _frame_features(lambda w: model(w, output_hidden_states=True).hidden_states[layer],
                                        data, rows, device)
                targets = kmeans_targets(feats, recipe["n_clusters"], seed + iteration)
            history = _train_masked_prediction(model, targets, data, rows, recipe, steps, device, seed + iteration)
            log[f"iteration{iteration + 1}_masked_accuracy"] = history.epoch_means("masked_accuracy")[-1]
    record = provenance(data, start, device)
    model = model.eval().cpu()
    probes = probe_report(model, data, device=device)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out_dir), safe_serialization=True)
    return {"name": name, "architecture": type(model).__name__, "params": count_params(model),
            "recipe": {"name": name, **recipe, "steps": steps, "seed": seed, **log},
            **record, "metrics": probes}
