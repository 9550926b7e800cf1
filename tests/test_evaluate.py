import numpy as np
import pytest
import torch

from kdlib.evaluation import verification


def test_all_pairs_scores_golden():
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    scores, labels = verification.all_pairs_scores(emb, ["a", "a", "b"])
    assert scores.tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert labels.tolist() == [1, 0, 0]


def test_batched_equals_one_call_and_follows_the_device_rule():
    x = torch.randn(10, 3)
    assert torch.equal(verification.batched(lambda b: 2 * b, x, batch_size=3, device="cpu"), 2 * x)
    layer = torch.nn.Linear(3, 2)
    with pytest.raises(NotImplementedError):  # meta tensors hold no data to copy back to the CPU
        verification.batched(layer, x, device="meta")
    assert layer.weight.device.type == "meta"  # the module went where its inputs went


def test_whole_utterances_in_batches_equal_one_at_a_time(smoke_corpus):
    """Batches of clips with equal frame counts give the embeddings of one clip at a time (nothing padded)."""
    from kdlib.data.datasets import AudioCache
    from kdlib.models import speaker_model

    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=32).eval()
    rows = smoke_corpus.select("test", "keyword")[:6] + smoke_corpus.select("test", "sentence")[:4]
    paths = [r["path"] for r in rows] + [rows[0]["path"]]  # a repeated path keeps its place
    batched = verification.embed(model, smoke_corpus, paths, progress=False, device="cpu")
    audio = AudioCache(smoke_corpus)
    with torch.no_grad():
        single = torch.cat([model(torch.from_numpy(audio(p)).unsqueeze(0)) for p in paths])
    assert batched.shape == (11, 192) and torch.allclose(batched, single, atol=1e-5)


def test_fixed_crops_equal_the_model_on_centred_crops(smoke_corpus):
    from kdlib.data.datasets import centred_crops
    from kdlib.models import speaker_model

    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=32).eval()
    paths = [r["path"] for r in smoke_corpus.select("test", "sentence")[:5]]
    crops = centred_crops(smoke_corpus, paths, 1.0)
    assert crops.shape == (5, 16000)
    with torch.no_grad():
        direct = model(crops)
    assert torch.allclose(verification.embed(model, smoke_corpus, paths, seconds=1.0, batch_size=2), direct, atol=1e-5)


def test_sv_on_the_smoke_trials_and_on_all_pairs(smoke_corpus):
    from kdlib.data.features import MFCCStats

    out = verification.sv(MFCCStats(), smoke_corpus, trials="trials", progress=False)
    assert 0.0 < out["eer"] < 0.6 and len(out["scores"]) == out["n_trials"] == 300 and out["labels"].sum() == 150
    assert np.isfinite(out["min_dcf"]) and len(out["embeddings"]) == len(out["paths"])
    speaker_of = {r["path"]: r["speaker"] for r in smoke_corpus.manifest}
    first = [a for _, a, _ in smoke_corpus.trials("trials")]
    assert out["speakers"].tolist() == [speaker_of[a] for a in first]  # every trial has its speaker
    rows = [r for rows in smoke_corpus.by_speaker("test", "sentence").values() for r in rows[:3]]
    pairs = verification.sv(MFCCStats(), smoke_corpus, rows=rows, seconds=1.0, progress=False)
    assert pairs["n_trials"] == len(rows) * (len(rows) - 1) // 2 and pairs["embeddings"].shape == (len(rows), 60)
    assert pairs["speakers"][0] == rows[0]["speaker"] and pairs["speakers"][-1] == rows[-2]["speaker"]
    assert set(pairs["speakers"]) == {r["speaker"] for r in rows}
    with pytest.raises(ValueError, match="either trials"):
        verification.sv(MFCCStats(), smoke_corpus)
    with pytest.raises(ValueError, match="either trials"):
        verification.sv(MFCCStats(), smoke_corpus, trials="trials", rows=rows)
    with pytest.raises(KeyError, match="no trial list 'nope'"):
        verification.sv(MFCCStats(), smoke_corpus, trials="nope")


def test_mfcc_baseline_is_fitted_on_training_sentences(smoke_corpus):
    from kdlib.data.features import mfcc_baseline

    model = mfcc_baseline(smoke_corpus, max_utterances=10)
    assert not torch.equal(model.mean, torch.zeros(60)) and (model.std > 0).all()


def test_mfcc_stats_keep_their_unbiased_std():
    from kdlib.data.features import mfcc_stats

    torch.manual_seed(0)
    wave = torch.randn(1, 8000)
    feats = mfcc_stats(wave)
    assert feats.shape == (1, 60)
    import torchaudio

    mfcc = torchaudio.transforms.MFCC(
        16000, 30, melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 40}
    )(wave)
    assert torch.allclose(feats, torch.cat([mfcc.mean(-1), mfcc.std(-1)], -1), atol=1e-5)


def test_mfcc_frames_cmvn_only_when_asked():
    from kdlib.data.features import mfcc_frames
    from kdlib.models import stats_pool

    torch.manual_seed(0)
    wave = torch.randn(1, 16000) * torch.linspace(0.1, 1.0, 16000)
    normed, raw = mfcc_frames(wave)[0], mfcc_frames(wave, cmvn=False)[0]
    assert normed.shape == raw.shape == (49, 39)  # (16000 - 400) // 320 + 1 frames, the SSL frame grid
    pooled = stats_pool(normed, dim=0, floor=0.0)
    # nothing left for a probe (std: biased vs unbiased)
    assert abs(pooled[:39]).max() < 1e-4 and abs(pooled[39:] - 1).max() < 0.02
    assert abs(stats_pool(raw, dim=0, floor=0.0)[:13]).max() > 1.0  # raw statistics keep the spectral envelope


def test_precomputed_inputs_give_the_embeddings_of_the_audio(smoke_corpus):
    """A shared front end's output computed once per clip and passed as ``inputs`` gives the same embeddings
    (clips of equal shape run together) as the full model on the audio."""
    from kdlib.data.datasets import AudioCache
    from kdlib.models import SpeakerModel, speaker_model

    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=32).eval()
    rows = smoke_corpus.select("test", "keyword")[:5] + smoke_corpus.select("test", "sentence")[:3]
    paths = [r["path"] for r in rows]
    audio = AudioCache(smoke_corpus)
    with torch.no_grad():
        inputs = {p: model.frontend(torch.from_numpy(audio(p)).unsqueeze(0)) for p in paths}
    on_features = SpeakerModel(model.encoder)  # no front end: reads the features
    reference = verification.embed(model, smoke_corpus, paths, progress=False, device="cpu")
    cached = verification.embed(on_features, smoke_corpus, paths, progress=False, device="cpu", inputs=inputs)
    assert torch.allclose(cached, reference, atol=1e-5)
    with pytest.raises(KeyError, match="no precomputed input"):
        verification.embed(on_features, smoke_corpus, paths, progress=False, inputs={paths[0]: inputs[paths[0]]})
    with pytest.raises(ValueError, match="whole clips"):
        verification.embed(on_features, smoke_corpus, paths, seconds=1.0, progress=False, inputs=inputs)


def test_trial_indices_golden_value_and_missing_clips():
    trials = [(1, "b.wav", "a.wav"), (0, "c.wav", "b.wav")]
    out = verification.trial_indices(trials, ["a.wav", "b.wav", "c.wav"])
    assert out.tolist() == [[1, 1, 0], [0, 2, 1]] and out.dtype == np.int64
    assert verification.trial_indices([], ["a.wav"]).shape == (0, 3)
    with pytest.raises(ValueError, match="keyword trials names 1 clips .* e.g. c.wav"):
        verification.trial_indices(trials, ["a.wav", "b.wav"], "keyword trials")


def test_score_trials_golden_value():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    perfect = np.array([[1, 0, 1], [1, 2, 3], [0, 0, 2], [0, 1, 3]])
    assert verification.score_trials(emb, perfect)["eer"] == 0.0
    swapped = perfect.copy()
    swapped[:, 0] = 1 - swapped[:, 0]
    out = verification.score_trials(emb, swapped)
    assert out["eer"] == 1.0 and set(out) == {"eer", "min_dcf"}
