r"""Integrated Gradients over speech features, the "integrated inputs" built from them, and faithfulness tests.

Integrated Gradients (Sundararajan, Taly and Yan, ICML 2017) attributes a model output F to each input
element by integrating the gradient along the straight path from a baseline x' to the input x:

    IG_i(x) = (x_i − x'_i) · ∫₀¹ ∂F(x' + α(x − x')) / ∂x_i dα,

and is *complete*: Σ_i IG_i(x) = F(x) − F(x'). captum's ``convergence delta`` is how far the numerical
integral is from that identity. Here F is a speaker model's logit for the true speaker and x its
``(n_mels, frames)`` log-mel input.

IML-KD (Yang et al., arXiv 2409.09389) builds "integrated inputs" from such attributions on speech segments
of several durations; the paper's exact construction is not public. kdlib's reading, used by notebook 02:
the saliency ``s = clip(|IG| / q99(|IG|), 0, 1)`` of each crop weights the crop towards the baseline,

    x̃ = x' + (x − x') ⊙ (floor + (1 − floor) · s),

so that the time-frequency regions the teacher relied on stay and the rest fades to silence.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def silence_baseline(feats: torch.Tensor) -> torch.Tensor:
    """A silence-level baseline for ``(batch, n_mels, frames)`` log-mel features: each band's minimum over
    the crop (its quietest frame), repeated over time."""
    return feats.amin(dim=-1, keepdim=True).expand_as(feats).contiguous()


@contextmanager
def _frozen(model: nn.Module):
    """Eval mode and no parameter gradients (IG needs input gradients only; this roughly halves the cost).
    Afterwards every module gets its own mode back (``model.train(flag)`` would impose the outer module's
    mode on all of them: a wrapper in train mode would leave an eval-mode model in train mode)."""
    flags = [p.requires_grad for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        for module, training in modes:
            module.training = training


def integrated_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    baselines: torch.Tensor | None = None,
    n_steps: int = 16,
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """captum ``IntegratedGradients`` of ``model(inputs)[b, target[b]]``; returns the attributions (the
    shape of ``inputs``) and the per-item convergence delta ``Σ IG − (F(x) − F(x'))``.

    ``baselines`` defaults to :func:`silence_baseline`. Gauss-Legendre quadrature, ``n_steps`` points."""
    from captum.attr import IntegratedGradients

    if inputs.dim() < 2 or target.shape != inputs.shape[:1]:
        raise ValueError(f"inputs {tuple(inputs.shape)} need one target each, got targets {tuple(target.shape)}")
    baselines = silence_baseline(inputs) if baselines is None else baselines
    with _frozen(model):
        attr, delta = IntegratedGradients(model).attribute(
            inputs,
            baselines=baselines,
            target=target,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    return attr.detach(), delta.detach()


def saliency(attr: torch.Tensor, quantile: float = 0.99) -> torch.Tensor:
    """``|IG|`` scaled per item to [0, 1] by its ``quantile`` (robust to a few extreme cells)."""
    mag = attr.abs().flatten(1)
    scale = torch.quantile(mag.float(), quantile, dim=1, keepdim=True).clamp(min=1e-12)
    return (mag / scale).clamp(0, 1).view_as(attr)


def time_saliency(attr: torch.Tensor) -> torch.Tensor:
    """Per-frame attribution mass ``Σ_f |IG(f, t)|``, scaled per item to sum to 1: ``(batch, frames)``."""
    mass = attr.abs().sum(dim=1)
    return mass / mass.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def integrated_input(feats: torch.Tensor, baseline: torch.Tensor, sal: torch.Tensor, floor: float = 0.5):
    """``x̃ = x' + (x − x') ⊙ (floor + (1 − floor)·s)``: salient regions kept, the rest pulled to silence."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must lie in [0, 1], got {floor}")
    return baseline + (feats - baseline) * (floor + (1 - floor) * sal)


@torch.no_grad()
def build_integrated_inputs(
    model: nn.Module,
    feats: torch.Tensor,
    labels: torch.Tensor,
    n_steps: int = 16,
    floor: float = 0.5,
    batch_size: int = 16,
    internal_batch_size: int = 128,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Attribute, then build integrated inputs, for a stack of equal-length crops ``(n, n_mels, frames)``.

    Returns ``integrated`` (x̃), ``saliency`` (s, float16 to save memory), ``delta`` (captum's convergence
    delta per crop) and ``logit_gap`` (F(x) − F(x'), to put the delta in scale)."""
    from kdlib.progress import bar
    from kdlib.runtime import resolve_device

    out = {"integrated": [], "saliency": [], "delta": [], "logit_gap": []}
    device = resolve_device(model, device)
    model = model.to(device)
    desc = f"integrated gradients ({feats.shape[-1]} frames)"
    for i in bar(range(0, len(feats), batch_size), unit="batch", desc=desc, disable=not progress, leave=False):
        x, y = feats[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
        base = silence_baseline(x)
        with torch.enable_grad():
            attr, delta = integrated_gradients(model, x, y, base, n_steps, internal_batch_size)
        sal = saliency(attr)
        gap = attr.flatten(1).sum(1) - delta  # F(x) − F(x'), from captum's delta = Σ IG − (F(x) − F(x'))
        out["integrated"].append(integrated_input(x, base, sal, floor).cpu())
        out["saliency"].append(sal.half().cpu())
        out["delta"].append(delta.float().cpu())
        out["logit_gap"].append(gap.float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def deletion_insertion(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    feats: torch.Tensor,
    baseline: torch.Tensor,
    frame_order: torch.Tensor,
    steps: int = 20,
) -> dict:
    """Faithfulness curves of a frame ranking for one ``(n_mels, frames)`` input (Petsiuk et al., RISE, 2018).

    *Deletion* replaces the top-k ranked frames by the baseline and *insertion* starts from the baseline and
    puts the top-k frames back, for k = 0 … all in ``steps`` steps; ``score_fn`` maps a batch of inputs to
    one score each (e.g. the true speaker's probability). A faithful ranking makes the deletion curve fall
    fast (small area) and the insertion curve rise fast (large area). Areas are trapezoids over the
    fraction of frames in [0, 1]."""
    frames = feats.shape[-1]
    if frame_order.shape != (frames,):
        raise ValueError(f"frame_order needs one rank per frame ({frames}), got {tuple(frame_order.shape)}")
    fractions = np.linspace(0, 1, steps + 1)
    deleted, inserted = [], []
    for frac in fractions:
        keep = torch.zeros(frames, dtype=torch.bool, device=feats.device)
        keep[frame_order[: int(round(frac * frames))]] = True
        deleted.append(torch.where(keep, baseline, feats))
        inserted.append(torch.where(keep, feats, baseline))
    d = score_fn(torch.stack(deleted)).float().cpu().numpy()
    ins = score_fn(torch.stack(inserted)).float().cpu().numpy()
    return {
        "fractions": fractions,
        "deletion": d,
        "insertion": ins,
        "deletion_auc": float(np.trapezoid(d, fractions)),
        "insertion_auc": float(np.trapezoid(ins, fractions)),
    }


def faithfulness(
    model: nn.Module,
    feats: torch.Tensor,
    labels: torch.Tensor,
    baseline: torch.Tensor,
    n_steps: int = 16,
    steps: int = 20,
    generator: torch.Generator | None = None,
    internal_batch_size: int = 32,
) -> tuple[torch.Tensor, float, list[dict]]:
    """Integrated Gradients of ``model`` (features -> logits) on a stack of inputs, and each item's deletion and
    insertion curves for its IG frame ranking and for a random ranking (drawn from ``generator``), scored by
    the true speaker's probability. Returns the attributions (CPU), the mean |convergence delta| and one
    curve record per item and ranking (``ranking``, ``item`` and the :func:`deletion_insertion` fields)."""
    attr, delta = integrated_gradients(
        model, feats, labels, baseline, n_steps=n_steps, internal_batch_size=internal_batch_size
    )
    order = time_saliency(attr).argsort(dim=1, descending=True)
    curves = []
    for i in range(len(feats)):

        def score(batch, y=labels[i]):
            return torch.softmax(model(batch), 1)[:, y]

        for ranking, o in (
            ("IG", order[i]),
            ("random", torch.randperm(feats.shape[-1], generator=generator).to(feats.device)),
        ):
            curves.append(
                {"ranking": ranking, "item": i, **deletion_insertion(score, feats[i], baseline[i], o, steps=steps)}
            )
    return attr.cpu(), delta.abs().mean().item(), curves
