"""OS-KDFT: one-step knowledge distillation and fine-tuning of a self-supervised speech model for speaker
verification (Heo, Lim, Kim, Shin and Yu, Interspeech 2023, arXiv 2305.17394; code
github.com/Jungwoo4021/OS-KDFT).

A student (the teacher's CNN, projection and first L transformer layers, weights copied) is distilled and
fine-tuned in one training run. Each student layer carries an adapter in parallel with its feed-forward
block (:func:`kdlib.models.ssl.add_adapters`). One forward pass carries two branches through the same
weights: the **KD branch** (adapters off) is pulled towards the frozen teacher's hidden states, the **SV
branch** (adapters on) feeds an ECAPA-TDNN backend trained with AAM-softmax. The KD weight decays linearly
to zero, so training starts as distillation and ends as pure fine-tuning:

    L(s) = w(s) · c · L_KD(student without adapters, teacher) + L_AAM(backend(student with adapters)),
    w(s) = max(0, 1 − s / S)

(s the step, S the number of steps, c = ``kd_scale``, 100 in the paper's code). The teacher sees clean
audio, the student augmented audio. Here the student reads the output of the frozen CNN feature encoder
(:func:`kdlib.models.ssl.without_feature_encoder`), so that it can be computed once per crop.
"""

from __future__ import annotations

import torch
from torch import nn

from kdlib.kd import losses
from kdlib.models.heads import PredictionHeads
from kdlib.models.speaker import SpeakerModel
from kdlib.models.ssl import ParallelAdapter, adapter_parameters, set_adapter_mask

REGIMES = ("one_step", "kd", "ft")
"""``one_step``: KD (decaying weight) + SV together; ``kd``: distillation only (step 1 of the two-step
baseline); ``ft``: fine-tuning only (step 2 of it, or the truncated student without KD)."""

KD_TARGETS = ("mse", "heads")
"""``mse``: the student's last hidden state against the teacher's (the paper's code, 2023); ``heads``:
DistilHuBERT prediction heads on the student's last hidden state against several teacher layers, L1 and
log-sigmoid cosine (the code's later HuBERT/WavLM version, 2024)."""


def linear_decay(step: int, total: int) -> float:
    """The one-step KD weight ``w(s) = max(0, 1 − s/S)``: 1 at the first step, 0 from step ``S`` on."""
    if total <= 0:
        raise ValueError(f"total steps must be positive, got {total}")
    return max(0.0, 1.0 - step / total)


def distill_layers(teacher_layers: int, n_heads: int = 3) -> tuple[int, ...]:
    """Deprecated: :func:`kdlib.kd.layers.distil_layers` (this name goes in the next release)."""
    import warnings

    from kdlib.kd.layers import distil_layers

    warnings.warn("kdlib.kd.os_kdft.distill_layers is now kdlib.kd.layers.distil_layers", DeprecationWarning, 2)
    return distil_layers(teacher_layers, n_heads)


class OneStepKDFT(nn.Module):
    """The training objective of OS-KDFT and of its baselines, one ``loss(batch)`` for :func:`kdlib.train.fit`.

    - ``student``: an SSL model that reads CNN features (:func:`kdlib.models.ssl.without_feature_encoder`);
    - ``backend``: a :class:`kdlib.models.SpeakerModel` with an encoder on hidden states ``(B, D, T)`` (an
      ECAPA-TDNN with ``n_mels = D``) and an AAM-softmax head;
    - ``adapters``: the student's :class:`kdlib.models.ssl.ParallelAdapter` list (empty: no adapters, the
      two branches are then the same computation and share one pass);
    - ``heads``: :class:`kdlib.models.heads.PredictionHeads` for ``kd_target="heads"``.

    A batch is a dict: ``feats`` (the student's input: CNN features of augmented crops), ``label`` (speaker
    indices) and ``targets`` (the teacher's hidden states on the clean crops, ``(B, K, T, D)``: K = 1 for
    ``mse``, one per head for ``heads``). ``forward(feats)`` is the SV branch's embedding.
    """

    def __init__(self, student: nn.Module, backend: SpeakerModel, *, regime: str = "one_step",
                 adapters: list[ParallelAdapter] | None = None, kd_target: str = "mse",
                 heads: PredictionHeads | None = None, kd_scale: float = 100.0, total_steps: int = 1):
        super().__init__()
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
        if kd_target not in KD_TARGETS:
            raise ValueError(f"kd_target must be one of {KD_TARGETS}, got {kd_target!r}")
        if (kd_target == "heads") != (heads is not None):
            raise ValueError("kd_target='heads' needs prediction heads, and only it uses them")
        self.student, self.backend, self.heads = student, backend, heads
        self.adapters = list(adapters or [])
        self.regime, self.kd_target, self.kd_scale, self.total_steps = regime, kd_target, kd_scale, total_steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def kd_weight(self) -> float:
        """w(s): decaying for ``one_step``, 1 for ``kd``, 0 for ``ft``."""
        if self.regime == "one_step":
            return linear_decay(int(self.step), self.total_steps)
        return 1.0 if self.regime == "kd" else 0.0

    def kd_loss(self, last_hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The KD term on the student's last hidden state ``(B, T, D)`` (unscaled)."""
        if self.kd_target == "mse":
            return losses.hidden_mse(last_hidden, targets[:, -1])
        return losses.distilhubert(self.heads(last_hidden), targets)[0]

    def embed(self, last_hidden: torch.Tensor) -> torch.Tensor:
        return self.backend.encoder(last_hidden.transpose(1, 2))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        set_adapter_mask(self.adapters, None)
        return self.embed(self.student(feats).last_hidden_state)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        feats, label = batch["feats"], batch["label"]
        n = feats.shape[0]
        w = self.kd_weight()
        if self.training:
            self.step += 1
        if self.regime == "one_step" and self.adapters:
            # one pass, two branches: the first copy of the batch runs without adapters (KD), the second with
            mask = torch.cat([torch.zeros(n), torch.ones(n)]).to(feats.device)
            set_adapter_mask(self.adapters, mask)
            try:
                hidden = self.student(torch.cat([feats, feats])).last_hidden_state
            finally:
                set_adapter_mask(self.adapters, None)
            kd_hidden, sv_hidden = hidden[:n], hidden[n:]
        else:
            kd_hidden = sv_hidden = self.student(feats).last_hidden_state
        zero = feats.new_zeros(())
        kd = self.kd_loss(kd_hidden, batch["targets"]) if self.regime != "ft" else zero
        if self.regime == "kd":
            sv, accuracy = zero, zero
        else:
            sv, logits = self.backend.head(self.embed(sv_hidden), label)
            accuracy = (logits.argmax(-1) == label).float().mean()
        return w * self.kd_scale * kd + sv, {"kd": kd, "sv": sv, "kd_weight": w, "accuracy": accuracy}

    def param_groups(self, ssl_lr: float, backend_lr: float, adapter_lr: float) -> list[dict]:
        """Optimizer groups with the paper's three learning rates: student weights, backend (and prediction
        heads), adapters; parts the regime does not train are left out."""
        adapter_ids = {id(p) for p in adapter_parameters(self.adapters)}
        ssl = [p for p in self.student.parameters() if p.requires_grad and id(p) not in adapter_ids]
        backend = list(self.backend.parameters()) if self.regime != "kd" else []
        if self.heads is not None and self.regime != "ft":
            backend += list(self.heads.parameters())
        adapters = adapter_parameters(self.adapters) if self.regime == "one_step" else []
        groups = [{"name": "student", "params": ssl, "lr": ssl_lr},
                  {"name": "backend", "params": backend, "lr": backend_lr},
                  {"name": "adapters", "params": adapters, "lr": adapter_lr}]
        return [g for g in groups if g["params"]]
