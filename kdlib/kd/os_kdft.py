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

(s the step, S the number of steps, c = ``kd_weight``, 100 in the paper's code; the knob ``KD_WEIGHT`` in
notebook 01, as in 02). The teacher sees clean
audio, the student augmented audio. Here the student reads the output of the frozen CNN feature encoder
(:func:`kdlib.models.ssl.without_feature_encoder`), so that it can be computed once per crop.

The backend reads the student's last hidden state (``readout="last"``, the 2023 code) or a learned mix of all
its hidden states (``readout="layers"``, the 2024 code's weighted sum; :class:`MixedLayers`), which matters for
an encoder that keeps speakers in its lower layers, as Whisper does.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from kdlib.evaluation.superb import WeightedLayerSum
from kdlib.kd import losses
from kdlib.models.heads import PredictionHeads
from kdlib.models.speaker import SpeakerModel
from kdlib.models.ssl import ParallelAdapter, adapter_parameters, set_adapter_mask, stack_states

REGIMES = ("one_step", "kd", "ft")
"""``one_step``: KD (decaying weight) + SV together; ``kd``: distillation only (step 1 of the two-step
baseline); ``ft``: fine-tuning only (step 2 of it, or the truncated student without KD)."""

KD_TARGETS = ("mse", "heads")
"""``mse``: the student's last hidden state against the teacher's (the paper's code, 2023); ``heads``:
DistilHuBERT prediction heads on the student's last hidden state against several teacher layers, L1 and
log-sigmoid cosine (the code's later HuBERT/WavLM version, 2024)."""

READOUTS = ("last", "layers")
"""What the speaker backend reads: ``last``: the last hidden state (the 2023 code); ``layers``: every hidden
state, mixed with learned weights by :class:`MixedLayers` (the 2024 code)."""


class MixedLayers(nn.Module):
    r"""A speaker encoder on a learned mix of hidden states: ``forward(states)`` takes ``(batch, R, dim,
    frames)`` (:class:`kdlib.models.ssl.SSLFrontEnd` with ``layer="all"``) and returns
    ``encoder(Σ_ℓ softmax(w)_ℓ h^ℓ)``, the weights ``w`` learned with the encoder (zeros at the start: the plain
    mean; SUPERB's featurizer, :class:`kdlib.evaluation.superb.WeightedLayerSum`)."""

    def __init__(self, encoder: nn.Module, n_states: int):
        super().__init__()
        self.mix, self.encoder = WeightedLayerSum(n_states), encoder

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def n_states(self) -> int:
        return len(self.mix.weights)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.dim() != 4:
            raise ValueError(
                f"expected hidden states (batch, {self.n_states}, dim, frames), got shape {tuple(states.shape)}"
            )
        return self.encoder(self.mix(states.permute(0, 3, 1, 2)).transpose(1, 2))

    def layer_weights(self) -> list[float]:
        return self.mix.layer_weights()


def linear_decay(step: int, total: int) -> float:
    """The one-step KD weight ``w(s) = max(0, 1 − s/S)``: 1 at the first step, 0 from step ``S`` on."""
    if total <= 0:
        raise ValueError(f"total steps must be positive, got {total}")
    return max(0.0, 1.0 - step / total)


def distill_layers(teacher_layers: int, n_heads: int = 3) -> tuple[int, ...]:
    """Deprecated: :func:`kdlib.kd.layers.distil_layers` (this name goes in the next release)."""
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
    - ``heads``: :class:`kdlib.models.heads.PredictionHeads` for ``kd_target="heads"``;
    - ``readout``: ``"last"``, or ``"layers"`` with a :class:`MixedLayers` backend encoder over the student's
      hidden states (the KD branch still reads the last one).

    A batch is a dict: ``feats`` (the student's input: CNN features of augmented crops), ``label`` (speaker
    indices) and ``targets`` (the teacher's hidden states on the clean crops, ``(B, K, T, D)``: K = 1 for
    ``mse``, one per head for ``heads``). ``forward(feats)`` is the SV branch's embedding.
    """

    def __init__(
        self,
        student: nn.Module,
        backend: SpeakerModel,
        *,
        regime: str = "one_step",
        adapters: list[ParallelAdapter] | None = None,
        kd_target: str = "mse",
        heads: PredictionHeads | None = None,
        kd_weight: float = 100.0,
        total_steps: int = 1,
        readout: str = "last",
        kd_scale: float | None = None,
    ):
        super().__init__()
        if kd_scale is not None:  # the name before this release
            warnings.warn(
                "OneStepKDFT(kd_scale=...) is now kd_weight=...; the old name goes in the next release",
                DeprecationWarning,
                2,
            )
            kd_weight = kd_scale
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if (readout == "layers") != isinstance(backend.encoder, MixedLayers):
            raise ValueError("readout='layers' needs a MixedLayers backend encoder, and only it reads every state")
        if regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
        if kd_target not in KD_TARGETS:
            raise ValueError(f"kd_target must be one of {KD_TARGETS}, got {kd_target!r}")
        if (kd_target == "heads") != (heads is not None):
            raise ValueError("kd_target='heads' needs prediction heads, and only it uses them")
        self.student, self.backend, self.heads = student, backend, heads
        self.adapters = list(adapters or [])
        self.regime, self.kd_target, self.kd_weight, self.total_steps = regime, kd_target, kd_weight, total_steps
        self.readout = readout
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def kd_schedule(self) -> float:
        """w(s), the factor in front of c = ``kd_weight``: decaying for ``one_step``, 1 for ``kd``, 0 for ``ft``."""
        if self.regime == "one_step":
            return linear_decay(int(self.step), self.total_steps)
        return 1.0 if self.regime == "kd" else 0.0

    def kd_loss(self, last_hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The KD term on the student's last hidden state ``(B, T, D)`` (unscaled)."""
        if self.kd_target == "mse":
            return losses.hidden_mse(last_hidden, targets[:, -1])
        return losses.distilhubert(self.heads(last_hidden), targets)[0]

    def run_student(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's last hidden state ``(B, T, D)`` and what the backend reads: ``(B, D, T)`` for
        ``readout="last"``, every hidden state ``(B, R, D, T)`` for ``"layers"``."""
        if self.readout == "last":
            last = self.student(feats).last_hidden_state
            return last, last.transpose(1, 2)
        out = self.student(feats, output_hidden_states=True)
        expected = self.backend.encoder.n_states
        if len(out.hidden_states) != expected:
            raise ValueError(
                f"the student returned {len(out.hidden_states)} hidden states, the backend mixes "
                f"{expected}; with readout='layers' set the student's config.layerdrop to 0 (a "
                "dropped layer returns no state)"
            )
        return out.last_hidden_state, stack_states(out.hidden_states)

    def embed(self, backend_input: torch.Tensor) -> torch.Tensor:
        return self.backend.encoder(backend_input)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        set_adapter_mask(self.adapters, None)
        return self.embed(self.run_student(feats)[1])

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        feats, label = batch["feats"], batch["label"]
        n = feats.shape[0]
        w = self.kd_schedule()
        if self.training:
            self.step += 1
        if self.regime == "one_step" and self.adapters:
            # one pass, two branches: the first copy of the batch runs without adapters (KD), the second with
            mask = torch.cat([torch.zeros(n), torch.ones(n)]).to(feats.device)
            set_adapter_mask(self.adapters, mask)
            try:
                last, backend_input = self.run_student(torch.cat([feats, feats]))
            finally:
                set_adapter_mask(self.adapters, None)
            kd_hidden, sv_input = last[:n], backend_input[n:]
        else:
            kd_hidden, sv_input = self.run_student(feats)
        zero = feats.new_zeros(())
        kd = self.kd_loss(kd_hidden, batch["targets"]) if self.regime != "ft" else zero
        if self.regime == "kd":
            sv, accuracy = zero, zero
        else:
            sv, logits = self.backend.head(self.embed(sv_input), label)
            accuracy = (logits.argmax(-1) == label).float().mean()
        return w * self.kd_weight * kd + sv, {"kd": kd, "sv": sv, "kd_schedule": w, "accuracy": accuracy}

    def param_groups(self, ssl_lr: float, backend_lr: float, adapter_lr: float) -> list[dict]:
        """Optimizer groups with the paper's three learning rates: student weights, backend (and prediction
        heads), adapters; parts the regime does not train are left out."""
        adapter_ids = {id(p) for p in adapter_parameters(self.adapters)}
        ssl = [p for p in self.student.parameters() if p.requires_grad and id(p) not in adapter_ids]
        backend = list(self.backend.parameters()) if self.regime != "kd" else []
        if self.heads is not None and self.regime != "ft":
            backend += list(self.heads.parameters())
        adapters = adapter_parameters(self.adapters) if self.regime == "one_step" else []
        groups = [
            {"name": "student", "params": ssl, "lr": ssl_lr},
            {"name": "backend", "params": backend, "lr": backend_lr},
            {"name": "adapters", "params": adapters, "lr": adapter_lr},
        ]
        return [g for g in groups if g["params"]]
