"""Every zoo recipe runs a smoke build (a few steps on the smoke corpus) into a temporary zoo."""

import os

import pytest

from kdlib import zoo
from kdlib.zoo.__main__ import main as zoo_main


@pytest.fixture(scope="module")
def smoke_zoo(tmp_path_factory, smoke_corpus):
    out = tmp_path_factory.mktemp("zoo")
    before = os.environ.get("KDLIB_ZOO")
    for name in ("ecapa", "hubert-tiny", "wav2vec2-tiny", "wavlm-tiny", "hubert-tiny-robust"):
        assert zoo_main(["build", name, "--smoke", "--corpus", "smoke", "--out", str(out)]) == 0
    assert os.environ.get("KDLIB_ZOO") == before  # the build's --out does not leak into this process
    return out


def test_smoke_builds_register_and_load(smoke_zoo, monkeypatch):
    monkeypatch.setenv("KDLIB_ZOO", str(smoke_zoo))
    entries = zoo.manifest()
    assert set(entries) == {"ecapa", "hubert-tiny", "wav2vec2-tiny", "wavlm-tiny", "hubert-tiny-robust"}
    for name, entry in entries.items():
        model = zoo.load(name)
        assert sum(p.numel() for p in model.parameters()) == entry["params"]
        assert {"recipe", "corpus", "build", "metrics", "files"} <= set(entry)
        assert entry["corpus"]["name"] == "smoke"
    ssl_entry = entries["hubert-tiny"]["metrics"]
    assert {"teacher", "random_twin", "mfcc", "best", "beats_random_twin", "matches_mfcc"} <= set(ssl_entry)
    assert len(ssl_entry["teacher"]["speaker"]) == 5  # CNN output + 4 layers
    assert 0 <= entries["ecapa"]["metrics"]["trials"]["eer"] <= 1


def test_corrupt_file_is_named(smoke_zoo, monkeypatch, tmp_path):
    import shutil

    copy = tmp_path / "zoo"
    shutil.copytree(smoke_zoo, copy)
    monkeypatch.setenv("KDLIB_ZOO", str(copy))
    with open(copy / "wavlm-tiny" / "model.safetensors", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ValueError, match=r"wavlm-tiny/model.safetensors: sha256 differs"):
        zoo.load("wavlm-tiny")
    with pytest.raises(FileNotFoundError, match="python -m kdlib.zoo build nope"):
        zoo.verify("nope")


def test_shipped_zoo_matches_its_manifest(monkeypatch):
    """Every teacher that data/zoo ships verifies against the manifest, within the 60 MB budget."""
    monkeypatch.delenv("KDLIB_ZOO", raising=False)
    shipped = zoo.manifest()
    assert {"ecapa", "resnet34"} <= set(shipped)
    total = sum(p.stat().st_size for name in shipped for p in zoo.verify(name).iterdir())
    assert total <= 60e6
