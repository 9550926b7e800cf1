"""Self-supervised pretraining objectives for the zoo's small SSL teachers, each a miniature of its paper's.

- HuBERT (Hsu et al., TASLP 2021, arXiv 2106.07447): k-means on frame features gives frame targets; spans of
  frames are replaced by a learned mask embedding and the model predicts the targets,
  ``L = CE_masked + w_u·CE_unmasked`` with logits ``cos(W h_t, e_c)/τ`` (:func:`masked_prediction_loss`).
- WavLM (Chen et al., JSTSP 2022, arXiv 2110.13900): the same with utterance mixing (:func:`mix_utterances`).
- Robust HuBERT (Huang et al., ICASSP 2022, arXiv 2203.15321): distorted input, targets from clean audio
  (:func:`distort`).
- wav2vec 2.0 (Baevski et al., NeurIPS 2020, arXiv 2006.11477): contrastive loss between the context vector
  at each masked frame and its quantized latent against K distractors, plus the codebook diversity loss
  (:func:`train_wav2vec2`).

Which teacher uses which, with what settings, is the zoo's table (:mod:`kdlib.zoo.recipes`); the builds
themselves are :mod:`kdlib.zoo.build`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from kdlib import train
from kdlib.data import augment
from kdlib.data.audio import SAMPLE_RATE
from kdlib.data.datasets import HOP, WINDOW, FrameCrops, map_clips
from kdlib.evaluation import metrics

# --------------------------------------------------------------------------------------------- targets


@torch.inference_mode()
def frame_features(fn, source, rows, device) -> dict[str, np.ndarray]:
    """``{path: fn(clip)[0]}`` as NumPy arrays, e.g. MFCC frames or one layer's hidden states per clip."""
    paths = [r["path"] for r in rows]
    return {p: f[0].numpy() for p, f in zip(paths, map_clips(fn, source, paths, device, progress=False))}


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
        return (
            nn.functional.normalize(self.proj(hidden), dim=-1)
            @ nn.functional.normalize(self.codes, dim=-1).T
            / self.temperature
        )


def masked_prediction_loss(logits, labels, mask, unmasked_weight: float):
    """``CE over masked frames + w_u · CE over unmasked frames`` (frames labelled −100 are ignored);
    returns the loss and the masked-frame accuracy."""
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    valid = labels != -100
    m, u = mask & valid, ~mask & valid
    loss = ce[m].mean() + (unmasked_weight * ce[u].mean() if unmasked_weight and u.any() else 0.0)
    return loss, metrics.accuracy(logits[m], labels[m])


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
        secondary = wave[j, src : src + seg]
        ratio_db = generator.uniform(-5, 5)
        e1, e2 = wave[i].pow(2).mean(), secondary.pow(2).mean().clamp(min=1e-8)
        scale = torch.sqrt(e1 / (e2 * 10 ** (ratio_db / 10)))
        out[i, dst : dst + seg] += scale * secondary
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


def train_masked_prediction(model, targets, data, rows, recipe, steps, device, seed):
    """HuBERT-style masked prediction of frame ``targets`` (``{path: labels}``), with WavLM's utterance mixing
    (``mix_prob``) or Robust HuBERT's distortion (``distort``) when the recipe asks. Returns the history."""
    head = MaskedPredictionHead(model.config.hidden_size, recipe["n_clusters"], temperature=recipe["temperature"])
    net = _MaskedPredictor(model, head)
    loader = DataLoader(
        FrameCrops(data, rows, recipe["crop_seconds"], targets),
        batch_size=recipe["batch"],
        shuffle=True,
        drop_last=True,
    )
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
    return train.fit(
        net,
        loader,
        loss_fn,
        epochs=epochs,
        lr=recipe["lr"],
        weight_decay=0.01,
        warmup_steps=recipe["warmup"],
        device=device,
        seed=seed,
        max_steps_per_epoch=min(len(loader), steps),
        desc=f"{recipe.get('model_type', 'ssl')} pretraining",
    )


def train_wav2vec2(data, rows, recipe, steps, device, seed):
    """wav2vec 2.0 pretraining (transformers' ``Wav2Vec2ForPreTraining``): contrastive + diversity loss, the
    Gumbel temperature annealed from ``gumbel[0]`` to ``gumbel[1]``. Returns the encoder and the history."""
    from transformers import Wav2Vec2ForPreTraining
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    from kdlib.zoo.recipes import ssl_config

    config = ssl_config(
        "wav2vec2",
        num_codevectors_per_group=recipe["codevectors"],
        num_codevector_groups=recipe["groups"],
        codevector_dim=128,
        proj_codevector_dim=128,
        num_negatives=recipe["num_negatives"],
        diversity_loss_weight=recipe["diversity_weight"],
    )
    net = Wav2Vec2ForPreTraining(config)
    loader = DataLoader(
        FrameCrops(data, rows, recipe["crop_seconds"]), batch_size=recipe["batch"], shuffle=True, drop_last=True
    )
    t_start, t_end = recipe["gumbel"]
    state = {"step": 0}

    def loss_fn(batch):
        wave = batch["wave"]
        frames = (wave.shape[1] - WINDOW) // HOP + 1
        mask = compute_mask(wave.shape[0], frames, recipe["mask_prob"], recipe["mask_length"])
        negatives = _sample_negative_indices((wave.shape[0], frames), recipe["num_negatives"], mask.numpy())
        net.set_gumbel_temperature(max(t_end, t_start * (t_end / t_start) ** (state["step"] / max(1, steps))))
        state["step"] += 1
        out = net(
            wave,
            mask_time_indices=mask.to(wave.device),
            sampled_negative_indices=torch.from_numpy(negatives).to(wave.device),
        )
        n_masked = mask.sum().clamp(min=1)
        return out.loss / n_masked, {"contrastive": out.contrastive_loss / n_masked, "diversity": out.diversity_loss}

    return net.wav2vec2, _fit_steps(net, loader, loss_fn, recipe, steps, device, seed)
