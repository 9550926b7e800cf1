import pytest
import torch

from kdlib.data.datasets import BucketBatches, multi_duration_crops


def test_multi_duration_crops_are_fixed_by_the_seed(smoke_corpus):
    rows = smoke_corpus.select("train", "sentence")[:6]
    a = multi_duration_crops(smoke_corpus, rows, (0.5, 1.0), seed=3)
    b = multi_duration_crops(smoke_corpus, rows, (0.5, 1.0), seed=3)
    c = multi_duration_crops(smoke_corpus, rows, (0.5, 1.0), seed=4)
    assert a[0.5]["wave"].shape == (6, 8000) and a[1.0]["wave"].shape == (6, 16000)
    assert torch.equal(a[1.0]["wave"], b[1.0]["wave"]) and not torch.equal(a[1.0]["wave"], c[1.0]["wave"])
    speakers = sorted({r["speaker"] for r in rows})
    assert a[0.5]["label"].tolist() == [speakers.index(r["speaker"]) for r in rows]
    with pytest.raises(ValueError, match="missing from `speakers`"):
        multi_duration_crops(smoke_corpus, rows, (0.5,), speakers=["nobody"])


def test_bucket_batches_cover_every_item_once_per_pass_from_one_bucket_each():
    buckets = {
        1: {"x": torch.arange(10).float().unsqueeze(1).repeat(1, 3), "y": torch.arange(10)},
        2: {"x": torch.arange(100, 108).float().unsqueeze(1).repeat(1, 5), "y": torch.arange(100, 108)},
    }
    batches = BucketBatches(buckets, batch_size=4, seed=0)
    assert len(batches) == 2 + 2  # full batches only
    first = list(batches)
    seen = torch.cat([b["y"] for b in first])
    assert len(seen) == 16 and len(set(seen.tolist())) == 16
    for b in first:
        assert b["x"].shape[1] in (3, 5) and torch.equal(b["x"][:, 0].long(), b["y"])
    second = list(batches)
    assert [b["y"].tolist() for b in first] != [b["y"].tolist() for b in second]  # reshuffled each pass
    again = BucketBatches(buckets, batch_size=4, seed=0)
    assert [b["y"].tolist() for b in again] == [b["y"].tolist() for b in first]  # deterministic


def test_bucket_batches_reject_ragged_fields_and_tiny_buckets():
    with pytest.raises(ValueError, match="equal lengths"):
        BucketBatches({1: {"x": torch.zeros(4, 2), "y": torch.zeros(3)}}, batch_size=2)
    with pytest.raises(ValueError, match="full batch"):
        BucketBatches({1: {"x": torch.zeros(3, 2)}}, batch_size=4)


def test_map_clips_keeps_the_order_and_returns_cpu_outputs(smoke_corpus):
    from kdlib.data.datasets import AudioCache, FrameCrops, map_clips

    rows = smoke_corpus.select("test", "sentence")[:3]
    paths = [r["path"] for r in rows]
    lengths = map_clips(lambda w: [torch.tensor(w.shape[1]), w[:, :2]], smoke_corpus, paths, progress=False)
    audio = AudioCache(smoke_corpus)
    assert [int(n) for n, _ in lengths] == [len(audio(p)) for p in paths]
    assert all(first.shape == (1, 2) and first.device.type == "cpu" for _, first in lengths)
    crops = FrameCrops(smoke_corpus, rows, seconds=0.5)
    item = crops[0]
    assert crops.frames == 24 and item["wave"].shape == (crops.samples,) == ((24 - 1) * 320 + 400,)
