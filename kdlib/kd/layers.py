"""DistilHuBERT-style layer distillation (Chang, Yang and Lee, *DistilHuBERT: Speech Representation Learning by
Layer-wise Distillation of Hidden-unit BERT*, ICASSP 2022, arXiv 2110.01900), the form of distillation notebooks 01,
03 and 04 build on. Its pieces, and where they live:

- the student: the teacher's front end and first layers, weights copied (:func:`kdlib.models.ssl.make_student`);
- which teacher layers it learns to predict: :func:`distil_layers`, below;
- one prediction head per such layer on the student's last hidden state
  (:class:`kdlib.models.heads.PredictionHeads`);
- the loss, L1 plus log-sigmoid cosine summed over the heads (:func:`kdlib.kd.losses.distilhubert`; with
  several teachers, :func:`kdlib.kd.losses.multi_teacher` and :mod:`kdlib.kd.ensemble`).
"""

from __future__ import annotations


def distil_layers(teacher_layers: int, n_heads: int = 3) -> tuple[int, ...]:
    """The teacher layers the prediction heads predict, evenly spaced up to the last one:
    ``round(k·N/K)`` for k = 1..K (DistilHuBERT's 4, 8, 12 for a 12-layer teacher; 1, 3, 4 for 4 layers).
    Hidden-state index 0 is the transformer's input, index i the output of layer i."""
    layers = tuple(round(k * teacher_layers / n_heads) for k in range(1, n_heads + 1))
    if len(set(layers)) != n_heads or layers[0] < 1:
        raise ValueError(f"cannot spread {n_heads} heads over a {teacher_layers}-layer teacher")
    return layers
