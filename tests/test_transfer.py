"""Distilling a real-speech speaker encoder into a synthetic-trained student (kdlib.kd.real_teacher), the real clips it
reads (kdlib.data.unlabelled), and the other attempts kept in experiments/."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from experiments import real_voice_transfer as attempts
from kdlib.data import unlabelled
from kdlib.data.corpus import real
from kdlib.evaluation.verification import trial_eers
from kdlib.kd import real_teacher
from kdlib.models import speaker_model


class _Teacher(nn.Module):
    """A fixed random map of log-energy bands: a stand-in for GE2E."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.proj = nn.Linear(40, 16)

    def forward(self, x):
        bands = x.unfold(1, 400, 400).pow(2).mean(-1).log1p()[:, :40]
        return nn.functional.normalize(self.proj(nn.functional.pad(bands, (0, 40 - bands.shape[1]))), dim=1)


def _loader(n=8, samples=16_000):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, samples, generator=g) * torch.linspace(0.05, 0.5, n)[:, None]
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.arange(n) % 4), batch_size=4)


def _student():
    torch.manual_seed(0)
    return speaker_model("ecapa_tdnn", 4, channels=16, embed_dim=8)


def test_student_learns_to_match_the_teacher_and_keeps_its_own_task():
    student = _student()
    hist = real_teacher.distil_real_teacher(
        student, _Teacher(), _loader(), steps=40, teacher_dim=16, lr=3e-3, progress=False
    )
    assert len(hist["kd"]) == 40
    assert np.mean(hist["kd"][-5:]) < 0.8 * np.mean(hist["kd"][:5])  # measured: 0.99 -> 0.66
    assert np.mean(hist["aam"][-5:]) < np.mean(hist["aam"][:5])
    assert student.embed_dim == 8 and not any("project" in k for k in student.state_dict())  # P is not kept


def test_real_crops_join_the_kd_term_and_runs_repeat():
    waves = [np.sin(np.arange(12_000) / (5 + i)).astype(np.float32) * 0.3 for i in range(3)]
    runs = []
    for _ in range(2):
        student = _student()
        hist = real_teacher.distil_real_teacher(
            student,
            _Teacher(),
            _loader(),
            steps=4,
            teacher_dim=16,
            real_waves=waves,
            real_seconds=0.5,
            progress=False,
            seed=3,
        )
        runs.append((hist["kd"], student.encoder.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, runs[1][1][k]) for k, a in runs[0][1].items())
    crops, labels = real_teacher.RealCrops(waves, 8000)(5)
    assert crops.shape == (5, 8000) and labels is None


def test_unlabelled_real_speech_reads_the_packages(tmp_path, monkeypatch, make_deb):
    def ogg(seconds):
        buf = io.BytesIO()
        sf.write(buf, 0.3 * np.sin(np.arange(int(seconds * 22050)) / 7.0), 22050, format="OGG", subtype="VORBIS")
        return buf.getvalue()

    (tmp_path / "debs").mkdir()
    make_deb(
        tmp_path / "debs" / "kids-a_1_all.deb",
        {"usr/share/a/en/ball.ogg": ogg(0.8), "usr/share/a/en/x.ogg": ogg(0.2), "usr/share/a/en/pic.png": b"png"},
    )
    monkeypatch.setattr(
        unlabelled, "UNLABELLED", {"kids-a": {"prefix": "usr/share/a/", "licence": "GPL-2+", "what": "words"}}
    )
    waves = unlabelled.unlabelled_real_speech(tmp_path / "debs", progress=False)
    assert len(waves) == 1 and abs(len(waves[0]) - 0.8 * 16_000) < 200  # resampled to 16 kHz; 0.2 s dropped
    waves, languages = unlabelled.unlabelled_real_speech(tmp_path / "debs", progress=False, with_languages=True)
    assert languages == ["en"]
    monkeypatch.setattr(real.shutil, "which", lambda _: None)
    monkeypatch.setattr(unlabelled, "UNLABELLED", {"kids-b": {"prefix": "x/", "licence": "-", "what": "-"}})
    with pytest.raises(RuntimeError, match="kids-b"):
        unlabelled.unlabelled_real_speech(tmp_path / "debs", progress=False)


def test_language_voices_keep_languages_with_enough_clips():
    waves = [np.full(10, i, np.float32) for i in range(7)]
    languages = ["fr", "sr", "fr", "sr", "de", "fr", "sr"]
    kept, labels, names = unlabelled.language_voices(waves, languages, min_clips=3)
    assert names == ["fr", "sr"] and labels == [0, 1, 0, 1, 0, 1]
    assert [float(w[0]) for w in kept] == [0, 1, 2, 3, 5, 6]  # "de" (1 clip) dropped


def test_labelled_real_crops_add_a_speaker_term_that_learns():
    waves = [np.sin(np.arange(12_000) / (3 + 4 * (i % 2))).astype(np.float32) * (0.1 + 0.2 * (i % 2)) for i in range(6)]
    labels = [i % 2 for i in range(6)]
    student = _student()
    hist = real_teacher.distil_real_teacher(
        student,
        _Teacher(),
        _loader(),
        steps=30,
        teacher_dim=16,
        lr=3e-3,
        real_waves=waves,
        real_labels=labels,
        real_seconds=0.5,
        progress=False,
    )
    assert len(hist["aam_real"]) == 30
    assert np.mean(hist["aam_real"][-5:]) < np.mean(hist["aam_real"][:5])
    assert not any("real_head" in k for k in student.state_dict())  # the extra head is not shipped
    with pytest.raises(ValueError, match="real_labels: 2 labels for 6 real waveforms"):
        real_teacher.distil_real_teacher(
            _student(),
            _Teacher(),
            _loader(),
            steps=1,
            teacher_dim=16,
            real_waves=waves,
            real_labels=[0, 1],
            progress=False,
        )


def test_a_student_regresses_cached_teacher_embeddings_without_labels():
    g = torch.Generator().manual_seed(1)
    long_x = torch.randn(8, 16_000, generator=g) * torch.linspace(0.05, 0.5, 8)[:, None]
    short_x = torch.randn(8, 8_000, generator=g) * torch.linspace(0.5, 0.05, 8)[:, None]
    teacher = _Teacher()
    banks = {
        "1 s": {"wave": long_x, "target": attempts.teacher_embeddings(teacher, long_x)},
        "0.5 s": {"wave": short_x, "target": attempts.teacher_embeddings(teacher, short_x, batch_size=3)},
    }
    assert torch.allclose(banks["1 s"]["target"], teacher(long_x))  # cached once, the same embeddings
    student = speaker_model("ecapa_tdnn", channels=16, embed_dim=8)  # no head: no labels anywhere
    history = attempts.distil_cached(student, banks, steps=60, batch=4, lr=5e-3, progress=False)
    assert len(history["kd"]) == 60
    assert np.mean(history["kd"][-8:]) < 0.5 * np.mean(history["kd"][:8])
    with pytest.raises(ValueError, match="targets of one width"):
        attempts.distil_cached(
            student, {"a": banks["1 s"], "b": {"wave": short_x, "target": torch.zeros(8, 3)}}, steps=1
        )


def test_telephone_crops_change_the_drawn_share_keep_labels_and_repeat():
    waves = [np.random.default_rng(i).standard_normal(16_000).astype(np.float32) * 0.1 for i in range(20)]
    items = attempts.LabelledWaves(waves, list(range(20)), seconds=1.0)

    def draw(p):
        torch.manual_seed(3)
        return [attempts.TelephoneCrops(items, p)[i] for i in range(20)]

    torch.manual_seed(3)
    plain = [items[i] for i in range(20)]
    half = draw(0.5)
    assert [y for _, y in half] == list(range(20))
    changed = [not torch.equal(a, b) for (a, _), (b, _) in zip(half, plain)]
    assert 3 < sum(changed) < 17  # about half (the clips are 1 s long, so their crops are the same either way)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(half, draw(0.5)))  # seeded by torch
    assert all(x.shape == (16_000,) and x.dtype == torch.float32 for x, _ in draw(1.0))
    with pytest.raises(ValueError, match="probability"):
        attempts.TelephoneCrops(items, 2.0)


def test_trial_eers_score_all_trials_and_the_kept_ones():
    """Four clips: a and b of one speaker, c and d of others; d is an impostor that scores above a's target on
    all trials (EER 0.5 with one target, one of two impostors above it), and the kept trials leave it out."""
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.9, 0.436]])
    trials = [(1, "a", "b"), (0, "a", "c"), (0, "a", "d")]
    eers = trial_eers(emb, ["a", "b", "c", "d"], trials, np.array([True, True, False]))
    assert eers["eer_real"] == pytest.approx(0.5) and eers["eer_real_same_language"] == pytest.approx(0.0)
