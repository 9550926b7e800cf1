import collections
import dataclasses
import json

import pytest

from kdlib.data import corpus
from kdlib.data.corpus import CorpusConfig
from kdlib.data.sentences import KEYWORDS

TINY = CorpusConfig(
    name="tiny",
    n_train_speakers=3,
    n_test_speakers=2,
    n_other_speakers=2,
    sentences_per_speaker=3,
    keyword_repeats=1,
    unknown_per_speaker=1,
    silence_per_speaker=1,
    n_trials=6,
    n_keyword_trials=6,
    n_other_trials=4,
)


def _build(tmp_path, monkeypatch, sub="a", cfg=TINY):
    monkeypatch.setenv("KDLIB_DATA", str(tmp_path / sub))
    return corpus.build(cfg, progress=False)


def test_same_config_gives_bit_identical_corpus(tmp_path, monkeypatch):
    a = _build(tmp_path, monkeypatch, "a")
    b = _build(tmp_path, monkeypatch, "b")
    info_a, info_b = (json.loads((r / "corpus.json").read_text()) for r in (a, b))
    assert info_a["content_hash"] == info_b["content_hash"]
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    files = sorted(p.relative_to(a) for p in (a / "audio").rglob("*.flac"))
    assert len(files) == info_a["counts"]["clips"] > 0
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    # another seed gives other audio
    c = _build(tmp_path, monkeypatch, "c", dataclasses.replace(TINY, seed=1))
    assert json.loads((c / "corpus.json").read_text())["content_hash"] != info_a["content_hash"]


def test_manifest_trials_and_splits(tmp_path, monkeypatch):
    root = _build(tmp_path, monkeypatch)
    c = corpus.load("tiny")
    assert c.root == root
    speakers = {s["speaker"]: s["split"] for s in c.speakers}
    for row in c.manifest:
        assert (root / row["path"]).exists()
        assert row["split"] == speakers[row["speaker"]]
        assert {"path", "speaker", "split", "kind", "text", "label", "duration", "language", "sha256"} <= set(row)
    assert {r["language"] for r in c.select("other")} == {"es"}
    assert {r["split"] for r in c.manifest} == {"train", "test", "other"}
    for which, split in (("trials", "test"), ("trials_keywords", "test"), ("trials_other", "other")):
        trials = c.trials(which)
        spk = {r["path"]: r["speaker"] for r in c.manifest}
        assert sum(t[0] for t in trials) == len(trials) // 2
        for label, p1, p2 in trials:
            assert label == int(spk[p1] == spk[p2])
            assert speakers[spk[p1]] == speakers[spk[p2]] == split
    assert corpus.verify("tiny") == []


def test_second_build_leaves_a_valid_corpus_untouched(tmp_path, monkeypatch, capsys):
    root = _build(tmp_path, monkeypatch)
    stamp = (root / "corpus.json").stat().st_mtime_ns
    assert _build(tmp_path, monkeypatch) == root
    assert (root / "corpus.json").stat().st_mtime_ns == stamp
    assert "already built" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="another config"):
        _build(tmp_path, monkeypatch, cfg=dataclasses.replace(TINY, seed=5))


def test_interrupted_build_never_looks_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA", str(tmp_path / "a"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "_write_trials", crash)
    with pytest.raises(KeyboardInterrupt):
        corpus.build(TINY, progress=False)
    with pytest.raises(FileNotFoundError, match="python -m kdlib.data.corpus build --config tiny"):
        corpus.load("tiny")
    assert list((tmp_path / "a" / "corpus").glob(".tiny-v1.partial-*"))  # the leftover is hidden
    monkeypatch.undo()
    root = _build(tmp_path, monkeypatch)
    assert not list(root.parent.glob(".tiny-v1.partial-*"))  # and cleaned by the next build
    assert corpus.verify("tiny") == []


def test_verify_names_a_corrupted_clip(tmp_path, monkeypatch):
    root = _build(tmp_path, monkeypatch)
    victim = corpus.load("tiny").manifest[0]["path"]
    (root / victim).write_bytes(b"garbage")
    assert corpus.verify("tiny") == [victim]


def test_missing_corpus_names_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m kdlib.data.corpus build --config default"):
        corpus.load("default")


def test_default_config_meets_the_required_counts():
    cfg = corpus.PRESETS["default"]
    speakers = corpus.make_speakers(cfg)
    splits = collections.Counter(s["split"] for s in speakers)
    assert splits["train"] >= 200 and splits["test"] >= 40 and splits["other"] >= 20
    assert len({s["speaker"] for s in speakers}) == len(speakers)
    assert {s["language"] for s in speakers if s["split"] == "other"} == {"es"}
    plan = collections.Counter((u["kind"], u["label"]) for u in corpus._utterance_plan(cfg, speakers[0]))
    assert plan[("sentence", None)] >= 20
    assert all(plan[("keyword", kw)] >= 4 for kw in KEYWORDS)
    assert plan[("unknown", "_unknown_")] > 0 and plan[("silence", "_silence_")] > 0
    assert cfg.n_trials >= 20_000 and cfg.augment
    # voices differ: no two speakers share every voice parameter
    keys = {(s["accent"], s["variant"], s["pitch"], s["range"], s["rate"], s["alpha"]) for s in speakers}
    assert len(keys) == len(speakers)


def test_impossible_trial_counts_are_rejected():
    with pytest.raises(ValueError, match="target pairs"):
        CorpusConfig(n_test_speakers=2, sentences_per_speaker=3, n_trials=100)


def test_concurrent_builds_take_turns(tmp_path, monkeypatch):
    """Two builds at once used to corrupt the corpus: the second removed the first one's half-written folder."""
    import threading

    monkeypatch.setenv("KDLIB_DATA", str(tmp_path))
    roots, errors = [], []

    def build():
        try:
            roots.append(corpus.build(TINY, workers=1, progress=False))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(roots) == 2 and roots[0] == roots[1]
    assert corpus.verify("tiny") == [] and not list(roots[0].parent.glob(".tiny-v1.partial-*"))
