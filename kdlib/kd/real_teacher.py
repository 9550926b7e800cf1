"""Narrowing the gap between synthetic and real voices: distil a speaker encoder trained on real speech into
a student trained on the synthetic corpus.

The student (e.g. the zoo's ECAPA-TDNN) keeps its AAM-softmax objective on the synthetic training speakers
and, at the same time, matches the teacher's embeddings (embedding-level KD, Wang et al., ICASSP 2019)
through a linear map ``P`` from its embedding size to the teacher's::

    L = L_AAM(e_S(x_syn), y) + λ · [1 − cos(P e_S(x), e_T(x))]   averaged over the crops x of the batch

where ``x`` is the batch's synthetic crops and, optionally, crops of real speech without speaker labels; with
labels for the real crops (:func:`kdlib.data.unlabelled.language_voices`: one pseudo-speaker per language
folder), a second AAM-softmax term ``L_AAM(e_S(x_real), y_real)`` joins the sum.
The real clips come from packages whose voices are not in the real-speech evaluation set
(:data:`kdlib.data.unlabelled.UNLABELLED`): KDE's children's games ship words and letters recorded by volunteers
in many languages.
``P`` is dropped after training; the shipped student scores with its own embedding.

The real clips: :mod:`kdlib.data.unlabelled`. Notebook 00 uses this method; the other attempts at closing the
gap live outside the library, in ``experiments/real_voice_transfer.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdlib import train
from kdlib.data.audio import SAMPLE_RATE, crop
from kdlib.data.datasets import torch_seeded_rng
from kdlib.evaluation import metrics
from kdlib.kd.losses import embedding_cosine


class RealCrops:
    """``n`` random ``samples``-long crops of real waveforms, drawn from torch's generator (seeded by fit), and
    their labels (None without ``labels``)."""

    def __init__(self, waves: list[np.ndarray], samples: int, labels: list[int] | None = None):
        self.waves, self.samples, self.labels = waves, samples, labels

    def __call__(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, len(self.waves), (n,)).tolist()
        rng = torch_seeded_rng()
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(crop(self.waves[i], self.samples, rng))) for i in idx])
        return x, (torch.tensor([self.labels[i] for i in idx]) if self.labels is not None else None)


class TeacherMatching(nn.Module):
    """Student plus the map ``P`` onto the teacher's embedding space; ``loss`` is the objective above."""

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        teacher_dim: int,
        kd_weight: float = 1.0,
        real_crops: RealCrops | None = None,
    ):
        super().__init__()
        self.student, self.kd_weight, self.real_crops = student, kd_weight, real_crops
        self.project = nn.Linear(student.embed_dim, teacher_dim)
        self.teacher = [teacher.eval()]  # a list: not a submodule, so not trained or saved
        self.real_head = None  # with labelled real crops: AAM-softmax over their classes, dropped after training
        if real_crops is not None and real_crops.labels is not None:
            from kdlib.models.heads import AAMSoftmax

            self.real_head = AAMSoftmax(
                student.embed_dim, max(real_crops.labels) + 1, margin=student.head.margin, scale=student.head.scale
            )

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        x, label = batch
        emb = self.student(x)
        aam, logits = self.student.head(emb, label)
        terms = {"aam": aam}
        kd_inputs, kd_student = [x], [emb]
        if self.real_crops is not None:
            real_x, real_y = self.real_crops(len(x))
            real_x = real_x.to(x.device)
            kd_inputs.append(real_x)
            kd_student.append(self.student(real_x))
            if self.real_head is not None:
                terms["aam_real"] = self.real_head(kd_student[-1], real_y.to(x.device))[0]
        teacher = self.teacher[0].to(x.device)
        with torch.no_grad():
            targets = torch.cat([teacher(xi) for xi in kd_inputs])
        kd = embedding_cosine(self.project(torch.cat(kd_student)), targets)
        terms["kd"] = kd
        total = aam + self.kd_weight * kd + terms.get("aam_real", 0.0)
        return total, {**terms, "accuracy": metrics.accuracy(logits, label)}


def distil_real_teacher(
    student,
    teacher,
    loader,
    *,
    steps: int,
    teacher_dim: int = 256,
    kd_weight: float = 1.0,
    real_waves: list[np.ndarray] | None = None,
    real_labels: list[int] | None = None,
    real_seconds: float = 1.0,
    lr: float = 5e-4,
    weight_decay: float = 2e-5,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
):
    """Train ``student`` (a :class:`kdlib.models.SpeakerModel` with its AAM head) for ``steps`` batches of
    ``loader`` (synthetic ``(crops, speaker)``) under the objective above; ``real_waves`` adds as many real
    crops of ``real_seconds`` per step, and ``real_labels`` (e.g.
    :func:`kdlib.data.unlabelled.language_voices`) an AAM-softmax term
    over their classes: ``L + L_AAM(e_S(x_real), y_real)``. Returns the loss history; the student is trained
    in place."""
    if real_labels is not None and (not real_waves or len(real_labels) != len(real_waves)):
        raise ValueError(f"real_labels: {len(real_labels)} labels for {len(real_waves or [])} real waveforms")
    real_crops = RealCrops(real_waves, int(real_seconds * SAMPLE_RATE), real_labels) if real_waves else None
    wrapper = TeacherMatching(student, teacher, teacher_dim, kd_weight, real_crops)
    epochs = max(1, -(-steps // len(loader)))
    return train.fit(
        wrapper,
        loader,
        wrapper.loss,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=min(50, steps // 10),
        device=device,
        seed=seed,
        max_steps_per_epoch=-(-steps // epochs),
        progress=progress,
        desc="distil real teacher",
    )
