"""The real-speech evaluation set's builder on tiny fixture packages, and the GE2E encoder's inference."""

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from kdlib.data.corpus import real
from kdlib.evaluation import verification
from kdlib.models import ge2e

VOICES = (
    real.Voice("pkg-a", "usr/share/asterisk/sounds/en_US_f_Ann", "ann", "Ann", "en-US", "CC-BY-3.0"),
    real.Voice("pkg-b", "usr/share/asterisk/sounds/es_MX_f_Ann", "ann", "Ann", "es-MX", "CC-BY-3.0"),
    real.Voice("pkg-c", "usr/share/asterisk/sounds/fr", "bob", "Bob", "fr-FR", "GPL-2", codec="gsm"),
)


def _wav(seconds, f0, codec):
    t = np.arange(int(seconds * 8000)) / 8000
    x = (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    buf = io.BytesIO()
    if codec == "gsm":
        sf.write(buf, x, 8000, format="RAW", subtype="GSM610")
    else:
        sf.write(buf, x, 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _fixture_debs(make_deb, folder, seconds=(2.5, 3.0, 4.0, 1.0, 12.0)):
    folder.mkdir()
    for k, voice in enumerate(VOICES):
        files = {f"usr/share/doc/{voice.package}/copyright": f"Voice: {voice.credit}\n".encode()}
        for i, s in enumerate(seconds):
            files[f"{voice.folder}/p{i}.{voice.codec}"] = _wav(s, 150 + 40 * k + 10 * i, voice.codec)
        files[f"{voice.folder}/readme.txt"] = b"not audio"
        make_deb(folder / f"{voice.package}_1.0-1_all.deb", files)
    return folder


def test_builder_groups_speakers_keeps_licences_and_writes_voxceleb_trials(tmp_path, make_deb):
    debs = _fixture_debs(make_deb, tmp_path / "debs")
    root = real.build(debs, per_speaker=3, root=tmp_path / "set", voices=VOICES, progress=False)
    info = json.loads((root / "corpus.json").read_text())
    assert (info["speakers"], info["clips"]) == (2, 6)
    src = real.load(root)
    rows = src.manifest
    # Ann's two packages are one speaker; 1 s and 12 s prompts are out of the 2-10 s range
    assert sorted({r["speaker"] for r in rows}) == ["ann", "bob"]
    assert all(2.0 <= r["duration"] <= 10.0 for r in rows)
    assert {r["package"] for r in rows if r["speaker"] == "bob"} == {"pkg-c"}
    trials = src.trials("trials")
    assert len(trials) == 15 and sum(t for t, _, _ in trials) == 2 * 3  # C(6,2) pairs, 3 + 3 same-speaker
    assert all(t == (a.split("/")[1] == b.split("/")[1]) for t, a, b in trials)
    sources = json.loads((root / "sources.json").read_text())
    assert [s["licence"] for s in sources] == ["CC-BY-3.0", "CC-BY-3.0", "GPL-2"]
    assert all(s["version"] == "1.0-1" and len(s["sha256"]) == 64 for s in sources)
    assert (root / "licences" / "pkg-c.copyright").read_text() == "Voice: Bob\n"
    x, sr = sf.read(root / rows[0]["path"])
    assert sr == 16_000 and x.ndim == 1
    # the set is a Source: kdlib's SV evaluation runs on it unchanged
    res = verification.sv(lambda w: torch.stack([w.mean(1), w.std(1)], 1), src, trials="trials", progress=False)
    assert res["n_trials"] == 15 and 0.0 <= res["eer"] <= 1.0
    # idempotent, and the same seed picks the same prompts
    assert real.build(debs, per_speaker=3, root=root, voices=VOICES, progress=False) == root
    again = real.build(debs, per_speaker=3, root=tmp_path / "again", voices=VOICES, progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (root / "manifest.jsonl").read_bytes()


def test_builder_refuses_too_few_prompts_and_bad_packages(tmp_path, make_deb):
    debs = _fixture_debs(make_deb, tmp_path / "debs")
    with pytest.raises(ValueError, match="speaker bob: only 3 prompts in range, 4 asked for"):
        real.build(debs, per_speaker=4, root=tmp_path / "set", voices=VOICES, progress=False)
    assert not (tmp_path / "set").exists()  # nothing half-written under the final name
    (debs / "pkg-a_1.0-1_all.deb").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="pkg-a_1.0-1_all.deb: not a Debian package"):
        real.build(debs, per_speaker=2, root=tmp_path / "set", voices=VOICES, progress=False)
    with pytest.raises(FileNotFoundError, match="python -m kdlib.data.corpus real build"):
        real.load(tmp_path / "nowhere")


def test_fetch_names_missing_packages_without_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(real.shutil, "which", lambda _: None)
    with pytest.raises(RuntimeError, match="download these Debian packages by hand.*pkg-z"):
        real.fetch(["pkg-z"], tmp_path)


def test_ge2e_partials_follow_the_published_slicing():
    torch.manual_seed(0)
    model = ge2e.GE2EEncoder().eval()
    seen = []
    original = model.lstm.forward
    model.lstm.forward = lambda x: (seen.append(x.shape[0]), original(x))[1]
    with torch.no_grad():
        for seconds in (1.0, 1.6, 2.0, 3.0, 5.0):
            emb = model(torch.randn(2, int(seconds * 16_000)) * 0.1)
            assert emb.shape == (2, 256)
            assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # frames = samples/160 + 1; partials every 77 frames while 160 fit, the last one kept if 75 % full
    assert seen == [2 * n for n in (1, 1, 2, 3, 5)]  # two clips per batch


def test_ge2e_loads_a_checkpoint_and_names_a_bad_one(tmp_path):
    torch.manual_seed(1)
    ref = ge2e.GE2EEncoder()
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("mel.")}
    torch.save({"model_state": {**state, "similarity_weight": torch.ones(1)}}, tmp_path / "ok.pt")
    model = ge2e.load_ge2e(tmp_path / "ok.pt")
    x = torch.randn(1, 32_000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(x), ref.eval()(x))
    # a quiet clip is raised to -30 dBFS (the features are mel power, so the level matters)
    at_minus_30 = x / x.pow(2).mean().sqrt() * 10 ** (-30 / 20)
    with torch.no_grad():
        assert torch.allclose(model(x * 0.01), model(at_minus_30), atol=1e-5)
        assert (model(x) - model(at_minus_30)).abs().max() > 1e-4  # x is louder: left as it is
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a Resemblyzer checkpoint"):
        ge2e.load_ge2e(tmp_path / "bad.pt")
