import numpy as np
import pytest
import torch
from torch import nn

from experiments import speaker_split
from experiments.distillation_budget import held_out_loss
from kdlib.kd import ensemble
from kdlib.models.heads import PredictionHeads


def test_speaker_split_holds_out_whole_speakers():
    rows = [{"speaker": f"s{i % 6}"} for i in range(60)]
    held = speaker_split(rows, 1 / 3, seed=0)
    held_speakers = {r["speaker"] for r, h in zip(rows, held) if h}
    kept_speakers = {r["speaker"] for r, h in zip(rows, held) if not h}
    assert len(held_speakers) == 2 and not held_speakers & kept_speakers
    assert held.sum() == 20 and np.array_equal(held, speaker_split(rows, 1 / 3, seed=0))
    with pytest.raises(ValueError, match="leaves none to train on"):
        speaker_split(rows, 1.0, seed=0)


class _Encoder(nn.Module):
    """Stands in for a student reading cached stems: (batch, dim, frames) -> last_hidden_state (batch, frames, dim)."""

    def __init__(self, dim):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, feats):
        return type("Out", (), {"last_hidden_state": self.linear(feats.transpose(1, 2))})()


def test_held_out_loss_is_the_mean_loss_over_crops_in_eval_mode():
    torch.manual_seed(0)
    distiller = ensemble.EnsembleDistiller(_Encoder(8), PredictionHeads(8, 2), "average").train()
    feats, targets = torch.randn(10, 8, 5), torch.randn(10, 1, 2, 5, 8).half()
    with torch.no_grad():
        distiller.eval()
        each = [
            distiller.loss({"feats": feats[i : i + 1], "targets": targets[i : i + 1].float()})[0].item()
            for i in range(10)
        ]
        distiller.train()
    assert held_out_loss(distiller, feats, targets, batch=4) == pytest.approx(np.mean(each), rel=1e-5)
    assert distiller.training  # left as it was
