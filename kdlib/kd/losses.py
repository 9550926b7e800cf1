"""Knowledge-distillation losses. Each takes student and teacher outputs of one batch and returns a scalar.

Notation: z_S, z_T are ``(B, C)`` logits, p = softmax(z / T) row-wise, P the ``(B, C)`` matrix of the p's,
e_S, e_T are ``(B, D)`` embeddings. Teacher outputs are treated as constants (detached).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

MLKD_TEMPERATURES = (2.0, 3.0, 4.0, 5.0, 6.0)
"""Multi-Level Logit Distillation's "prediction augmentation": every term summed over these temperatures."""


def kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    r"""Vanilla logit KD (Hinton, Vinyals and Dean, *Distilling the Knowledge in a Neural Network*, 2015):

    ``L = T² · mean_b KL(p_T,b ‖ p_S,b) = T² · mean_b Σ_c p_T,bc (log p_T,bc − log p_S,bc)``.

    The T² factor keeps the gradient scale independent of the temperature.
    """
    log_ps = F.log_softmax(student_logits / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean() * temperature**2


def class_correlation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    r"""Class-level alignment of Multi-Level Logit Distillation (Jin, Wang and Lin, CVPR 2023):

    ``L = ‖P_Tᵀ P_T − P_Sᵀ P_S‖²_F / C``, where ``PᵀP`` is the ``C × C`` matrix of how often two classes are
    predicted together over the batch.
    """
    ps = F.softmax(student_logits / temperature, dim=-1)
    pt = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    return (pt.T @ pt - ps.T @ ps).pow(2).sum() / ps.shape[1]


def batch_correlation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    r"""Batch-level alignment of Multi-Level Logit Distillation (Jin, Wang and Lin, CVPR 2023):

    ``L = ‖P_T P_Tᵀ − P_S P_Sᵀ‖²_F / B``, where ``PPᵀ`` is the ``B × B`` Gram matrix of how alike two
    samples' predictions are.
    """
    ps = F.softmax(student_logits / temperature, dim=-1)
    pt = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    return (pt @ pt.T - ps @ ps.T).pow(2).sum() / ps.shape[0]


def multi_level(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperatures: Iterable[float] = MLKD_TEMPERATURES,
    weights=(1.0, 1.0, 1.0),
):
    r"""Multi-level logit alignment (instance, class, batch), each summed over several temperatures:

    ``L = Σ_T [ w_i · T²·KL(p_T ‖ p_S) + w_c · ‖P_TᵀP_T − P_SᵀP_S‖²_F / C + w_b · ‖P_TP_Tᵀ − P_SP_Sᵀ‖²_F / B ]``

    (Jin, Wang and Lin, *Multi-Level Logit Distillation*, CVPR 2023; used by IML-KD, Yang et al. 2024, for
    the speaker logits). Returns the total and its three parts (for logging).
    """
    parts = {"instance": 0.0, "class": 0.0, "batch": 0.0}
    for t in temperatures:
        parts["instance"] = parts["instance"] + kl_divergence(student_logits, teacher_logits, t)
        parts["class"] = parts["class"] + class_correlation(student_logits, teacher_logits, t)
        parts["batch"] = parts["batch"] + batch_correlation(student_logits, teacher_logits, t)
    w_i, w_c, w_b = weights
    total = w_i * parts["instance"] + w_c * parts["class"] + w_b * parts["batch"]
    return total, parts


def embedding_cosine(student_emb: torch.Tensor, teacher_emb: torch.Tensor):
    r"""Embedding-level KD for speaker models (Wang et al., *Knowledge Distillation for Small Foot-print Deep
    Speaker Embedding*, ICASSP 2019): ``L = mean_b (1 − cos(e_S,b, e_T,b))``. Needs equal embedding sizes."""
    if student_emb.shape != teacher_emb.shape:
        raise ValueError(
            f"embedding KD needs equal shapes, got student {tuple(student_emb.shape)} and "
            f"teacher {tuple(teacher_emb.shape)}"
        )
    return (1 - F.cosine_similarity(student_emb, teacher_emb.detach(), dim=-1)).mean()


def hidden_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor):
    r"""Hidden-state distillation as in OS-KDFT's published code (Heo et al., Interspeech 2023, arXiv
    2305.17394): the mean squared error between the student's and the teacher's last hidden states,

    ``L = 1/(B·T·D) · Σ_{b,t,d} (h^S_btd − h^T_btd)²``.

    The paper's code multiplies it by 100 (``kd_weight`` in :class:`kdlib.kd.os_kdft.OneStepKDFT`)."""
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"hidden-state KD needs equal shapes, got student {tuple(student_hidden.shape)} and "
            f"teacher {tuple(teacher_hidden.shape)}"
        )
    return F.mse_loss(student_hidden, teacher_hidden.detach().to(student_hidden.dtype))


def distilhubert(predictions: torch.Tensor, targets: torch.Tensor, cos_weight: float = 1.0, head_weights=None):
    r"""Layer-wise L1 + cosine distillation of DistilHuBERT (Chang, Yang and Lee, ICASSP 2022, arXiv
    2110.01900), as the later OS-KDFT code uses it. ``predictions`` and ``targets`` are ``(B, K, T, D)``:
    K prediction heads against K teacher layers. Per head k, averaged over the batch and time:

    ``L_k = 1/T · Σ_t [ 1/D · ‖ĥ_kt − h_kt‖₁ − λ · log σ(cos(ĥ_kt, h_kt)) ]``,  ``L = Σ_k L_k``  (λ = ``cos_weight``),

    or ``L = Σ_k w_k L_k`` with ``head_weights`` (K numbers; 0 leaves a head untrained).
    (The OS-KDFT code sums the cosine term over time instead of averaging it, which weights it T times more;
    kdlib follows the DistilHuBERT paper.) Returns the total and the two parts (for logging)."""
    if predictions.shape != targets.shape:
        raise ValueError(f"prediction heads give {tuple(predictions.shape)}, teacher layers {tuple(targets.shape)}")
    targets = targets.detach().to(predictions.dtype)
    l1 = (predictions - targets).abs().mean(dim=(0, 2, 3))
    cos = F.logsigmoid(F.cosine_similarity(predictions, targets, dim=-1)).mean(dim=(0, 2))
    if head_weights is None:
        l1, cos = l1.sum(), cos.sum()
    else:
        w = torch.as_tensor(head_weights, dtype=l1.dtype, device=l1.device).flatten()
        if w.shape != l1.shape or (w < 0).any():
            raise ValueError(
                f"head_weights: {l1.numel()} non-negative numbers, one per head, got "
                f"{torch.as_tensor(head_weights).tolist()}"
            )
        l1, cos = (w * l1).sum(), (w * cos).sum()
    return l1 - cos_weight * cos, {"l1": l1, "cos": -cos}


AGGREGATIONS = ("average", "concat")
"""How an ensemble's teachers are merged into one target per layer (Huang et al., arXiv 2302.12757)."""


def _check_teacher_targets(targets: torch.Tensor) -> None:
    if targets.dim() != 5:
        raise ValueError(f"teacher targets must be (batch, teachers, layers, frames, dim), got {tuple(targets.shape)}")


def aggregate_teachers(targets: torch.Tensor, mode: str, weights=None) -> torch.Tensor:
    r"""One distillation target per layer from K teachers of the same width and frame rate, for ensemble
    knowledge distillation (Huang, Feng et al., *Ensemble Knowledge Distillation of Self-Supervised Speech
    Models*, ICASSP 2023, arXiv 2302.12757). ``targets`` is ``(B, K, H, T, D)``: K teachers, H layers each.

    - ``"average"`` (layerwise average): ``ȳ^ℓ = 1/K · Σ_k h_k^ℓ``, shape ``(B, H, T, D)``; with ``weights``
      (K non-negative numbers, not all 0) the weighted average ``ȳ^ℓ = Σ_k w_k h_k^ℓ / Σ_k w_k``;
    - ``"concat"`` (layerwise concatenation): ``ȳ^ℓ = [h_1^ℓ ; … ; h_K^ℓ]``, shape ``(B, H, T, K·D)``.
    """
    _check_teacher_targets(targets)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=targets.dtype, device=targets.device)
        if mode != "average" or w.shape != (targets.shape[1],) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights: {targets.shape[1]} non-negative numbers, not all 0, for the average of "
                f"{targets.shape[1]} teachers; got {list(weights)} with mode {mode!r}"
            )
        return (targets * (w / w.sum())[None, :, None, None, None]).sum(dim=1)
    if mode == "average":
        return targets.mean(dim=1)
    if mode == "concat":
        b, k, h, t, d = targets.shape
        return targets.permute(0, 2, 3, 1, 4).reshape(b, h, t, k * d)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")


def multi_teacher(predictions: torch.Tensor, targets: torch.Tensor, cos_weight: float = 1.0, head_weights=None):
    r"""Multiple prediction heads (Huang, Feng et al., arXiv 2302.12757): one set of H heads per teacher,
    each set predicting its own teacher's layers, the DistilHuBERT loss (:func:`distilhubert`) summed over
    teachers, ``L = Σ_k Σ_ℓ L1+cos(ŷ_k^ℓ, h_k^ℓ)``. ``predictions`` is ``(B, K·H, T, D)`` (teacher-major: heads
    0..H−1 for teacher 1, and so on) and ``targets`` ``(B, K, H, T, D)``. ``head_weights``: ``(K, H)``, a
    weight per teacher and layer (0: that layer of that teacher is not predicted). Returns the total and its
    parts."""
    _check_teacher_targets(targets)
    b, k, h, t, d = targets.shape
    return distilhubert(predictions, targets.reshape(b, k * h, t, d), cos_weight, head_weights)
