"""Self-supervised speech models (wav2vec 2.0, HuBERT, WavLM) through Hugging Face transformers.

- :func:`load_ssl` loads any of the three from a hub id or a local directory (``from_pretrained``; a
  local directory works offline) and :class:`SSLEncoder` returns every layer's hidden states.
- :func:`make_student` builds a student from a teacher by keeping the CNN feature encoder, the feature
  projection, the positional convolution and the first L transformer layers, weights copied
  (DistilHuBERT, Chang et al. ICASSP 2022; OS-KDFT, Heo et al. Interspeech 2023).
- :func:`add_adapters` puts a bottleneck adapter in parallel with each layer's feed-forward block
  (OS-KDFT): ``h + FFN(h) + s·up(ReLU(down(LN(h))))``, with ``up`` zero-initialised so that the adapter
  starts as the identity. Adapters can be switched off per sample, which is how one batch carries a
  KD branch (no adapters) and a fine-tuning branch (adapters) through the same weights.
- :func:`without_feature_encoder` gives the same model reading the CNN's output, so that a frozen CNN's
  features can be computed once and cached; :func:`stem_output` and :func:`without_stem` go one step
  further (a frozen CNN, feature projection and positional convolution); :class:`SSLFrontEnd` makes any of
  them a speaker model's front end (hidden states as ``(batch, dim, frames)``).
- :func:`paper_scale_ssl` builds the published architectures (wav2vec 2.0 XLSR-53, HuBERT Base) with random
  weights, for size and speed measurements without a download.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

SSL_CLASSES = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel"}


def _model_class(model_type: str):
    import transformers

    if model_type not in SSL_CLASSES:
        raise ValueError(f"unsupported model_type {model_type!r}; kdlib loads {sorted(SSL_CLASSES)}")
    return getattr(transformers, SSL_CLASSES[model_type])


def load_ssl(
    name_or_path: str | Path, revision: str | None = None, dtype: torch.dtype = torch.float32, **kwargs
) -> nn.Module:
    """Load a Wav2Vec2/HuBERT/WavLM base model (no task head), or a Whisper encoder
    (:func:`kdlib.models.whisper.load_whisper`), from a local directory or a hub id.

    A local directory is read with ``local_files_only=True`` so that no network is touched; a hub id needs
    one (pin ``revision`` for reproducibility). Weights are cast to ``dtype`` (float32 unless asked: a
    checkpoint stored in float16 would otherwise load as float16 and fail on float32 audio). The model is
    returned in eval mode.
    """
    from transformers import AutoConfig

    local = Path(name_or_path).is_dir()
    if not local and Path(name_or_path).exists():
        raise ValueError(f"{name_or_path}: is a file; expected a checkpoint directory or a hub id")
    options = {"local_files_only": True} if local else {"revision": revision}
    config = AutoConfig.from_pretrained(str(name_or_path), **options)
    if config.model_type == "whisper":
        from kdlib.models.whisper import load_whisper

        return load_whisper(name_or_path, revision)
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a weight-loading bar per teacher clutters notebooks (frozen at 0 % when saved)
    try:
        model = _model_class(config.model_type).from_pretrained(str(name_or_path), dtype=dtype, **options, **kwargs)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return model.eval()


class SSLEncoder(nn.Module):
    """Wrap an SSL model: ``forward(wave) -> list`` of hidden states ``(batch, frames, dim)``, index 0 being
    the transformer's input and index i the output of layer i."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def forward(self, wave: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        out = self.model(wave, attention_mask=attention_mask, output_hidden_states=True)
        return list(out.hidden_states)


def make_student(teacher: nn.Module, num_layers: int) -> nn.Module:
    """A copy of ``teacher`` that keeps its front end and first ``num_layers`` transformer layers, with weights."""
    total = teacher.config.num_hidden_layers
    if not 1 <= num_layers <= total:
        raise ValueError(f"num_layers must be in 1..{total}, got {num_layers}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = num_layers
    student = type(teacher)(config)
    missing, unexpected = student.load_state_dict(
        {k: v for k, v in teacher.state_dict().items() if k in student.state_dict()}, strict=False
    )
    if missing:
        raise RuntimeError(f"student weights not found in the teacher: {missing[:5]}")
    return student


class ParallelAdapter(nn.Module):
    """``FFN(x) + scale·up(ReLU(down(LN(x))))`` with a per-sample on/off mask (``mask`` of shape (batch,))."""

    def __init__(self, feed_forward: nn.Module, hidden: int, bottleneck: int = 64, scale: float = 0.1):
        super().__init__()
        self.feed_forward = feed_forward
        self.norm = nn.LayerNorm(hidden)
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.scale = scale
        self.mask: torch.Tensor | None = None  # None: on for every sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapter = self.scale * self.up(torch.relu(self.down(self.norm(x))))
        if self.mask is not None:
            adapter = adapter * self.mask.to(adapter.dtype).view(-1, *([1] * (adapter.dim() - 1)))
        return self.feed_forward(x) + adapter


def add_adapters(model: nn.Module, bottleneck: int = 64, scale: float = 0.1) -> list[ParallelAdapter]:
    """Insert a :class:`ParallelAdapter` around every transformer layer's feed-forward block (in place)."""
    layers = model.encoder.layers
    if _is_whisper(model):  # a Whisper layer computes its feed-forward inline: give it a module to wrap first
        from kdlib.models.whisper import with_feed_forward_module

        for layer in layers:
            if not hasattr(layer, "feed_forward"):
                with_feed_forward_module(layer)
    adapters = []
    for layer in layers:
        adapter = ParallelAdapter(layer.feed_forward, model.config.hidden_size, bottleneck, scale)
        layer.feed_forward = adapter
        adapters.append(adapter)
    return adapters


def set_adapter_mask(adapters: list[ParallelAdapter], mask: torch.Tensor | None) -> None:
    """Switch adapters on (1) or off (0) per sample for the next forward pass; ``None`` turns them all on."""
    for adapter in adapters:
        adapter.mask = mask


def adapter_parameters(adapters: list[ParallelAdapter]) -> list[nn.Parameter]:
    """The adapters' own weights (layer norm, down, up), not the feed-forward blocks they wrap."""
    return [p for a in adapters for part in (a.norm, a.down, a.up) for p in part.parameters()]


def without_feature_encoder(model: nn.Module) -> nn.Module:
    """The same model, sharing every weight, that reads the CNN feature encoder's output ``(batch, channels,
    frames)`` instead of audio: everything after the CNN (feature projection, positional convolution,
    transformer layers). With a frozen CNN shared by teacher and students, its output is computed once per
    clip and cached; training the rest then costs a fraction of a full forward pass.

    A shallow copy whose ``feature_extractor`` is the identity; the original model is left untouched and
    still takes audio. Works for wav2vec 2.0, HuBERT and WavLM (their forward passes start with
    ``feature_extractor(input_values)``), and for a Whisper encoder (which then reads its log-mel spectrogram).
    """
    if _is_whisper(model):
        return model.without_feature_encoder()
    _install_output_hooks(model)
    body = copy.copy(model)
    body._modules = {**model._modules, "feature_extractor": nn.Identity()}
    return body


def _is_whisper(model: nn.Module) -> bool:
    from kdlib.models.whisper import WhisperSpeechEncoder

    return isinstance(model, WhisperSpeechEncoder)


def _install_output_hooks(model: nn.Module) -> None:
    """Install transformers' hidden-state recording hooks on ``model`` now, before a shallow copy shares its layers.
    transformers installs them lazily, once per model object: a copy that ran first would hook the shared layers
    and the original would hook them again, returning every layer's state twice."""
    from transformers.utils.output_capturing import maybe_install_capturing_hooks

    maybe_install_capturing_hooks(model)


class _PassThrough(nn.Module):
    """Stands in for a feature projection: returns its input (twice where the original returns a pair)."""

    def __init__(self, pair: bool):
        super().__init__()
        self.pair = pair

    def forward(self, x: torch.Tensor):
        return (x, x) if self.pair else x


class _NoPosition(nn.Module):
    """Stands in for the positional convolution: adds nothing (the cached stem output already holds it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def stem_output(model: nn.Module, cnn_features: torch.Tensor) -> torch.Tensor:
    """The *stem* of a wav2vec 2.0 / HuBERT / WavLM model on CNN features ``(batch, channels, frames)``: the
    feature projection ``p`` and the positional convolution added to it, ``s = p + posconv(p)``, as
    ``(batch, frames, dim)``. This is what the transformer layers receive (for the pre-norm layout it is the
    hidden state of index 0 in eval mode; the post-norm layout applies its layer norm after it). For a Whisper
    encoder, ``cnn_features`` is its log-mel spectrogram and the stem its convolutions plus positions."""
    if _is_whisper(model):
        return model.stem_output(cnn_features)
    projected = model.feature_projection(cnn_features.transpose(1, 2))
    projected = projected[0] if isinstance(projected, tuple) else projected
    return projected + model.encoder.pos_conv_embed(projected)


def freeze_stem(model: nn.Module) -> nn.Module:
    """Stop the gradient of the stem (CNN, feature projection, positional convolution) of ``model`` in place,
    leaving its transformer layers trainable, and return it (Whisper: its convolutions and positions)."""
    if _is_whisper(model):
        return model.freeze_stem()
    for part in (model.feature_extractor, model.feature_projection, model.encoder.pos_conv_embed):
        part.requires_grad_(False)
    return model


def without_stem(model: nn.Module) -> nn.Module:
    """The same model, sharing every weight, that reads :func:`stem_output` given as ``(batch, dim, frames)``
    and runs only the transformer layers (and their layer norm). With a frozen stem shared by several
    students, its output is computed once per clip and cached. SpecAugment-style masking, which the
    original applies before the positional convolution, is switched off in the copy.

    A shallow copy like :func:`without_feature_encoder`; the original model is left untouched."""
    if _is_whisper(model):
        return model.without_stem()
    body = without_feature_encoder(model)
    body.config = copy.deepcopy(model.config)
    body.config.apply_spec_augment = False
    encoder = copy.copy(model.encoder)
    encoder._modules = {**model.encoder._modules, "pos_conv_embed": _NoPosition()}
    body._modules = {
        **body._modules,
        "encoder": encoder,
        "feature_projection": _PassThrough(body.config.model_type != "hubert"),
    }
    return body


class SSLFrontEnd(nn.Module):
    """An SSL model as a speaker model's front end: audio ``(batch, samples)`` (or CNN features, for a model
    made by :func:`without_feature_encoder`) in, hidden state ``layer`` out as ``(batch, dim, frames)``, the
    layout of log-mel features, so that an ECAPA-TDNN with ``n_mels = dim`` sits on top.

    ``layer="all"`` gives every hidden state instead, stacked as ``(batch, states, dim, frames)`` (index 0 the
    transformer's input), for a backend that mixes them (:class:`kdlib.kd.os_kdft.MixedLayers`)."""

    def __init__(self, model: nn.Module, layer: int | str = -1):
        super().__init__()
        if not (isinstance(layer, int) or layer == "all"):
            raise ValueError(f"layer must be an index or 'all', got {layer!r}")
        self.model, self.layer = model, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if self.layer == -1:
            return self.model(x).last_hidden_state.transpose(1, 2)
        states = self.model(x, output_hidden_states=True).hidden_states
        return stack_states(states) if self.layer == "all" else states[self.layer].transpose(1, 2)


def stack_states(hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A model's hidden states, each ``(batch, frames, dim)``, as one ``(batch, states, dim, frames)`` tensor: the
    layout that :class:`SSLFrontEnd` with ``layer="all"`` gives and :class:`kdlib.kd.os_kdft.MixedLayers` reads."""
    return torch.stack(hidden_states, dim=1).transpose(2, 3)


PAPER_SCALE = {
    "wav2vec2-large-xlsr-53": dict(
        model_type="wav2vec2",
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
    "wav2vec2-base": dict(
        model_type="wav2vec2",
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
    "hubert-base-ls960": dict(
        model_type="hubert",
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
}
"""Published architectures, from their hub configurations: OS-KDFT's teachers
(``facebook/wav2vec2-large-xlsr-53``, the paper's; ``facebook/hubert-base-ls960``, the code's later version, also
DistilHuBERT's and the ensemble's teacher) and ``facebook/wav2vec2-base`` (the multi-task paper's other teacher).
Sizes and latencies depend on the architecture only, so these are built with random weights, without a download."""


def paper_scale_ssl(name: str, num_layers: int | None = None) -> nn.Module:
    """A randomly initialised model of the published architecture ``name`` (:data:`PAPER_SCALE`), with its
    first ``num_layers`` transformer layers only when given (a student's size), in eval mode."""
    if name not in PAPER_SCALE:
        raise KeyError(f"no paper-scale architecture {name!r}; known: {sorted(PAPER_SCALE)}")
    from transformers import AutoConfig

    settings = dict(PAPER_SCALE[name])
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    if num_layers is not None:
        config.num_hidden_layers = num_layers
    return _model_class(config.model_type)(config).eval()
