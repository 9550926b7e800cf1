import numpy as np
import pytest
import torch
from torch import nn

from kdlib import quant
from kdlib.evaluation import bench
from kdlib.models import speaker_model


def test_levels_golden():
    assert quant.levels(3, "uniform").tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert quant.levels(3, "pot").tolist() == [0, 0.25, 0.5, 1]
    assert quant.levels(2, "uniform").tolist() == [0, 1] == quant.levels(2, "pot").tolist()  # ternary
    assert len(quant.levels(8, "uniform")) == 128
    with pytest.raises(ValueError, match="bits"):
        quant.levels(1)
    with pytest.raises(ValueError, match="scheme"):
        quant.levels(4, "log")


def test_uniform_and_pot_golden_values():
    w = torch.tensor([0.1, -0.6, 0.26, 1.0])
    q, codes, alpha = quant.quantize(w, 3, "uniform", per_channel=False)
    assert alpha.item() == 1.0
    assert codes.tolist() == [0, -2, 1, 3]
    assert q.tolist() == pytest.approx([0, -2 / 3, 1 / 3, 1])
    q, codes, _ = quant.quantize(torch.tensor([0.1, -0.6, 0.3, 1.0]), 3, "pot", per_channel=False)
    assert q.tolist() == pytest.approx([0, -0.5, 0.25, 1.0])


def test_per_channel_uses_one_alpha_per_output_channel():
    w = torch.tensor([[1.0, 0.4], [10.0, -6.0]])
    q, _, alpha = quant.quantize(w, 2, "uniform", per_channel=True)
    assert alpha.flatten().tolist() == [1.0, 10.0]
    assert q.tolist() == [[1.0, 0.0], [10.0, -10.0]]
    q_tensor, _, _ = quant.quantize(w, 2, "uniform", per_channel=False)
    assert q_tensor[0].tolist() == [0.0, 0.0]  # the small channel vanishes under one shared alpha


def test_error_shrinks_with_bits_and_mse_clipping_helps():
    torch.manual_seed(0)
    w = torch.randn(64, 64) ** 3  # heavy tails
    errors = [(quant.quantize(w, b)[0] - w).norm().item() for b in (2, 3, 4, 6, 8)]
    assert errors == sorted(errors, reverse=True)
    for b in (3, 4):
        mse = (quant.quantize(w, b, clip="mse")[0] - w).norm()
        mx = (quant.quantize(w, b, clip="max")[0] - w).norm()
        assert mse <= mx


def test_mse_clipping_picks_the_best_ratio_of_its_grid_even_the_smallest():
    """The search returns, per channel, the α = r·max|w| (r = 0.20, 0.25, …, 1.00) of least squared error. An
    outlier among many mid-sized weights makes the smallest ratio best at 2 bits (the case an earlier version
    got wrong: it kept max|w| when r = 0.2 won)."""
    outlier = torch.tensor([[10.0] + [1.5] * 100])
    assert quant.quantize(outlier, 2, clip="mse")[2].item() == pytest.approx(2.0)
    torch.manual_seed(0)
    w = torch.cat([torch.randn(200, 101) ** 3, outlier])
    wmax = w.abs().amax(dim=1, keepdim=True)
    ratios = torch.linspace(0.2, 1.0, 17)
    errors = torch.stack([((quant.quantize(w, 2, alpha=wmax * r)[0] - w) ** 2).sum(dim=1) for r in ratios])
    best = wmax.squeeze(1) * ratios[errors.argmin(dim=0)]
    assert torch.allclose(quant.quantize(w, 2, clip="mse")[2].squeeze(1), best)
    assert errors.argmin(dim=0)[-1] == 0  # the outlier row: the smallest ratio wins


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_pack_round_trip_and_size(bits):
    torch.manual_seed(bits)
    n = 2 ** (bits - 1) - 1
    codes = torch.randint(-n, n + 1, (1001,))
    packed = quant.pack(codes, bits)
    assert packed.dtype == np.uint8 and packed.nbytes == -(-1001 * bits // 8)
    assert torch.equal(quant.unpack(packed, bits, 1001), codes)


def test_pack_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="range"):
        quant.pack(torch.tensor([4]), 3)


def test_packed_model_size_follows_32_over_b():
    model = speaker_model("ecapa_tdnn", channels=64)  # wave in: the front end's buffers stay fp32
    layers = quant.quantizable(model).values()
    weights = sum(m.weight.numel() for m in layers)
    alphas = sum(m.weight.shape[0] for m in layers)
    from kdlib.evaluation.bench import model_bytes

    fp32 = model_bytes(model)
    for bits in (8, 4, 2):
        size = quant.packed_bytes(model, bits)
        # quantized weights take b/32 of their fp32 bytes, plus one fp32 alpha per channel; BN and biases stay
        assert size == pytest.approx(fp32 - 4 * weights + weights * bits / 8 + 4 * alphas, rel=0.02)


def test_ptq_model_has_few_distinct_values_per_channel():
    model = quant.quantize_model(nn.Sequential(nn.Linear(16, 8)), 3, "uniform")
    w = model[0].weight
    assert all(len(torch.unique(row)) <= 7 for row in w)


def test_straight_through_estimator_gradient():
    w = torch.randn(4, 5, requires_grad=True)
    c = torch.randn(4, 5)
    (quant.FakeQuant(2)(w) * c).sum().backward()
    assert torch.allclose(w.grad, c)  # d q(w)/dw treated as identity


def test_qat_trains_through_quantized_weights_then_bakes_them():
    torch.manual_seed(0)
    model = quant.prepare_qat(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)), bits=4)
    x = torch.randn(128, 8)
    y = x.sum(1, keepdim=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    quant.finish_qat(model)
    assert all(len(torch.unique(row)) <= 15 for row in model[0].weight)
    assert nn.functional.mse_loss(model(x), y).item() == pytest.approx(losses[-1], rel=0.5)


def test_weight_stats_and_kurtosis():
    torch.manual_seed(0)
    assert abs(quant.excess_kurtosis(torch.randn(100_000))) < 0.1
    assert quant.excess_kurtosis(torch.randn(100_000) ** 3) > 5
    rows = quant.weight_stats(nn.Sequential(nn.Linear(4, 4), nn.Conv1d(4, 4, 3)), bits=4)
    assert [r["layer"] for r in rows] == ["0", "1"] and all(0 < r["rel_error"] < 1 for r in rows)


def test_int8_static_model_is_smaller_and_close():
    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=64).eval()
    calib = [torch.randn(4, 16000) for _ in range(3)]
    q = quant.int8_static(model, calib)
    x = torch.randn(2, 16000)
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(model(x), q(x))
    assert cos.min() > 0.98
    assert bench.serialized_bytes(q) < 0.5 * bench.serialized_bytes(model)


def test_fixed_alpha_and_self_distillation_qat(smoke_corpus):
    from torch.utils.data import DataLoader

    from kdlib.data.datasets import SVTrainCrops

    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=32).eval()
    w = model.encoder.layer1[0].weight.detach()
    fixed = torch.full((w.shape[0], 1, 1), 0.05)
    q, codes, alpha = quant.quantize(w, 3, alpha=fixed)
    assert torch.equal(alpha, fixed) and q.abs().max() <= 0.05 + 1e-7
    loader = DataLoader(SVTrainCrops(smoke_corpus, seconds=0.5), batch_size=8, shuffle=True)
    ptq = quant.quantize_model(model, 2, clip="mse")
    qat, history = quant.qat_finetune(model, loader, bits=2, steps=8, lr=1e-3, progress=False)
    x = torch.stack([loader.dataset[i][0] for i in range(8)])
    with torch.no_grad():
        ref = model(x)
        cos_ptq = torch.nn.functional.cosine_similarity(ptq(x), ref).mean()
        cos_qat = torch.nn.functional.cosine_similarity(qat(x), ref).mean()
    assert len(history["loss"]) == 8
    assert cos_qat > cos_ptq  # fine-tuning through the quantizer recovers agreement with the fp32 model
    assert all(len(torch.unique(row)) <= 3 for row in qat.encoder.layer1[0].weight.flatten(1))


def test_the_front_end_is_never_quantized():
    model = speaker_model("ecapa_tdnn", channels=32)
    names = list(quant.quantizable(model))
    assert names and all(n.startswith("encoder.") for n in names)


def test_ptq_ladder_starts_at_fp32_and_shrinks_with_the_bits():
    model = speaker_model("ecapa_tdnn", channels=32)
    ladder = list(quant.ptq_ladder(model, (8, 4), clip="mse"))
    assert [bits for bits, _, _ in ladder] == [32, 8, 4]
    assert ladder[0][1] is model and ladder[0][2] == bench.model_bytes(model)
    sizes = [n_bytes for _, _, n_bytes in ladder]
    assert sizes[0] > sizes[1] > sizes[2]
    expected = quant.post_training_quantize(model, 4, clip="mse")
    assert ladder[2][2] == bench.state_bytes(expected[1])
    name = next(iter(quant.quantizable(model)))
    assert torch.equal(dict(ladder[2][1].named_modules())[name].weight, dict(expected[0].named_modules())[name].weight)


@pytest.mark.parametrize("bad", [(1,), (32,), (4.0,)])
def test_ptq_ladder_refuses_impossible_bit_widths(bad):
    with pytest.raises(ValueError, match="bit widths"):
        list(quant.ptq_ladder(speaker_model("ecapa_tdnn", channels=32), bad))
