import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.evaluation import bench
from kdlib.evaluation.bench import count_params
from kdlib.models import ECAPA_TDNN, AAMSoftmax, ResNet34, SpeakerModel, speaker_model


def test_parameter_counts_match_the_papers():
    # ECAPA-TDNN paper, Table 1: C=512 has 6.2 M parameters; the VoxCeleb ResNet-34 (32 channels) 6.6 M.
    assert count_params(ECAPA_TDNN(512, 192)) == 6_191_360
    assert count_params(ResNet34(32, 256)) == 6_634_336
    assert count_params(ECAPA_TDNN(128)) < count_params(ECAPA_TDNN(512)) / 4


@pytest.mark.parametrize(
    "architecture,kwargs,dim", [("ecapa_tdnn", {"channels": 64}, 192), ("resnet34", {"base": 8, "embed_dim": 128}, 128)]
)
def test_embedding_shapes_for_any_length(architecture, kwargs, dim):
    model = speaker_model(architecture, **kwargs).eval()
    for samples in (8000, 16000, 40000):
        assert model(torch.randn(2, samples)).shape == (2, dim)


def test_ecapa_rejects_channels_not_divisible_by_scale():
    with pytest.raises(ValueError, match="divisible"):
        ECAPA_TDNN(100)


def test_aam_softmax_golden_value():
    head = AAMSoftmax(2, 3, margin=0.2, scale=10.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    emb = torch.tensor([[math.cos(0.3), math.sin(0.3)]])
    loss, logits = head(emb, torch.tensor([0]))
    # Target angle 0.3 -> margin logit 10 cos(0.5); others 10 cos(1.2708) and 10 cos(2.8416).
    target = 10 * math.cos(0.5)
    others = [10 * math.cos(math.pi / 2 - 0.3), 10 * math.cos(math.pi - 0.3)]
    expected = -target + math.log(math.exp(target) + sum(math.exp(o) for o in others))
    assert loss.item() == pytest.approx(expected, abs=2e-6)  # float32 logits of size 10
    assert logits[0, 0].item() == pytest.approx(10 * math.cos(0.3), rel=1e-5)


def test_aam_without_margin_is_scaled_cosine_cross_entropy():
    torch.manual_seed(0)
    head = AAMSoftmax(8, 5, margin=0.0, scale=30.0)
    emb, labels = torch.randn(6, 8), torch.randint(0, 5, (6,))
    loss, logits = head(emb, labels)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_aam_margin_makes_the_loss_larger():
    torch.manual_seed(0)
    emb, labels = torch.randn(16, 8), torch.randint(0, 4, (16,))
    plain, margin = AAMSoftmax(8, 4, margin=0.0), AAMSoftmax(8, 4, margin=0.3)
    margin.load_state_dict(plain.state_dict())
    assert margin(emb, labels)[0] > plain(emb, labels)[0]


def test_small_ecapa_overfits_a_few_clips(smoke_corpus):
    """A model must be able to memorise 8 clips of 4 speakers on the CPU in seconds."""
    from kdlib.data.datasets import SVTrainCrops

    torch.manual_seed(0)
    data = SVTrainCrops(smoke_corpus, seconds=1.0)
    rows = [r for s in data.speakers[:4] for r in [x for x in data.rows if x["speaker"] == s][:2]]
    data = SVTrainCrops(smoke_corpus, rows, seconds=1.0)
    waves = torch.stack([torch.from_numpy(data.audio(r["path"])[:16000].copy()) for r in rows])
    labels = torch.tensor([data.speakers.index(r["speaker"]) for r in rows])
    model = speaker_model("ecapa_tdnn", data.n_speakers, margin=0.2, scale=30, channels=32, embed_dim=32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _ = model.loss((waves, labels))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final_loss, logits = model.head(model(waves), labels)
    assert data.n_speakers == 4
    assert final_loss.item() < 0.2 * losses[0]
    assert (logits.argmax(-1) == labels).all()


def test_centroid_head_scores_class_means():
    from kdlib.models import centroid_head

    emb = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    head = centroid_head(emb, torch.tensor([0, 0, 1, 1]), 2, scale=10.0)
    assert torch.allclose(head.logits(torch.tensor([[1.0, 1.0]])), torch.full((1, 2), 10 / 2**0.5))
    assert not any(p.requires_grad for p in head.parameters())
    with pytest.raises(ValueError, match="no embeddings for classes"):
        centroid_head(emb, torch.tensor([0, 0, 0, 0]), 2)


def test_fitted_head_separates_its_classes_with_the_margin():
    from kdlib.models import fitted_head

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen)
    labels = torch.arange(4).repeat(5)
    emb = centres[labels] + 0.3 * torch.randn(20, 16, generator=gen)
    head = fitted_head(emb, labels, 4, steps=200)
    assert (head.logits(emb).argmax(-1) == labels).all()
    assert head(emb, labels)[0].item() < 1.0  # the margin-penalised loss is small too: not just the argmax
    assert not any(p.requires_grad for p in head.parameters())
    assert torch.equal(fitted_head(emb, labels, 4, steps=20).weight, fitted_head(emb, labels, 4, steps=20).weight)
    state = torch.random.get_rng_state()
    fitted_head(emb, labels, 4, steps=2, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left alone
    with pytest.raises(ValueError, match="no embeddings for classes"):
        fitted_head(emb, torch.zeros(20, dtype=torch.long), 4)


def test_speaker_model_parts_are_replaceable_without_surgery():
    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", 5, channels=32, embed_dim=16).eval()
    wave = torch.randn(3, 16000)
    with torch.no_grad():
        feats = model.frontend(wave)
        emb = model(wave)
        assert torch.equal(SpeakerModel(model.encoder)(feats), emb)  # features in, same encoder
        assert torch.equal(model.classifier()(wave), model.head.logits(emb))  # logits for captum and KD
        assert not model.classifier().training  # in the model's own mode
        deployed = model.deployable()
        assert deployed.head is None and torch.equal(deployed(wave), emb)
        assert deployed.encoder is not model.encoder  # a copy: training on is safe
        on_feats = SpeakerModel(model.encoder, head=model.head)
        assert torch.equal(on_feats.deployable(frontend=model.frontend)(wave), emb)
    loss, terms = model.train().loss((wave, torch.tensor([0, 1, 2])))
    assert loss.item() > 0 and 0 <= terms["accuracy"] <= 1
    with pytest.raises(ValueError, match="has no head"):
        deployed.logits(wave)
    with pytest.raises(ValueError, match="unknown architecture"):
        speaker_model("tdnn")


def test_checkpoint_round_trip_and_layout(tmp_path):
    from safetensors import safe_open

    from kdlib.models import load_speaker_model, save_speaker_model

    torch.manual_seed(0)
    model = speaker_model("resnet34", 4, base=4, embed_dim=32).eval()
    save_speaker_model(model, tmp_path / "m", "resnet34", {"base": 4, "embed_dim": 32})
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "fbank.mel.mel_scale.fb" in keys and "embed.weight" in keys and not any("head" in k for k in keys)
    loaded = load_speaker_model(tmp_path / "m")
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        assert torch.allclose(loaded(wave), model(wave), atol=2e-2)  # fp16 storage
    assert next(loaded.parameters()).dtype == torch.float32 and loaded.head is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad/config.json: not a kdlib speaker-model config"):
        load_speaker_model(tmp_path / "bad")


def test_stats_pool_golden_values():
    from kdlib.models import stats_pool

    x = torch.tensor([[1.0, 3.0], [2.0, 2.0]])  # two channels over two frames
    assert stats_pool(x, floor=0.0).tolist() == [2.0, 2.0, 1.0, 0.0]
    assert stats_pool(x).tolist() == pytest.approx([2.0, 2.0, 1.0, 1e-5**0.5])  # variance floor
    assert stats_pool(x, unbiased=True, floor=0.0).tolist() == pytest.approx([2.0, 2.0, 2**0.5, 0.0])
    assert stats_pool(x.T, dim=0, floor=0.0).tolist() == [2.0, 2.0, 1.0, 0.0]


def test_reductions_compare_each_student_with_its_architectures_teacher():
    rows = [
        {
            "architecture": "big",
            "role": "teacher",
            "layers": 24,
            "ssl_params": 300e6,
            "system_params": 310e6,
            "ssl_cpu_ms": 1000.0,
            "ssl_gpu_ms": 10.0,
        },
        {
            "architecture": "big",
            "role": "student",
            "layers": 4,
            "ssl_params": 60e6,
            "system_params": 77.5e6,
            "ssl_cpu_ms": 250.0,
            "ssl_gpu_ms": 4.0,
        },
        {
            "architecture": "ours",
            "role": "student",
            "layers": 2,
            "ssl_params": 2e6,
            "system_params": 3e6,
            "ssl_cpu_ms": 15.0,
        },
        {
            "architecture": "ours",
            "role": "teacher",
            "layers": 4,
            "ssl_params": 4e6,
            "system_params": 6e6,
            "ssl_cpu_ms": 20.0,
        },
    ]
    big, ours = bench.reductions(rows)
    assert big["student layers"] == "4 of 24" and big["system size reduction %"] == pytest.approx(75.0)
    assert big["SSL size reduction %"] == pytest.approx(80.0) and big["SSL CPU time reduction %"] == pytest.approx(75.0)
    assert big["SSL GPU time reduction %"] == pytest.approx(60.0) and big["teacher system params (M)"] == 310.0
    assert ours["system size reduction %"] == pytest.approx(50.0) and ours["SSL CPU time reduction %"] == 25.0
    assert "SSL GPU time reduction %" not in ours  # the teacher row has no GPU time: nothing to compare
    with pytest.raises(ValueError, match="ours: no teacher row"):
        bench.reductions(rows[2:3])
