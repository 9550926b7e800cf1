"""OS-KDFT's pieces: the decaying KD weight, the KD losses, the two-branch step and its baselines."""

import math

import pytest
import torch

from kdlib.kd import losses, os_kdft
from kdlib.kd.layers import distil_layers
from kdlib.models import ECAPA_TDNN, AAMSoftmax, SpeakerModel
from kdlib.models.heads import PredictionHeads
from kdlib.models.ssl import adapter_parameters, add_adapters, make_student, set_adapter_mask, without_feature_encoder

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


def _teacher():
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    return HubertModel(HubertConfig(**TINY)).eval()


def _system(regime="one_step", adapters=True, kd_target="mse", steps=10, n_classes=4, readout="last"):
    teacher = _teacher()
    torch.manual_seed(1)
    student = make_student(teacher, 2)
    ads = add_adapters(student, bottleneck=8) if adapters else []
    encoder = ECAPA_TDNN(16, 8, n_mels=32, instance_norm=True)
    if readout == "layers":
        encoder = os_kdft.MixedLayers(encoder, n_states=3)  # the stem's output and the student's 2 layers
        student.config.layerdrop = 0.0  # a dropped layer would return no state to mix
    backend = SpeakerModel(encoder, head=AAMSoftmax(8, n_classes))
    heads = PredictionHeads(32, 3) if kd_target == "heads" else None
    obj = os_kdft.OneStepKDFT(
        without_feature_encoder(student),
        backend,
        regime=regime,
        adapters=ads,
        kd_target=kd_target,
        heads=heads,
        kd_weight=1.0,
        total_steps=steps,
        readout=readout,
    )
    return teacher, student, ads, obj


def _batch(teacher, n=4, k=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    wave = torch.randn(n, 8000, generator=g)
    with torch.no_grad():
        feats = teacher.feature_extractor(wave)
        hidden = without_feature_encoder(teacher)(feats, output_hidden_states=True).hidden_states
    layers = (3,) if k == 1 else distil_layers(3, k)
    return {"feats": feats, "label": torch.arange(n) % 4, "targets": torch.stack([hidden[i] for i in layers], 1)}


def _train(obj, batch, steps, learning_rates, watch):
    """Adam on one batch for ``steps`` steps; the first value of the loss term ``watch`` and the last terms."""
    opt = torch.optim.Adam(obj.param_groups(*learning_rates))
    obj.train()
    first = None
    for _ in range(steps):
        loss, terms = obj.loss(batch)
        first = first or terms[watch].item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, terms


def test_linear_decay_end_points():
    assert os_kdft.linear_decay(0, 100) == 1.0
    assert os_kdft.linear_decay(50, 100) == 0.5
    assert os_kdft.linear_decay(100, 100) == 0.0 and os_kdft.linear_decay(150, 100) == 0.0
    with pytest.raises(ValueError, match="positive"):
        os_kdft.linear_decay(0, 0)


def test_distil_layers_spread_like_distilhubert():
    assert distil_layers(12) == (4, 8, 12)
    assert distil_layers(4) == (1, 3, 4)
    assert distil_layers(24, 4) == (6, 12, 18, 24)
    with pytest.raises(ValueError, match="cannot spread"):
        distil_layers(2, 3)


def test_the_old_name_of_distil_layers_still_answers_with_a_warning():
    with pytest.warns(DeprecationWarning, match="kdlib.kd.layers.distil_layers"):
        assert os_kdft.distill_layers(12) == (4, 8, 12)


def test_hidden_mse_golden_and_shape_check():
    s, t = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert losses.hidden_mse(s, t).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    with pytest.raises(ValueError, match="equal shapes"):
        losses.hidden_mse(s, torch.zeros(1, 3, 2))


def test_distilhubert_golden_value():
    pred = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]]]])  # (B=1, K=1, T=2, D=2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    total, parts = losses.distilhubert(pred, target, cos_weight=1.0)
    l1 = (1 + 1) / 4  # |0-1| on frame 1, |2-1| on frame 2, averaged over T·D
    cos = -(math.log(1 / (1 + math.exp(-1 / math.sqrt(2)))) + math.log(1 / (1 + math.exp(-1)))) / 2
    assert parts["l1"].item() == pytest.approx(l1)
    assert parts["cos"].item() == pytest.approx(cos, rel=1e-5)
    assert total.item() == pytest.approx(l1 + cos, rel=1e-5)
    with pytest.raises(ValueError, match="prediction heads"):
        losses.distilhubert(pred, target[:, :, :1])


def test_the_student_without_its_cnn_reads_cached_features():
    teacher = _teacher()
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        full = teacher(wave).last_hidden_state
        body = without_feature_encoder(teacher)
        assert torch.allclose(body(teacher.feature_extractor(wave)).last_hidden_state, full, atol=1e-6)
    assert teacher(wave).last_hidden_state.shape == full.shape  # the original still takes audio
    cnn = {id(p) for p in teacher.feature_extractor.parameters()}
    assert cnn and not cnn & {id(p) for p in body.parameters()}


def test_the_two_branches_of_one_pass_equal_two_separate_passes():
    teacher, student, adapters, obj = _system()
    for a in adapters:  # make the adapters do something
        torch.nn.init.normal_(a.up.weight)
    obj.eval()
    batch = _batch(teacher)
    feats = batch["feats"]
    body = obj.student
    with torch.no_grad():
        set_adapter_mask(adapters, torch.zeros(4))
        without = body(feats).last_hidden_state
        set_adapter_mask(adapters, None)
        with_adapters = body(feats).last_hidden_state
        loss, terms = obj.loss(batch)
    assert not torch.allclose(without, with_adapters)
    kd = losses.hidden_mse(without, batch["targets"][:, -1])
    sv, _ = obj.backend.head(obj.backend.encoder(with_adapters.transpose(1, 2)), batch["label"])
    assert terms["kd"].item() == pytest.approx(kd.item(), rel=1e-5)
    assert terms["sv"].item() == pytest.approx(sv.item(), rel=1e-5)
    assert loss.item() == pytest.approx(kd.item() + sv.item(), rel=1e-5)  # w = 1 at step 0, kd_weight = 1
    assert torch.allclose(obj(feats), obj.backend.encoder(with_adapters.transpose(1, 2)), atol=1e-5)


def test_the_kd_branch_gives_the_adapters_no_gradient():
    teacher, student, adapters, obj = _system()
    for a in adapters:
        torch.nn.init.normal_(a.up.weight)
    batch = _batch(teacher)
    n = batch["feats"].shape[0]
    set_adapter_mask(adapters, torch.cat([torch.zeros(n), torch.ones(n)]))
    hidden = obj.student(torch.cat([batch["feats"]] * 2)).last_hidden_state
    obj.kd_loss(hidden[:n], batch["targets"]).backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in adapter_parameters(adapters))
    shared = obj.student.encoder.layers[0].attention.q_proj.weight
    assert shared.grad is not None and shared.grad.abs().max() > 0


def test_the_kd_schedule_decays_over_training_steps():
    teacher, _, _, obj = _system(steps=4)
    batch = _batch(teacher)
    weights = [obj.loss(batch)[1]["kd_schedule"] for _ in range(5)]
    assert weights == [1.0, 0.75, 0.5, 0.25, 0.0]
    obj.eval()
    assert obj.loss(batch)[1]["kd_schedule"] == 0.0 and int(obj.step) == 5  # evaluation does not advance it


def test_regimes_train_their_own_parts():
    teacher, _, adapters, kd = _system("kd", adapters=False)
    groups = {g["name"] for g in kd.param_groups(1e-4, 1e-3, 1e-3)}
    assert groups == {"student"}
    loss, terms = kd.loss(_batch(teacher))
    assert terms["sv"] == 0 and loss.item() == pytest.approx(terms["kd"].item())
    _, _, _, ft = _system("ft", adapters=False)
    loss, terms = ft.loss(_batch(teacher))
    assert terms["kd"] == 0 and terms["kd_schedule"] == 0.0 and loss.item() == pytest.approx(terms["sv"].item())
    _, _, adapters, full = _system(kd_target="heads")
    groups = {g["name"]: g for g in full.param_groups(1e-4, 1e-3, 1e-2)}
    assert set(groups) == {"student", "backend", "adapters"} and groups["adapters"]["lr"] == 1e-2
    assert {id(p) for p in groups["adapters"]["params"]} == {id(p) for p in adapter_parameters(adapters)}
    assert {id(p) for p in full.heads.parameters()} <= {id(p) for p in groups["backend"]["params"]}
    with pytest.raises(ValueError, match="regime"):
        os_kdft.OneStepKDFT(full.student, full.backend, regime="two_step")
    with pytest.raises(ValueError, match="heads"):
        os_kdft.OneStepKDFT(full.student, full.backend, kd_target="heads")


@pytest.mark.parametrize("kd_target", ["mse", "heads"])
def test_one_step_kdft_overfits_a_tiny_batch(kd_target):
    teacher, _, _, obj = _system(kd_target=kd_target, steps=60)
    batch = _batch(teacher, k=1 if kd_target == "mse" else 3)
    first, terms = _train(obj, batch, steps=60, learning_rates=(1e-3, 1e-2, 1e-2), watch="sv")
    assert terms["sv"].item() < 0.3 * first and terms["accuracy"].item() == 1.0


@pytest.mark.parametrize("kd_target", ["mse", "heads"])
def test_distillation_alone_pulls_a_scrambled_student_to_its_teacher(kd_target):
    teacher, student, _, obj = _system("kd", adapters=False, kd_target=kd_target)
    torch.manual_seed(2)
    for name, p in student.encoder.layers.named_parameters():  # start far from the teacher
        if "layer_norm" not in name:
            torch.nn.init.normal_(p, std=0.3)
    batch = _batch(teacher, k=1 if kd_target == "mse" else 3)
    first, terms = _train(obj, batch, steps=150, learning_rates=(3e-3, 3e-3, 0.0), watch="kd")
    # the L1 + cosine loss cannot go below K·(−log σ(1)) (cosine 1 everywhere); MSE can reach 0
    floor = 3 * -math.log(1 / (1 + math.exp(-1))) if kd_target == "heads" else 0.0
    assert terms["kd"].item() - floor < 0.4 * (first - floor)


def test_ecapa_instance_norm_ignores_per_channel_offset_and_scale():
    torch.manual_seed(0)
    model = ECAPA_TDNN(16, 8, n_mels=12, instance_norm=True).eval()
    x = torch.randn(2, 12, 40)
    shifted = x * torch.rand(1, 12, 1).add(0.5) + torch.randn(1, 12, 1) * 5
    with torch.no_grad():
        assert torch.allclose(model(x), model(shifted), atol=1e-3)
    assert sum(p.numel() for p in model.input_norm.parameters()) == 0  # no weights: old checkpoints still load


def test_ecapa_batch_norm_input_keeps_what_instance_norm_removes():
    torch.manual_seed(0)
    x = torch.randn(8, 12, 40)
    offsets = torch.randn(8, 12, 1) * 3  # a per-utterance, per-channel mean: what instance norm erases
    batch = ECAPA_TDNN(16, 8, n_mels=12, input_norm="batch").eval()
    batch.input_norm.running_mean.normal_()
    batch.input_norm.running_var.uniform_(0.5, 2.0)
    norm = batch.input_norm
    by_hand = (x - norm.running_mean[:, None]) / torch.sqrt(norm.running_var[:, None] + norm.eps)
    with torch.no_grad():
        assert torch.allclose(norm(x), by_hand * norm.weight[:, None] + norm.bias[:, None], atol=1e-5)
        assert not torch.allclose(batch(x), batch(x + offsets), atol=1e-2)
    assert ECAPA_TDNN(16, 8, n_mels=12, input_norm="instance").input_norm.__class__.__name__ == "InstanceNorm1d"
    with pytest.raises(ValueError, match="input_norm"):
        ECAPA_TDNN(16, 8, n_mels=12, input_norm="layer")
    with pytest.raises(ValueError, match="contradict"):
        ECAPA_TDNN(16, 8, n_mels=12, instance_norm=True, input_norm="batch")


def test_mixed_layers_is_the_softmax_weighted_sum_of_the_states_under_the_encoder():
    torch.manual_seed(0)
    encoder = ECAPA_TDNN(16, 8, n_mels=32, instance_norm=True).eval()
    mixed = os_kdft.MixedLayers(encoder, n_states=3).eval()
    states = torch.randn(2, 3, 32, 20)
    with torch.no_grad():
        assert torch.allclose(mixed(states), encoder(states.mean(dim=1)), atol=1e-5)  # zeros: the plain mean
        mixed.mix.weights.copy_(torch.log(torch.tensor([1.0, 2.0, 5.0])))
        by_hand = 0.125 * states[:, 0] + 0.25 * states[:, 1] + 0.625 * states[:, 2]
        assert torch.allclose(mixed(states), encoder(by_hand), atol=1e-5)
    assert mixed.layer_weights() == pytest.approx([0.125, 0.25, 0.625]) and mixed.embed_dim == 8
    with pytest.raises(ValueError, match="expected hidden states"):
        mixed(states[:, 0])
    with pytest.raises(ValueError, match="expected 3 layers"):
        mixed(states[:, :2])


def test_the_layers_readout_feeds_every_student_state_to_the_backend_and_the_kd_branch_the_last():
    teacher, student, adapters, obj = _system(readout="layers", steps=60)
    batch = _batch(teacher)
    obj.eval()
    with torch.no_grad():
        set_adapter_mask(adapters, None)
        states = without_feature_encoder(student)(batch["feats"], output_hidden_states=True).hidden_states
        by_hand = obj.backend.encoder(torch.stack(states, dim=1).transpose(2, 3))
        assert torch.allclose(obj(batch["feats"]), by_hand, atol=1e-6)
    first, terms = _train(obj, batch, steps=60, learning_rates=(1e-3, 1e-2, 1e-2), watch="sv")
    assert terms["sv"].item() < 0.3 * first and terms["accuracy"].item() == 1.0
    assert abs(sum(obj.backend.encoder.layer_weights()) - 1) < 1e-6
    assert obj.backend.encoder.layer_weights() != pytest.approx([1 / 3] * 3)  # the mix learned something
    student.config.layerdrop = 1.0  # every layer dropped in training: too few states
    with pytest.raises(ValueError, match="layerdrop"):
        obj.loss(batch)
    _, _, _, plain = _system()
    with pytest.raises(ValueError, match="MixedLayers"):
        os_kdft.OneStepKDFT(plain.student, plain.backend, readout="layers")
    with pytest.raises(ValueError, match="readout"):
        os_kdft.OneStepKDFT(plain.student, plain.backend, readout="middle")


def test_the_old_name_of_the_kd_weight_still_works_with_a_warning():
    _, _, _, obj = _system(steps=4)
    with pytest.warns(DeprecationWarning, match="kd_weight"):
        old = os_kdft.OneStepKDFT(
            obj.student,
            obj.backend,
            kd_target=obj.kd_target,
            heads=obj.heads,
            kd_scale=3.0,
            total_steps=4,
            readout=obj.readout,
            adapters=obj.adapters,
        )
    assert old.kd_weight == 3.0
