"""Weight quantization for speaker models (Li et al., arXiv 2210.17326: uniform and powers-of-two).

A b-bit quantizer maps each weight to the nearest of 2^b − 1 symmetric levels ``±α·ℓ_k`` (and 0):

- **uniform**:  ℓ_k = k / (2^(b−1) − 1),            k = 0 … 2^(b−1) − 1   (step Δ = α / (2^(b−1) − 1))
- **powers of two (PoT)**: ℓ ∈ {0} ∪ {2^(−k)},     k = 0 … 2^(b−1) − 2   (multiplications become shifts)

α (the clipping range) is ``max|w|`` or the value that minimises the quantization MSE, per tensor or per
output channel. Codes are stored sign-magnitude in b bits (:func:`pack`), so a b-bit tensor weighs b/32 of
its fp32 size plus one fp32 α per tensor or channel. Only conv and linear weights are quantized; biases and
batch-norm parameters stay fp32 (a small fraction of the parameters; say so whenever sizes are compared).

Quantization-aware training (QAT) uses the straight-through estimator (Bengio et al. 2013): the forward
pass sees q(w), the backward pass treats q as the identity, ``w + (q(w) − w).detach()``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

SCHEMES = ("uniform", "pot")


def levels(bits: int, scheme: str = "uniform") -> torch.Tensor:
    """The non-negative normalised levels ℓ (ascending, starting at 0) of a b-bit symmetric quantizer."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    n = 2 ** (bits - 1) - 1  # positive levels
    if scheme == "uniform":
        return torch.arange(n + 1, dtype=torch.float64) / n
    if scheme == "pot":
        powers = 2.0 ** -torch.arange(n - 1, -1, -1, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), powers])
    raise ValueError(f"unknown scheme {scheme!r}; use one of {SCHEMES}")


def _reduce_dims(w: torch.Tensor, per_channel: bool) -> tuple[int, ...]:
    return tuple(range(1, w.dim())) if per_channel and w.dim() > 1 else tuple(range(w.dim()))


def _codes(w: torch.Tensor, alpha: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """Signed index of the nearest level of |w|/α (sign-magnitude codes in −n … n)."""
    x = (w.abs() / alpha).clamp(max=1.0)
    mids = ((lv[1:] + lv[:-1]) / 2).to(x.dtype)
    idx = torch.bucketize(x, mids.to(x.device))
    return (torch.sign(w).to(torch.int64) * idx).to(torch.int16)


def _alpha(w: torch.Tensor, bits: int, scheme: str, per_channel: bool, clip: str) -> torch.Tensor:
    dims = _reduce_dims(w, per_channel)
    wmax = w.abs().amax(dim=dims, keepdim=True).clamp(min=1e-12)
    if clip == "max":
        return wmax
    if clip != "mse":
        raise ValueError(f"unknown clip {clip!r}; use 'max' or 'mse'")
    lv = levels(bits, scheme).to(w.device)
    best, best_err = None, None
    for ratio in torch.linspace(0.2, 1.0, 17):  # α = r·max|w|, r in steps of 0.05
        alpha = wmax * ratio
        err = ((_dequant(_codes(w, alpha, lv), alpha, lv) - w) ** 2).sum(dim=dims, keepdim=True)
        if best is None:
            best, best_err = alpha, err
        else:  # strictly better only: of equal errors the smaller ratio wins
            better = err < best_err
            best, best_err = torch.where(better, alpha, best), torch.where(better, err, best_err)
    return best


def _dequant(codes: torch.Tensor, alpha: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    return torch.sign(codes).float() * lv.float().to(codes.device)[codes.abs().long()] * alpha


def quantize(
    w: torch.Tensor,
    bits: int,
    scheme: str = "uniform",
    per_channel: bool = True,
    clip: str = "max",
    alpha: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize ``w``: returns ``(dequantized weights, integer codes, α)``; a given ``alpha`` is used as is."""
    w = w.detach().float()
    lv = levels(bits, scheme).to(w.device)
    alpha = _alpha(w, bits, scheme, per_channel, clip) if alpha is None else alpha
    codes = _codes(w, alpha, lv)
    return _dequant(codes, alpha, lv), codes, alpha


def quantizable(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers whose weights are quantized, by name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not name.startswith("frontend")
    }


def post_training_quantize(
    model: nn.Module, bits: int, scheme: str = "uniform", per_channel: bool = True, clip: str = "max"
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Post-training quantization (round to nearest): a copy whose conv/linear weights are quantized, and
    its packed state dict (codes bit-packed to uint8, α in fp32, everything else as is) from the same codes."""
    qmodel = copy.deepcopy(model)
    packed = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, module in quantizable(qmodel).items():
            q, codes, alpha = quantize(module.weight, bits, scheme, per_channel, clip)
            module.weight.copy_(q)
            del packed[f"{name}.weight"]
            packed[f"{name}.weight.codes"] = torch.from_numpy(pack(codes.cpu(), bits))
            packed[f"{name}.weight.alpha"] = alpha.flatten().cpu()
    return qmodel.eval(), packed


def ptq_ladder(model: nn.Module, bit_widths, scheme: str = "uniform", per_channel: bool = True, clip: str = "max"):
    """``model`` as it is, then after :func:`post_training_quantize` to each of ``bit_widths``: yields ``(bits,
    model, bytes)``, bits 32 first, bytes as stored (fp32 parameters and buffers; then the packed state dict)."""
    from kdlib.evaluation.bench import model_bytes, state_bytes

    if any(not isinstance(b, int) or not 1 < b < 32 for b in bit_widths):
        raise ValueError(f"bit widths must be whole numbers from 2 to 31, got {tuple(bit_widths)}")
    yield 32, model, model_bytes(model)
    for bits in bit_widths:
        qmodel, packed = post_training_quantize(model, bits, scheme, per_channel, clip)
        yield bits, qmodel, state_bytes(packed)


def quantize_model(
    model: nn.Module, bits: int, scheme: str = "uniform", per_channel: bool = True, clip: str = "max"
) -> nn.Module:
    """Post-training quantization: a copy of ``model`` with quantized conv/linear weights."""
    return post_training_quantize(model, bits, scheme, per_channel, clip)[0]


# ------------------------------------------------------------------------------------------ packing


def pack(codes: torch.Tensor, bits: int) -> np.ndarray:
    """Bit-pack sign-magnitude codes (|code| < 2^(b−1)) into a uint8 array of ceil(n·b/8) bytes."""
    c = codes.flatten().to(torch.int64).numpy()
    n = 2 ** (bits - 1)
    if np.any(np.abs(c) >= n):
        raise ValueError(f"codes exceed {bits}-bit sign-magnitude range")
    u = np.where(c < 0, n + (-c), c).astype(np.uint32)  # sign bit is the top bit
    bit_planes = ((u[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(bit_planes.reshape(-1), bitorder="little")


def unpack(data: np.ndarray, bits: int, count: int) -> torch.Tensor:
    """Inverse of :func:`pack`: ``count`` signed codes."""
    planes = np.unpackbits(data, bitorder="little")[: count * bits].reshape(count, bits).astype(np.int64)
    u = (planes << np.arange(bits)).sum(axis=1)
    n = 2 ** (bits - 1)
    return torch.from_numpy(np.where(u >= n, -(u - n), u))


def packed_state_dict(
    model: nn.Module, bits: int, scheme: str = "uniform", per_channel: bool = True, clip: str = "max"
) -> dict[str, torch.Tensor]:
    """The model's state dict with every quantizable weight replaced by packed codes (uint8) and α (fp32);
    everything else as is. This is what a b-bit model weighs on disk."""
    return post_training_quantize(model, bits, scheme, per_channel, clip)[1]


def packed_bytes(model: nn.Module, bits: int, **kwargs) -> int:
    """Bytes of :func:`packed_state_dict` serialized with safetensors."""
    from kdlib.evaluation.bench import state_bytes

    return state_bytes(packed_state_dict(model, bits, **kwargs))


# ------------------------------------------------------------------------------------------ QAT


class FakeQuant(nn.Module):
    """A weight parametrization: forward sees q(w); gradients pass straight through to w (STE).

    With ``alpha`` the clipping range is fixed (computed once, e.g. by MSE search, when QAT starts);
    without it α follows max|w| at every step."""

    def __init__(self, bits: int, scheme: str = "uniform", per_channel: bool = True, alpha: torch.Tensor | None = None):
        super().__init__()
        self.bits, self.scheme, self.per_channel = bits, scheme, per_channel
        self.register_buffer("alpha", alpha)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = quantize(w, self.bits, self.scheme, self.per_channel, "max", self.alpha)[0].to(w.dtype)
        return w + (q - w).detach()


def prepare_qat(
    model: nn.Module, bits: int, scheme: str = "uniform", per_channel: bool = True, clip: str = "max"
) -> nn.Module:
    """Attach :class:`FakeQuant` to every quantizable weight (in place) and return the model. With
    ``clip="mse"`` each layer's α is searched once now and then kept fixed."""
    for module in quantizable(model).values():
        alpha = _alpha(module.weight.detach().float(), bits, scheme, per_channel, "mse") if clip == "mse" else None
        parametrize.register_parametrization(module, "weight", FakeQuant(bits, scheme, per_channel, alpha))
    return model


def qat_finetune(
    model: nn.Module,
    loader,
    bits: int,
    scheme: str = "uniform",
    per_channel: bool = True,
    clip: str = "mse",
    steps: int = 40,
    lr: float = 1e-4,
    device: str | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
):
    """Short QAT by self-distillation from the full-precision model (kdlib's choice; the paper's QAT
    recipe is not public): ``L = 1 − cos(f_q(x), f(x))`` on training crops, batch-norm statistics frozen.
    Returns the quantized model (weights baked) and the loss history; ``desc`` labels the progress bar."""
    from kdlib.runtime import resolve_device
    from kdlib.train import fit

    device = resolve_device(model, device)
    reference = copy.deepcopy(model).to(device).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    student = prepare_qat(copy.deepcopy(model), bits, scheme, per_channel, clip).to(device)

    def loss_fn(batch):
        wave = batch[0]
        for m in student.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        with torch.no_grad():
            target = reference(wave)
        return 1 - nn.functional.cosine_similarity(student(wave), target).mean()

    history = fit(
        student,
        loader,
        loss_fn,
        epochs=1,
        lr=lr,
        max_steps_per_epoch=steps,
        device=device,
        seed=seed,
        progress=progress,
        grad_clip=1.0,
        desc=desc or f"QAT {bits}-bit {scheme}",
    )
    return finish_qat(student).eval(), history


def finish_qat(model: nn.Module) -> nn.Module:
    """Remove the parametrizations, leaving the quantized weights in place (in place)."""
    for module in quantizable(model).values():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# ------------------------------------------------------------------------------------------ analysis


def weight_stats(model: nn.Module, bits: int = 4, scheme: str = "uniform", per_channel: bool = True) -> list[dict]:
    """Per quantizable layer: size, excess kurtosis, max|w|/std and the relative L2 error of b-bit quantization."""
    rows = []
    for name, module in quantizable(model).items():
        w = module.weight.detach().float().flatten()
        q = quantize(module.weight, bits, scheme, per_channel)[0].flatten()
        rows.append(
            {
                "layer": name,
                "params": w.numel(),
                "kurtosis": excess_kurtosis(w),
                "max_over_std": float(w.abs().max() / w.std()),
                "rel_error": float((q - w).norm() / w.norm()),
            }
        )
    return rows


def excess_kurtosis(w: torch.Tensor) -> float:
    """E[(w−μ)^4]/σ^4 − 3: 0 for a Gaussian, large for heavy tails (outliers that stretch α)."""
    z = (w.flatten().float() - w.float().mean()) / w.float().std(unbiased=False)
    return float((z**4).mean() - 3)


# ------------------------------------------------------------------------------------------ deployment


def int8_static(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    """A real int8 model for the CPU (x86 / fbgemm kernels): PyTorch's FX graph-mode static quantization,
    int8 weights and activations, observers calibrated on ``calibration`` batches. The front end of a
    :class:`kdlib.models.SpeakerModel` stays float. (torchao's ``quantize_`` configs target linear layers;
    these models are convolutional.)"""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    qconfig = get_default_qconfig_mapping("x86").set_module_name("frontend", None)
    custom = PrepareCustomConfig().set_non_traceable_module_names(["frontend"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(
            copy.deepcopy(model).cpu().eval(), qconfig, (calibration[0],), prepare_custom_config=custom
        )
        with torch.inference_mode():
            for batch in calibration:
                prepared(batch)
        return convert_fx(prepared)
