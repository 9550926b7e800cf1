import pytest
import torch
from torch import nn

from kdlib.evaluation import attribution


class TinySpeakerNet(nn.Module):
    """A small non-linear model on (batch, mels, frames) features with 3 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(8, 16, 3, padding=1)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.conv(x)).mean(-1))


def test_ig_is_exact_for_a_linear_model():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 10)
    model = nn.Linear(80, 3, bias=False)
    model.weight.data = w.flatten(1)
    model = nn.Sequential(nn.Flatten(), model)
    x, base = torch.randn(2, 8, 10), torch.randn(2, 8, 10)
    attr, delta = attribution.integrated_gradients(model, x, torch.tensor([1, 2]), base, n_steps=4)
    assert torch.allclose(attr[0], (x[0] - base[0]) * w[1], atol=1e-5)
    assert torch.allclose(attr[1], (x[1] - base[1]) * w[2], atol=1e-5)
    assert delta.abs().max() < 1e-4


def test_ig_completeness_on_a_tiny_nonlinear_model():
    model = TinySpeakerNet()
    x = torch.randn(4, 8, 20)
    target = torch.tensor([0, 1, 2, 0])
    base = attribution.silence_baseline(x)
    attr, delta = attribution.integrated_gradients(model, x, target, base, n_steps=32)
    rows = torch.arange(4)
    gap = (model(x)[rows, target] - model(base)[rows, target]).detach()
    assert torch.allclose(attr.sum(dim=(1, 2)), gap, atol=1e-3)
    assert delta.abs().max() < 1e-3
    assert all(p.requires_grad for p in model.parameters()) and model.training  # state restored


def test_ig_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="one target each"):
        attribution.integrated_gradients(TinySpeakerNet(), torch.randn(3, 8, 5), torch.tensor([0, 1]))


def test_silence_baseline_saliency_and_integrated_input():
    x = torch.tensor([[[1.0, -2.0, 3.0], [0.0, 5.0, 4.0]]])
    base = attribution.silence_baseline(x)
    assert torch.equal(base, torch.tensor([[[-2.0, -2.0, -2.0], [0.0, 0.0, 0.0]]]))
    sal = attribution.saliency(torch.tensor([[[0.0, -1.0, 2.0], [4.0, 0.5, -100.0]]]), quantile=0.8)
    assert sal.min() >= 0 and sal.max() == 1 and sal[0, 0, 0] == 0
    assert torch.equal(attribution.integrated_input(x, base, sal, floor=1.0), x)
    assert torch.equal(attribution.integrated_input(x, base, torch.zeros_like(x), floor=0.0), base)
    half = attribution.integrated_input(x, base, torch.zeros_like(x), floor=0.5)
    assert torch.allclose(half, (x + base) / 2)
    with pytest.raises(ValueError, match="floor"):
        attribution.integrated_input(x, base, sal, floor=1.5)
    ts = attribution.time_saliency(torch.tensor([[[1.0, -3.0], [1.0, 0.0]]]))
    assert torch.allclose(ts, torch.tensor([[0.4, 0.6]]))


def test_build_integrated_inputs_shapes_and_delta():
    model = TinySpeakerNet()
    feats, labels = torch.randn(5, 8, 12), torch.tensor([0, 1, 2, 1, 0])
    out = attribution.build_integrated_inputs(model, feats, labels, n_steps=16, batch_size=2, progress=False)
    assert out["integrated"].shape == feats.shape and out["saliency"].dtype == torch.float16
    assert out["delta"].shape == (5,) and out["logit_gap"].shape == (5,)
    assert (out["delta"].abs() <= 0.05 * out["logit_gap"].abs() + 1e-3).all()


def test_deletion_insertion_golden_curves():
    feats = torch.tensor([[3.0, 2.0, 1.0, 0.0]])  # one mel band, four frames
    score = lambda batch: batch.sum(dim=(1, 2))  # noqa: E731
    good = attribution.deletion_insertion(score, feats, torch.zeros_like(feats), torch.tensor([0, 1, 2, 3]), steps=4)
    assert good["deletion"].tolist() == [6, 3, 1, 0, 0] and good["insertion"].tolist() == [0, 3, 5, 6, 6]
    assert good["deletion_auc"] == pytest.approx(1.75) and good["insertion_auc"] == pytest.approx(4.25)
    bad = attribution.deletion_insertion(score, feats, torch.zeros_like(feats), torch.tensor([3, 2, 1, 0]), steps=4)
    assert bad["deletion_auc"] > good["deletion_auc"] and bad["insertion_auc"] < good["insertion_auc"]
    with pytest.raises(ValueError, match="one rank per frame"):
        attribution.deletion_insertion(score, feats, torch.zeros_like(feats), torch.tensor([0, 1]))


def test_build_integrated_inputs_logit_gap_matches_the_model():
    model = TinySpeakerNet()
    feats, labels = torch.randn(3, 8, 12), torch.tensor([2, 0, 1])
    out = attribution.build_integrated_inputs(model, feats, labels, n_steps=8, progress=False)
    rows = torch.arange(3)
    base = attribution.silence_baseline(feats)
    with torch.no_grad():
        gap = model(feats)[rows, labels] - model(base)[rows, labels]
    assert torch.allclose(out["logit_gap"], gap, atol=1e-5)


def test_faithfulness_gives_ig_and_random_curves_per_item():
    model = TinySpeakerNet()
    feats, labels = torch.randn(2, 8, 12), torch.tensor([1, 2])
    base = attribution.silence_baseline(feats)
    attr, mean_delta, curves = attribution.faithfulness(
        model, feats, labels, base, n_steps=8, steps=4, generator=torch.Generator().manual_seed(0)
    )
    assert attr.shape == feats.shape and mean_delta >= 0
    assert [(c["ranking"], c["item"]) for c in curves] == [("IG", 0), ("random", 0), ("IG", 1), ("random", 1)]
    with torch.no_grad():
        p = torch.softmax(model(feats), 1)[torch.arange(2), labels]
    for c in curves:  # nothing deleted: the model's true-class probability on the item
        assert c["deletion"][0] == pytest.approx(p[c["item"]].item(), abs=1e-6)
    again = attribution.faithfulness(
        model, feats, labels, base, n_steps=8, steps=4, generator=torch.Generator().manual_seed(0)
    )[2]
    assert all((a["deletion"] == b["deletion"]).all() for a, b in zip(curves, again))  # the generator fixes them


def test_ig_gives_every_module_its_own_mode_back():
    """An eval-mode model inside a train-mode wrapper must stay in eval mode (batch norm!) after IG."""
    inner = TinySpeakerNet().eval()
    wrapper = nn.Sequential(inner)  # a fresh module: train mode
    attribution.integrated_gradients(wrapper, torch.randn(2, 8, 12), torch.tensor([0, 1]), n_steps=4)
    assert wrapper.training and not inner.training and not inner.conv.training
    assert all(p.requires_grad for p in wrapper.parameters())
