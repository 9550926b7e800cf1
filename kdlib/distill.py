"""Knowledge-distillation losses. Each takes student and teacher outputs of one batch and returns a scalar.

Notation: z_S, z_T are ``(B, C)`` logits, p = softmax(z / T) row-wise, P the ``(B, C)`` matrix of the p's,
e_S, e_T are ``(B, D)`` embeddings. Teacher outputs are treated as constants (detached).
"""

from __future__ import annotations

from typing import Iterable

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
    return (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean() * temperature ** 2


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


def multi_level(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                temperatures: Iterable[float] = MLKD_TEMPERATURES, weights=(1.0, 1.0, 1.0)):
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
        raise ValueError(f"embedding KD needs equal shapes, got student {tuple(student_emb.shape)} and "
                         f"teacher {tuple(teacher_emb.shape)}")
    return (1 - F.cosine_similarity(student_emb, teacher_emb.detach(), dim=-1)).mean()
