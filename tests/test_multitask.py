"""Joint KWS + SV: one encoder pass for both answers, alternating batches, frozen vs tuned encoders."""

import numpy as np
import pytest
import torch
from torch import nn

from kdlib import train
from kdlib.kd import multitask


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
    kws = [(torch.zeros(2, 500), torch.zeros(2, dtype=torch.long))] * 2  # runs out after 2 batches
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
    assert history["kws_accuracy"][-1] == 1.0 and history["sv_accuracy"][-1] == 1.0  # both tasks learned
    assert len(history["kws_loss"]) == len(history["sv_loss"]) == 60
    moved = not torch.equal(encoder.proj.weight, before)
    assert moved != frozen
    model.train()
    assert encoder.training != frozen  # a frozen encoder stays in eval mode


# --- the encoder a task head reads ---


class _Hidden(nn.Module):
    """Stands in for a transformers model: returns an object with ``last_hidden_state``."""

    def __init__(self, dim=8):
        super().__init__()
        self.proj = nn.Linear(50, dim)

    def forward(self, wave):
        from types import SimpleNamespace

        return SimpleNamespace(last_hidden_state=self.proj(wave.unfold(1, 50, 50)))


def test_encoder_output_is_the_last_hidden_state_or_the_chosen_head():
    from kdlib.models.heads import PredictionHeads

    torch.manual_seed(0)
    model, heads, wave = _Hidden(), PredictionHeads(8, 3), torch.randn(2, 500)
    hidden = model(wave).last_hidden_state
    assert torch.equal(multitask.EncoderOutput(model)(wave), hidden)
    assert torch.allclose(multitask.EncoderOutput(model, heads)(wave), heads(hidden)[:, -1])
    assert torch.allclose(multitask.EncoderOutput(model, heads, head=0)(wave), heads(hidden)[:, 0])
    with pytest.raises(ValueError, match="no prediction head 3: there are 3"):
        multitask.EncoderOutput(model, heads, head=3)
    every = heads(hidden)  # (batch, heads, frames, dim)
    mean, concat = (multitask.EncoderOutput(model, heads, head=h) for h in ("mean", "concat"))
    assert torch.allclose(mean(wave), every.mean(1), atol=1e-6)
    assert torch.allclose(concat(wave), torch.cat([every[:, k] for k in range(3)], dim=-1))
    assert (mean.width(8), concat.width(8), multitask.EncoderOutput(model).width(8)) == (8, 24, 8)
    with pytest.raises(ValueError, match="an index or one of"):
        multitask.EncoderOutput(model, heads, head="sum")


class _Layered(nn.Module):
    """A 2-layer stand-in giving hidden states (input projection, then two layers) like a transformers model."""

    def __init__(self):
        super().__init__()
        self.proj, self.one, self.two = nn.Linear(50, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, wave, output_hidden_states=False):
        from types import SimpleNamespace

        states = [self.proj(wave.unfold(1, 50, 50))]
        states += [torch.tanh(self.one(states[-1]))]
        states += [torch.tanh(self.two(states[-1]))]
        return SimpleNamespace(
            last_hidden_state=states[-1], hidden_states=tuple(states) if output_hidden_states else None
        )


def test_layers_reading_stacks_hidden_states_then_heads_and_each_task_mixes_its_own():
    from kdlib.models.heads import PredictionHeads

    torch.manual_seed(0)
    model, heads, wave = _Layered(), PredictionHeads(8, 3), torch.randn(2, 500)
    states = model(wave, output_hidden_states=True).hidden_states
    bare, kept = multitask.EncoderOutput(model, head="layers"), multitask.EncoderOutput(model, heads, "layers")
    assert (bare.representations(2), kept.representations(2)) == (3, 6)
    assert torch.equal(bare(wave), torch.stack(states, dim=2))  # (batch, frames, 3, dim)
    stacked = kept(wave)
    assert stacked.shape == (2, 10, 6, 8)
    assert torch.allclose(stacked[:, :, 3:], heads(states[-1]).permute(0, 2, 1, 3))
    joint = multitask.JointModel(kept, 8, n_keywords=3, n_speakers=4, embed_dim=5, layers=6).eval()
    with torch.no_grad():  # a weight per task: KWS on layer 1
        joint.kws_layers.weights.copy_(torch.tensor([0.0, 50, 0, 0, 0, 0]))
        logits, embedding = joint(wave)
    assert torch.allclose(logits, joint.kws_head(states[1].mean(dim=1)), atol=1e-5)  # the KWS mix is layer 1
    mean_of_all = stacked.mean(dim=2)  # SV weights still equal
    pooled = torch.cat([mean_of_all.mean(1), mean_of_all.std(1, unbiased=False)], dim=1)
    assert torch.allclose(embedding, joint.sv_head(pooled), atol=1e-5)
    assert len(joint.task_heads()) == 5 and set(joint.layer_weights()) == {"kws", "sv"}
    with pytest.raises(ValueError, match="layers=R"):
        multitask.JointModel(kept, 8, 3, 4, 5).copy_heads_from(joint)
    with pytest.raises(ValueError, match="must be as wide"):
        multitask.EncoderOutput(model, PredictionHeads(8, 2, out_dim=4), "layers").width(8)


# --- one task or both ---


def test_a_single_task_gets_every_step_and_unknown_tasks_are_refused():
    kws = [(torch.zeros(2, 500), torch.zeros(2, dtype=torch.long))]
    batches = list(multitask.Alternating({"sv": kws}, steps=3))
    assert [b["task"] for b in batches] == ["sv"] * 3
    assert [b["task"] for b in multitask.Alternating({"sv": kws, "kws": kws}, 3)] == ["kws", "sv", "kws"]
    with pytest.raises(ValueError, match="keyed by tasks"):
        multitask.Alternating({"asr": kws}, steps=3)
    with pytest.raises(ValueError, match="keyed by tasks"):
        multitask.Alternating({}, steps=3)


def test_turns_give_one_task_more_batches_in_the_same_budget():
    kws = [(torch.zeros(2, 500), torch.zeros(2, dtype=torch.long))]
    both = {"sv": kws, "kws": kws}
    assert [b["task"] for b in multitask.Alternating(both, 6, {"kws": 2, "sv": 1})] == ["kws", "kws", "sv"] * 2
    assert [b["task"] for b in multitask.Alternating(both, 4, {"kws": 1, "sv": 3})] == ["kws", "sv", "sv", "sv"]
    with pytest.raises(ValueError, match="positive number of batches"):
        multitask.Alternating(both, 4, {"kws": 2})


@pytest.mark.parametrize("tasks", [("kws",), ("sv",), ("kws", "sv")])
def test_fine_tune_trains_the_chosen_tasks(tasks):
    torch.manual_seed(0)
    encoder = Frames()
    model = multitask.JointModel(encoder, 8, n_keywords=2, n_speakers=2, embed_dim=4)
    wave, label = _data(32)
    history = multitask.fine_tune(
        model, {t: (wave, label) for t in tasks}, steps_per_task=40, batch=8, encoder_lr=1e-2, heads_lr=1e-2, seed=0
    )
    assert len(history["loss"]) == 40 * len(tasks)
    for task in tasks:
        assert len(history[f"{task}_loss"]) == 40 and history[f"{task}_accuracy"][-1] == 1.0
    for task in set(multitask.TASKS) - set(tasks):
        assert f"{task}_loss" not in history


def test_fine_tune_is_deterministic_and_a_frozen_encoder_stays_put():
    def run(frozen):
        torch.manual_seed(0)
        encoder = Frames()
        model = multitask.JointModel(encoder, 8, n_keywords=2, n_speakers=2, embed_dim=4, frozen=frozen)
        wave, label = _data(32)
        history = multitask.fine_tune(
            model,
            {"kws": (wave, label), "sv": (wave, label)},
            steps_per_task=5,
            batch=8,
            encoder_lr=1e-2,
            heads_lr=1e-2,
            seed=3,
        )
        return encoder, model, history

    encoder, model, history = run(frozen=False)
    assert history["loss"] == run(frozen=False)[2]["loss"]
    torch.manual_seed(0)
    untouched = Frames().proj.weight
    frozen_encoder, frozen_model, _ = run(frozen=True)
    assert torch.equal(frozen_encoder.proj.weight, untouched)
    assert not torch.equal(encoder.proj.weight, untouched)
    fresh = multitask.JointModel(Frames(), 8, 2, 2, 4)
    assert not torch.equal(frozen_model.kws_head.weight, fresh.kws_head.weight)


def test_fine_tune_refuses_unequal_banks():
    model = multitask.JointModel(Frames(), 8, 2, 2)
    with pytest.raises(ValueError, match="kws: 4 inputs but 3 labels"):
        multitask.fine_tune(
            model,
            {"kws": (torch.zeros(4, 500), torch.zeros(3, dtype=torch.long))},
            steps_per_task=1,
            batch=2,
            encoder_lr=0,
            heads_lr=1e-3,
        )


def test_copy_heads_from():
    a = multitask.JointModel(Frames(), 8, 3, 4, embed_dim=5)
    b = multitask.JointModel(Frames(), 8, 3, 4, embed_dim=5).copy_heads_from(a)
    for x, y in zip(a.task_heads(), b.task_heads()):
        assert all(torch.equal(p, q) for p, q in zip(x.parameters(), y.parameters()))


# --- scoring both tasks ---


class _Fixed(nn.Module):
    """A 'joint model' with known answers: logits from the first two inputs, embedding from the rest."""

    def __init__(self):
        super().__init__()
        self.n_keywords = 2

    def forward(self, x):
        return x[:, :2], x[:, 2:]


def test_score_golden_values():
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.1], [1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.1, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])  # 3 of 4 right
    trials = np.array([[1, 0, 1], [1, 2, 3], [0, 0, 2], [0, 1, 3]])  # targets score ~1, non-targets ~0.1
    out = multitask.score(_Fixed(), kws=(x, labels), keyword_trials=trials, sentences=(x, trials[:3]))
    assert out["kws_accuracy"] == 0.75
    assert out["keyword_sv_eer"] == 0.0 and out["sv_eer"] == 0.0
    swapped = trials.copy()
    swapped[:, 0] = 1 - swapped[:, 0]  # every decision wrong
    assert multitask.score(_Fixed(), kws=(x, labels), keyword_trials=swapped)["keyword_sv_eer"] == 1.0
    with pytest.raises(ValueError, match="pass kws as well"):
        multitask.score(_Fixed(), keyword_trials=trials)


def test_standardise_normalises_each_heads_pooled_input_so_an_outlier_feature_does_not_fix_the_embedding():
    torch.manual_seed(0)
    frames = torch.randn(16, 10, 8)
    frames[..., 0] += 500.0  # one feature far larger, as in Whisper's residual stream
    plain = multitask.JointModel(nn.Identity(), 8, 3, 4, embed_dim=5).eval()
    normed = multitask.JointModel(nn.Identity(), 8, 3, 4, embed_dim=5, standardise=True)
    normed.train()
    for _ in range(60):  # batches in training mode fill the running statistics
        normed(frames)
    normed.eval()
    spread = lambda e: torch.nn.functional.normalize(e, dim=1).std(0).mean().item()
    with torch.no_grad():
        assert spread(plain(frames)[1]) < 0.05  # every embedding points the same way
        assert spread(normed(frames)[1]) > 0.2
        norm, linear = normed.kws_head
        pooled = frames.mean(dim=1)
        standardised = (pooled - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
        by_hand = linear(standardised * norm.weight + norm.bias)
        assert torch.allclose(normed(frames)[0], by_hand, atol=1e-5)
    scored = multitask.score(normed, kws=(frames, torch.zeros(16, dtype=torch.long)))
    assert 0.0 <= scored["kws_accuracy"] <= 1.0  # score reads the keyword count through the batch norm
