import numpy as np
import pytest
import torch

from kdlib import evaluate


def test_all_pairs_scores_golden():
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    scores, labels = evaluate.all_pairs_scores(emb, ["a", "a", "b"])
    assert scores.tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert labels.tolist() == [1, 0, 0]


def test_embedding_paths_agree(smoke_corpus):
    """Batched fixed-length crops equal one-at-a-time embeddings of the same crops."""
    from kdlib.models import ECAPA_TDNN

    torch.manual_seed(0)
    model = ECAPA_TDNN(32).eval()
    paths = [r["path"] for r in smoke_corpus.select("test", "keyword")[:5]]  # 1-second clips
    batched = evaluate.embed_fixed(model, smoke_corpus, paths, seconds=1.0, batch_size=2)
    whole = evaluate.embed_utterances(model, smoke_corpus, paths, progress=False)
    for i, p in enumerate(paths):
        assert torch.allclose(batched[i], whole[p], atol=1e-4)


def test_evaluate_sv_on_the_smoke_trials(smoke_corpus):
    from kdlib.features import MFCCStats

    out = evaluate.evaluate_sv(MFCCStats(), smoke_corpus, "trials", progress=False)
    assert 0.0 < out["eer"] < 0.6 and len(out["scores"]) == 300 and out["labels"].sum() == 150
    assert np.isfinite(out["min_dcf"])


def test_mfcc_frames_cmvn_only_when_asked():
    import torch

    from kdlib.probing import mean_std, mfcc_frames

    torch.manual_seed(0)
    wave = torch.randn(1, 16000) * torch.linspace(0.1, 1.0, 16000)
    normed, raw = mfcc_frames(wave)[0], mfcc_frames(wave, cmvn=False)[0]
    assert normed.shape == raw.shape == (49, 39)  # (16000 - 400) // 320 + 1 frames, the SSL frame grid
    pooled = mean_std(normed)
    assert abs(pooled[:39]).max() < 1e-4 and abs(pooled[39:] - 1).max() < 0.02  # nothing left for a probe (std: biased vs unbiased)
    assert abs(mean_std(raw)[:13]).max() > 1.0  # raw statistics keep the spectral envelope
