"""Joint KWS + SV: one encoder pass for both answers, alternating batches, frozen vs tuned encoders."""

import pytest
import torch
from torch import nn

from kdlib import multitask, train


class Frames(nn.Module):
    """A tiny encoder: (batch, samples) -> (batch, frames, dim), counting its calls."""

    def __init__(self, dim=8, hop=50):
        super().__init__()
        self.hop, self.proj, self.calls = hop, nn.Linear(50, dim), 0
        self.drop = nn.Dropout(0.5)

    def forward(self, wave):
        self.calls += 1
        return self.drop(torch.tanh(self.proj(wave.unfold(1, self.hop, self.hop))))


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % 2
    wave = torch.randn(n, 500, generator=g) + 2.0 * label[:, None] * torch.sin(torch.arange(500.0))[None]
    return wave, label


def test_one_encoder_pass_gives_both_answers():
    encoder = Frames()
    model = multitask.JointModel(encoder, 8, n_keywords=12, n_speakers=5, embed_dim=6).eval()
    logits, emb = model(torch.randn(3, 500))
    assert logits.shape == (3, 12) and emb.shape == (3, 6)
    assert encoder.calls == 1


def test_alternate_takes_turns_and_restarts_loaders():
    kws = [(torch.zeros(2, 500), torch.zeros(2, dtype=torch.long))] * 2        # runs out after 2 batches
    sv = [(torch.ones(2, 500), torch.ones(2, dtype=torch.long))]
    batches = list(multitask.alternate(kws, sv, steps=7))
    assert [b["task"] for b in batches] == ["kws", "sv", "kws", "sv", "kws", "sv", "kws"]
    assert len(multitask.alternate(kws, sv, steps=7)) == 7
    assert all(float(b["wave"][0, 0]) == (0.0 if b["task"] == "kws" else 1.0) for b in batches)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="steps must be positive"):
        multitask.alternate([], [], steps=0)
    with pytest.raises(ValueError, match="yields no batches"):
        list(multitask.alternate([], [(torch.zeros(1, 500), torch.zeros(1, dtype=torch.long))], steps=2))
    model = multitask.JointModel(Frames(), 8, 2, 2)
    with pytest.raises(ValueError, match="batch task must be one of"):
        model.loss({"task": "asr", "wave": torch.zeros(1, 500), "label": torch.zeros(1, dtype=torch.long)})


@pytest.mark.parametrize("frozen", [False, True])
def test_training_alternates_and_freezing_keeps_the_encoder(frozen):
    torch.manual_seed(0)
    encoder = Frames()
    before = encoder.proj.weight.detach().clone()
    model = multitask.JointModel(encoder, 8, n_keywords=2, n_speakers=2, embed_dim=4, frozen=frozen)
    wave, label = _data()
    batches = multitask.alternate([(wave, label)], [(wave, label)], steps=120)
    history = train.fit(model, batches, model.loss, epochs=1, lr=1e-2, progress=False)
    assert history["kws_accuracy"][-1] == 1.0 and history["sv_accuracy"][-1] == 1.0   # both tasks learned
    assert len(history["kws_loss"]) == len(history["sv_loss"]) == 60
    moved = not torch.equal(encoder.proj.weight, before)
    assert moved != frozen
    model.train()
    assert encoder.training != frozen                         # a frozen encoder stays in eval mode
