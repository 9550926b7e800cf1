"""SUPERB-style evaluation: the weighted layer sum, the downstream models, the task suite; the per-task verdicts."""

import math

import numpy as np
import pytest
import torch

from kdlib.data import augment
from kdlib.data.datasets import random_subset
from kdlib.evaluation import metrics, superb
from kdlib.evaluation.verdicts import better, from_seeds


def test_weighted_sum_starts_as_the_mean_and_follows_softmax():
    mix = superb.WeightedLayerSum(2)
    h = torch.tensor([[1.0, 2.0], [5.0, -2.0]])  # 2 layers of width 2
    assert mix(h).tolist() == [3.0, 0.0]
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, math.log(3.0)]))  # softmax = (1/4, 3/4)
    assert torch.allclose(mix(h), torch.tensor([4.0, -1.0]))
    assert mix.layer_weights() == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="expected 2 layers"):
        mix(torch.zeros(3, 2))


def _layered(n=240, classes=4, seed=0):
    """Statistics of 3 layers: only layer 1 carries the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, 8, generator=g)
    x[:, 1, :classes] += 4.0 * torch.nn.functional.one_hot(y, classes)
    return x, y


def test_fit_downstream_learns_the_informative_layer():
    x, y = _layered()
    model = superb.fit_downstream(x, y, 4, steps=150)
    xt, yt = _layered(seed=1)
    with torch.no_grad():
        assert metrics.accuracy(model(xt), yt) > 0.95
    weights = model.mix.layer_weights()
    assert weights[1] == max(weights) and weights[1] > 0.5


def test_an_mlp_downstream_learns_what_a_linear_one_cannot():
    x, y = _layered()
    x = x[:, 1:2].clone()  # one layer
    y = (x[:, 0, 0] > 0).long() ^ (x[:, 0, 1] > 0).long()  # XOR of two signs: no linear map separates it
    linear = superb.fit_downstream(x, y, 2, steps=300)
    mlp = superb.fit_downstream(x, y, 2, steps=300, hidden=32)
    with torch.no_grad():
        assert metrics.accuracy(mlp(x), y) > 0.9 > 0.7 > metrics.accuracy(linear(x), y)
    assert isinstance(mlp.linear, torch.nn.Sequential) and isinstance(linear.linear, torch.nn.Linear)


def test_fit_downstream_is_deterministic_and_leaves_the_global_generator_alone():
    x, y = _layered()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = superb.fit_downstream(x, y, 4, steps=20, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = superb.fit_downstream(x, y, 4, steps=20, seed=7)
    assert torch.equal(a.linear.weight, b.linear.weight)


def test_verification_embeddings_separate_speakers():
    x, y = _layered(n=400, classes=8)
    model = superb.fit_downstream(x, y, 8, verification=True, embed_dim=16, steps=150)
    xt, yt = _layered(n=160, classes=8, seed=2)
    with torch.no_grad():
        e = torch.nn.functional.normalize(model(xt), dim=1)
    sim = e @ e.T
    same = (yt[:, None] == yt[None, :]) & ~torch.eye(len(yt), dtype=torch.bool)
    assert sim[same].mean() > sim[~same].mean() + 0.5


def test_fit_downstream_rejects_bad_input():
    x, y = _layered()
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        superb.fit_downstream(x, y, 3)
    with pytest.raises(ValueError, match=r"statistics \(n, layers, dim\)"):
        superb.fit_downstream(x[:, 0], y, 4)


def test_layer_statistics_golden_value():
    frames = torch.tensor([[[1.0], [3.0]]])  # one clip, 2 frames, width 1

    def two_layers(batch):
        return [batch, 2 * batch]

    stats = superb.layer_statistics(two_layers, frames)
    assert stats.shape == (1, 2, 2)
    assert torch.allclose(stats[0], torch.tensor([[2.0, 1.0], [4.0, 2.0]]))  # mean, std per layer


def test_subset_draws_without_aliasing():
    rows = [{"i": i, "kind": "keyword" if i % 5 else "silence"} for i in range(100)]
    picked = random_subset(rows, 20, np.random.default_rng(0))
    assert len(picked) == 20 and [r["i"] for r in picked] == sorted(r["i"] for r in picked)
    assert any(r["kind"] == "silence" for r in picked)  # a stride of 5 would see one kind only
    assert random_subset(rows, None, np.random.default_rng(0)) == rows


def _log_mel_layers(wave):
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(16_000, n_fft=400, hop_length=320, n_mels=16)
    feats = (mel(wave) + 1e-6).log().transpose(1, 2)  # (batch, frames, 16)
    return [feats, torch.tanh(feats)]


def test_suite_runs_end_to_end(smoke_corpus):
    suite = superb.build_suite(smoke_corpus, train_words=120, test_words=60)
    assert set(suite.sets) == {"sv_train", "sentences", "words_train", "words", "sentences_harsh", "words_harsh"}
    assert suite.sets["sentences"].shape[1] == 24_000 and suite.sets["words"].shape[1] == 16_000
    assert not torch.equal(suite.sets["sentences"], suite.sets["sentences_harsh"])
    assert suite.trials.shape[1] == 3 and suite.trials[:, 1:].max() < len(suite.rows["sentences"])
    again = superb.build_suite(smoke_corpus, train_words=120, test_words=60)
    assert torch.equal(suite.sets["words_harsh"], again.sets["words_harsh"])  # repeats bit for bit
    out = superb.run_suite(suite.statistics(_log_mel_layers), suite, steps=30)
    for cond in superb.CONDITIONS:
        assert set(out[cond]) == {"sid", "kws", "words", "sv_eer", "sv_min_dcf"}
        assert all(0.0 <= v <= 1.0 for v in out[cond].values())
    assert set(out["layer_weights"]) == {"sid", "kws", "words", "sv"}
    assert out["clean"]["kws"] > 1 / 12  # log-mels beat chance
    assert out["clean"]["sid"] > 1 / len({r["speaker"] for r in suite.rows["sentences"]})


def test_suite_refuses_trials_outside_the_test_sentences(smoke_corpus, tmp_path):
    from kdlib.data.sources import Source

    bad = tmp_path / "trials.txt"
    bad.write_text(
        f"1 {smoke_corpus.select('train', 'sentence')[0]['path']} "
        f"{smoke_corpus.select('test', 'sentence')[0]['path']}\n"
    )
    source = Source(smoke_corpus.root, smoke_corpus.manifest, {"trials": bad}, name="odd")
    with pytest.raises(
        ValueError,
        match=r"odd: trial list .trials. \(test sentences\) names 1 clips that are not "
        r"among the scored ones",
    ):
        superb.build_suite(source)


def test_harsh_is_harsher_than_the_corpus_session():
    corpus_snr, corpus_rt60 = (5.0, 30.0), (0.1, 0.6)  # kdlib.data.augment.session's defaults
    assert augment.HARSH["snr_db"][1] <= corpus_snr[0] and augment.HARSH["rt60"][0] >= corpus_rt60[1]
    assert augment.HARSH["p_reverb"] == 1.0
    clean = torch.from_numpy(np.sin(np.linspace(0, 2000, 16_000)).astype(np.float32)).unsqueeze(0)
    harsh = augment.distort_crops(clean, 1.0, seed=0, **augment.HARSH)
    assert not torch.equal(harsh, clean)


def test_per_task_verdicts_that_replaced_the_spread_rule():
    """The cases the old "beyond the spread" rule was checked on, judged by the verdict rule of notebook 03."""
    outcome = lambda a, b, higher=True: from_seeds(a, b, better(), higher_is_better=higher)["outcome"]
    assert outcome([0.80, 0.82, 0.81], [0.70, 0.71, 0.72]) == "holds"
    assert outcome([0.80, 0.90, 0.70], [0.75, 0.76, 0.77]) == "inconclusive"  # gap 0.04, spread 0.1
    assert outcome([0.10, 0.11, 0.12], [0.20, 0.21, 0.22], higher=False) == "holds"
    assert outcome([0.10, 0.11, 0.12], [0.20, 0.21, 0.22]) == "contradicted"
    assert outcome([0.9], [0.1]) == "inconclusive"  # one run each: no interval
