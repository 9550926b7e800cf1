"""Ensemble KD's pieces: teacher aggregation, the multi-head loss, the distiller, the frozen stem."""

import pytest
import torch

from kdlib.kd import ensemble, losses
from kdlib.models.heads import PredictionHeads
from kdlib.models.ssl import make_student, stem_output, without_feature_encoder, without_stem

TINY = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    mask_time_prob=0.0,
)


def _model(kind="hubert", seed=0, **overrides):
    from transformers import HubertConfig, HubertModel, WavLMConfig, WavLMModel

    torch.manual_seed(seed)
    config, cls = {"hubert": (HubertConfig, HubertModel), "wavlm": (WavLMConfig, WavLMModel)}[kind]
    return cls(config(**{**TINY, **overrides})).eval()


def _targets(b=2, k=3, h=3, t=5, d=4, seed=0):
    return torch.randn(b, k, h, t, d, generator=torch.Generator().manual_seed(seed))


# --- aggregation ---


def test_average_of_identical_teachers_is_that_teacher():
    one = _targets(k=1)
    average = losses.aggregate_teachers(one.expand(-1, 3, -1, -1, -1), "average")
    assert torch.allclose(average, one[:, 0], rtol=1e-6, atol=0)  # (x + x + x) / 3, up to rounding


def test_average_golden_value():
    targets = torch.zeros(1, 2, 1, 1, 2)
    targets[0, 0, 0, 0] = torch.tensor([1.0, 4.0])
    targets[0, 1, 0, 0] = torch.tensor([3.0, -2.0])
    assert losses.aggregate_teachers(targets, "average").flatten().tolist() == [2.0, 1.0]
    # weights 1 and 3: (1·[1, 4] + 3·[3, −2]) / 4
    assert losses.aggregate_teachers(targets, "average", (1.0, 3.0)).flatten().tolist() == [2.5, -0.5]
    assert torch.equal(
        losses.aggregate_teachers(targets, "average", (2.0, 2.0)), losses.aggregate_teachers(targets, "average")
    )


def test_concatenation_width_and_order():
    targets = _targets(k=3, d=4)
    cat = losses.aggregate_teachers(targets, "concat")
    assert cat.shape == (2, 3, 5, 12)
    for k in range(3):  # teacher k's features occupy columns k·D .. (k+1)·D
        assert torch.equal(cat[..., 4 * k : 4 * (k + 1)], targets[:, k])


def test_aggregation_rejects_bad_input():
    with pytest.raises(ValueError, match="aggregation must be one of"):
        losses.aggregate_teachers(_targets(), "median")
    with pytest.raises(ValueError, match=r"\(batch, teachers, layers, frames, dim\)"):
        losses.aggregate_teachers(torch.zeros(2, 3, 5, 4), "average")
    for weights, mode in (
        ((1.0, 1.0), "average"),
        ((1.0, -1.0, 1.0), "average"),
        ((0.0, 0.0, 0.0), "average"),
        ((1.0, 1.0, 1.0), "concat"),
    ):
        with pytest.raises(ValueError, match="non-negative numbers, not all 0"):
            losses.aggregate_teachers(_targets(k=3), mode, weights)


# --- losses ---


def test_multi_teacher_loss_is_the_sum_over_teachers():
    targets = _targets(k=3, h=2)
    predictions = torch.randn(2, 6, 5, 4, generator=torch.Generator().manual_seed(1))
    total, parts = losses.multi_teacher(predictions, targets)
    per_teacher = sum(losses.distilhubert(predictions[:, 2 * k : 2 * k + 2], targets[:, k])[0] for k in range(3))
    assert torch.allclose(total, per_teacher)
    assert torch.allclose(total, parts["l1"] + parts["cos"])


def test_multi_teacher_golden_value():
    # one teacher, one head, one frame: L1 mean |(1,2) - (3,0)| = 2; cos((1,2),(3,0)) = 1/sqrt(5)
    predictions = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    targets = torch.tensor([3.0, 0.0]).view(1, 1, 1, 1, 2)
    expected = 2.0 - torch.nn.functional.logsigmoid(torch.tensor(5**-0.5))
    assert torch.allclose(losses.multi_teacher(predictions, targets)[0], expected)


def test_perfect_predictions_leave_only_the_cosine_floor():
    targets = _targets(k=2, h=3)
    total, parts = losses.multi_teacher(targets.flatten(1, 2).clone(), targets)
    assert parts["l1"].item() == 0.0
    floor = -6 * torch.nn.functional.logsigmoid(torch.tensor(1.0))  # 6 heads, cos = 1 everywhere
    assert torch.allclose(total, floor, atol=1e-6)


# --- the distiller ---


def test_heads_for_each_mode():
    assert [len(ensemble.heads_for(m, 32, 3, 3).heads) for m in ensemble.MODES] == [3, 3, 9]
    assert ensemble.heads_for("concat", 32, 3, 3).heads[0][-1].out_features == 96
    assert ensemble.heads_for("average", 32, 3, 3).heads[0][-1].out_features == 32
    with pytest.raises(ValueError, match="mode must be one of"):
        ensemble.heads_for("vote", 32, 3, 3)
    with pytest.raises(ValueError, match="at least one teacher"):
        ensemble.heads_for("average", 32, 0, 3)


def _distiller(mode, k=3, seed=0):
    teacher = _model()
    torch.manual_seed(seed)
    student = make_student(teacher, 2)
    return (
        teacher,
        student,
        ensemble.EnsembleDistiller(without_feature_encoder(student), ensemble.heads_for(mode, 32, k, 3), mode),
    )


def _batch(teacher, k=3, seed=0):
    wave = torch.randn(3, 8000, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        feats = teacher.feature_extractor(wave)
        hidden = without_feature_encoder(teacher)(feats, output_hidden_states=True).hidden_states
    one = torch.stack([hidden[i] for i in (1, 2, 3)], 1)  # (B, H, T, D)
    # K "teachers": the real one, scaled and shifted copies, so that they disagree
    return {"feats": feats, "targets": torch.stack([one * (1 + 0.5 * j) + j for j in range(k)], 1)}


@pytest.mark.parametrize("mode", ensemble.MODES)
def test_loss_matches_the_formula(mode):
    teacher, _, model = _distiller(mode)
    model.eval()
    batch = _batch(teacher)
    with torch.no_grad():
        pred = model(batch["feats"])
        loss = model.loss(batch)[0]
    y = batch["targets"]
    target = {"average": y.mean(1), "concat": torch.cat(list(y.unbind(1)), dim=-1), "multihead": y.flatten(1, 2)}[mode]
    assert torch.allclose(loss, losses.distilhubert(pred, target)[0])


def test_single_teacher_modes_agree():
    """With K = 1 the average, the concatenation and the multi-head student are the same DistilHuBERT student."""
    teacher = _model()
    batch = _batch(teacher, k=1)
    losses = []
    for mode in ensemble.MODES:
        _, _, model = _distiller(mode, k=1)
        torch.manual_seed(5)
        model.heads = PredictionHeads(32, 3)  # the same heads for every mode
        losses.append(model.eval().loss(batch)[0].item())
    assert losses[0] == pytest.approx(losses[1]) == pytest.approx(losses[2])


def test_wrong_heads_for_the_mode_are_refused():
    teacher, _, model = _distiller("average")
    model.mode = "concat"
    with pytest.raises(ValueError, match="prediction heads give"):
        model.loss(_batch(teacher))


@pytest.mark.parametrize("mode", ensemble.MODES)
def test_overfits_one_batch(mode):
    teacher, student, model = _distiller(mode)
    batch = _batch(teacher)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = model.loss(batch)[0].item()
    for _ in range(150):
        loss = model.loss(batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.35 * first


def test_dropping_the_heads_leaves_the_student_unchanged():
    teacher, student, model = _distiller("multihead")
    batch = _batch(teacher)
    deployable = model.deployable().eval()
    with torch.no_grad():
        before = deployable(batch["feats"]).last_hidden_state
        model.heads = None  # heads dropped
        after = model.deployable()(batch["feats"]).last_hidden_state
    assert torch.equal(before, after)
    assert deployable is model.student


# --- the frozen stem ---


@pytest.mark.parametrize("kind,stable", [("hubert", True), ("hubert", False), ("wavlm", True)])
def test_without_stem_reproduces_every_hidden_state(kind, stable):
    model = _model(kind, do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group")
    wave = torch.randn(2, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(wave, output_hidden_states=True).hidden_states
        stem = stem_output(model, model.feature_extractor(wave))
        body = without_stem(model)(stem.transpose(1, 2), output_hidden_states=True).hidden_states
    assert len(full) == len(body)
    for a, b in zip(full, body):
        assert torch.allclose(a, b, atol=1e-6)


def test_without_stem_shares_weights_and_leaves_the_original_alone():
    model = _model(mask_time_prob=0.5)
    body = without_stem(model)
    weight = model.encoder.layers[0].feed_forward.output_dense.weight
    assert body.encoder.layers[0].feed_forward.output_dense.weight is weight
    assert not body.config.apply_spec_augment and model.config.apply_spec_augment
    wave = torch.randn(1, 8000)
    with torch.no_grad():
        assert model(wave).last_hidden_state.shape[-1] == 32  # the original still takes audio


# --- the distillation loop ---


def _distil_run(seed=0, steps=12):
    teacher, student, model = _distiller("average", k=1, seed=seed)
    batch = _batch(teacher, k=1)
    feats = batch["feats"].repeat(4, 1, 1)  # 12 items, 4 batches of 3 per pass
    targets = batch["targets"].repeat(4, 1, 1, 1, 1)
    history = ensemble.distil(model, feats, targets, steps=steps, batch=3, lr=1e-3, heads_lr=1e-2, seed=seed)
    return model, history


def test_distil_learns_runs_its_steps_and_is_deterministic():
    model_a, history_a = _distil_run()
    model_b, history_b = _distil_run()
    assert len(history_a["loss"]) == 12  # 3 passes of 4 batches
    assert history_a["loss"] == history_b["loss"]  # same seed, same run, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters()))
    assert sum(history_a["loss"][-3:]) < 0.8 * sum(history_a["loss"][:3])
    assert history_a["lr"][-1] < history_a["lr"][0]  # the cosine decay
    assert _distil_run(seed=1)[1]["loss"] != history_a["loss"]  # another seed, other heads and batches


def test_distil_rejects_mismatched_inputs():
    teacher, _, model = _distiller("average", k=1)
    batch = _batch(teacher, k=1)
    with pytest.raises(ValueError, match="one target per input, got 3 inputs and 2 targets"):
        ensemble.distil(model, batch["feats"], batch["targets"][:2], steps=2, batch=1, lr=1e-3, heads_lr=1e-3)


def test_teacher_weights_move_the_average_target_and_only_the_average():
    teacher, student, model = _distiller("average")
    batch = _batch(teacher)
    model.eval()
    with torch.no_grad():
        weighted = ensemble.EnsembleDistiller(model.student, model.heads, "average", weights=(1.0, 0.0, 0.0))
        pred = model(batch["feats"])
        expected = losses.distilhubert(pred, batch["targets"][:, 0])[0]  # all the weight on teacher 0
        assert torch.allclose(weighted.loss(batch)[0], expected, rtol=1e-5)
        assert not torch.allclose(model.loss(batch)[0], expected, rtol=1e-3)
    with pytest.raises(ValueError, match="not to the concatenation"):
        ensemble.EnsembleDistiller(model.student, model.heads, "concat", weights=(1.0, 1.0, 1.0))


def test_multihead_weights_drop_the_heads_they_zero():
    teacher, student, model = _distiller("multihead")
    batch = _batch(teacher)
    model.eval()
    mask = torch.ones(3, 3)
    mask[1, :2] = 0  # teacher 1: only its last layer is predicted
    masked = ensemble.EnsembleDistiller(model.student, model.heads, "multihead", weights=mask)
    with torch.no_grad():
        pred = model(batch["feats"])
        targets = batch["targets"].flatten(1, 2)
        kept = [k for k in range(9) if k not in (3, 4)]
        expected = losses.distilhubert(pred[:, kept], targets[:, kept])[0]
        assert torch.allclose(masked.loss(batch)[0], expected, rtol=1e-5)
        assert torch.allclose(
            ensemble.EnsembleDistiller(model.student, model.heads, "multihead", weights=torch.ones(3, 3)).loss(batch)[
                0
            ],
            model.loss(batch)[0],
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="one per head"):
        losses.multi_teacher(pred, batch["targets"], head_weights=torch.ones(2, 3))


def test_width_map_keeps_what_it_can_and_says_how_much():
    torch.manual_seed(0)
    low_rank = torch.randn(500, 3) @ torch.randn(3, 8)  # frames of width 8 that span 3 directions
    cut = ensemble.WidthMap(low_rank, 3)
    assert cut(low_rank).shape == (500, 3)
    assert cut.kept == pytest.approx(1.0, abs=1e-9)  # 3 directions hold all the energy
    # a projection onto orthonormal directions that span the data keeps every norm and every cosine
    assert torch.allclose(cut(low_rank).norm(dim=1), low_rank.norm(dim=1), rtol=1e-4)
    full = torch.randn(500, 8)
    assert 0.3 < ensemble.WidthMap(full, 3).kept < 0.6  # about 3/8 of isotropic energy
    same = ensemble.WidthMap(full, 8)
    assert same.kept == 1.0 and torch.equal(same(full), full)  # at the width: untouched
    padded = ensemble.WidthMap(full, 10)(full)
    assert padded.shape == (500, 10) and torch.equal(padded[:, :8], full) and not padded[:, 8:].any()


def test_to_width_maps_each_layer_and_refuses_bad_shapes():
    torch.manual_seed(0)
    states = torch.randn(20, 3, 5, 12).half()
    mapped, kept = ensemble.to_width(states, 6, fit_on=8)
    assert mapped.shape == (20, 3, 5, 6) and mapped.dtype == torch.float16 and 0 < kept < 1
    # the first layer's map is the one fitted on that layer's frames alone
    alone = ensemble.WidthMap(states[:8, 0].reshape(-1, 12).float(), 6)
    assert torch.allclose(mapped[:, 0].float(), alone(states[:, 0].float()), atol=2e-3)
    with pytest.raises(ValueError, match="crops, layers, frames, dim"):
        ensemble.to_width(states[0], 6)
    with pytest.raises(ValueError, match="fitted on width 12"):
        ensemble.WidthMap(states[:8, 0].reshape(-1, 12).float(), 6)(torch.zeros(2, 7))
