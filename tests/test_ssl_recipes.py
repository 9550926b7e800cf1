"""Unit tests of the SSL recipes' pieces (the objectives, targets and augmentations) and of the probes."""

import math

import numpy as np
import pytest
import torch

from kdlib.evaluation import probing
from kdlib.train.pretraining import (
    MaskedPredictionHead,
    compute_mask,
    distort,
    kmeans_targets,
    masked_prediction_loss,
    mix_utterances,
)


def test_masked_prediction_loss_golden_value():
    # one utterance, 3 frames, 2 classes; frame 0 masked, frames 1-2 unmasked, frame 2 ignored (-100)
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]])
    labels = torch.tensor([[0, 0, -100]])
    mask = torch.tensor([[True, False, False]])
    loss, acc = masked_prediction_loss(logits, labels, mask, unmasked_weight=0.5)
    ce_masked = math.log(1 + math.exp(-2.0))  # -log softmax([2, 0])[0]
    ce_unmasked = math.log(1 + math.exp(1.0))  # -log softmax([0, 1])[0]
    assert loss.item() == pytest.approx(ce_masked + 0.5 * ce_unmasked, rel=1e-5)
    assert acc == 1.0
    loss_m, _ = masked_prediction_loss(logits, labels, mask, unmasked_weight=0.0)
    assert loss_m.item() == pytest.approx(ce_masked, rel=1e-5)


def test_prediction_head_logits_are_scaled_cosines():
    head = MaskedPredictionHead(16, 5, dim=8, temperature=0.1)
    logits = head(torch.randn(2, 7, 16))
    assert logits.shape == (2, 7, 5) and logits.abs().max() <= 10 + 1e-4


def test_span_masks_cover_about_the_requested_fraction():
    mask = compute_mask(64, 50, prob=0.35, length=5)
    assert mask.shape == (64, 50) and 0.2 < mask.float().mean() < 0.5


def test_mix_utterances_overlays_another_item_on_a_segment_only():
    torch.manual_seed(0)
    wave = torch.randn(4, 1000)
    assert torch.equal(mix_utterances(wave, 0.0, np.random.default_rng(0)), wave)
    mixed = mix_utterances(wave, 1.0, np.random.default_rng(0))
    changed = mixed != wave
    for i in range(4):
        idx = changed[i].nonzero().flatten()
        assert 0 < len(idx) <= 500 and idx.max() - idx.min() + 1 == len(idx)  # one contiguous segment, at most half


def test_distort_is_seeded_and_lowers_the_snr():
    torch.manual_seed(0)
    t = torch.arange(16000) / 16000
    wave = torch.sin(2 * math.pi * 220 * t).repeat(3, 1).float()
    a = distort(wave, np.random.default_rng(1), snr_db=(0.0, 0.0), p_reverb=0.0)
    b = distort(wave, np.random.default_rng(1), snr_db=(0.0, 0.0), p_reverb=0.0)
    assert torch.equal(a, b) and a.shape == wave.shape
    # at 0 dB SNR the signal explains about half the energy after removing the random gain
    gain = (a * wave).sum(1) / (wave * wave).sum(1)
    residual = a - gain[:, None] * wave
    ratio = residual.pow(2).sum(1) / (gain[:, None] * wave).pow(2).sum(1)
    assert ((ratio > 0.5) & (ratio < 2.0)).all()


def test_kmeans_targets_recover_separated_clusters():
    rng = np.random.default_rng(0)
    feats = {f"u{i}": np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(10, 0.1, (20, 3))]) for i in range(5)}
    labels = kmeans_targets(feats, 2, seed=0)
    for lab in labels.values():
        assert len(set(lab[:20])) == 1 and len(set(lab[20:])) == 1 and lab[0] != lab[20]


def test_linear_probe_separable_and_bad_partition():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    feats = rng.normal(0, 0.1, (60, 4)) + np.eye(3, 4)[labels] * 3
    fit = np.tile([True, False], 30)
    assert probing.linear_probe(feats, labels, fit) == 1.0
    assert probing.linear_probe(rng.normal(size=(60, 4)), labels, fit) < 0.7
    with pytest.raises(ValueError, match="both fit and score"):
        probing.linear_probe(feats, labels, np.ones(60, bool))


def test_probe_split_partitions():
    rows = [{"speaker": s, "accent": a} for s, a in (("b", "x"), ("a", "y"), ("b", "x"), ("a", "y"), ("c", "x"))]
    labels, fit = probing.probe_split(rows, "speaker", "row")
    assert labels.tolist() == [1, 0, 1, 0, 2] and fit.tolist() == [True, True, False, False, True]
    labels, fit = probing.probe_split(rows, "accent", "speaker")
    assert labels.tolist() == [0, 1, 0, 1, 0] and fit.tolist() == [False, True, False, True, True]  # a, c fit
    labels, _ = probing.probe_split(rows, "accent", "row", classes=("y", "x"))
    assert labels.tolist() == [1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match="fit_by"):
        probing.probe_split(rows, "speaker", "clip")


def test_probe_curves_draw_every_teacher_its_twin_and_the_mfcc_line():
    import matplotlib

    matplotlib.use("Agg")
    from kdlib import plots

    report = {
        "teacher": {"speaker": [0.2, 0.5], "keyword": [0.3, 0.6]},
        "random_twin": {"speaker": [0.2, 0.2], "keyword": [0.1, 0.1]},
        "mfcc": {"speaker": [0.7], "keyword": [0.5]},
    }
    axes = plots.probe_curves({"a": report, "b": report})
    assert len(axes) == 2 and len(axes[0].lines) == 5  # 2 teachers x (model, twin) + MFCC
    assert axes[0].get_xlabel() and axes[0].get_ylabel() and "speaker" in axes[0].get_title()
    assert axes[0].lines[-1].get_ydata()[0] == 0.7


def test_random_split_halves_each_speaker_or_the_speakers_by_seed():
    from kdlib.evaluation.probing import random_split

    rows = [{"speaker": f"s{i % 4}", "label": "yes" if i % 2 else "no"} for i in range(24)]
    labels, fit = random_split(rows, "speaker", "row", seed=0)
    for s in range(4):
        assert fit[[i for i in range(24) if i % 4 == s]].sum() == 3  # half of each speaker's 6 rows
    assert labels.tolist() == [i % 4 for i in range(24)]
    assert not np.array_equal(fit, random_split(rows, "speaker", "row", seed=1)[1])
    assert np.array_equal(fit, random_split(rows, "speaker", "row", seed=0)[1])
    _, by_speaker = random_split(rows, "label", "speaker", seed=0)
    fit_speakers = {r["speaker"] for r, f in zip(rows, by_speaker) if f}
    assert len(fit_speakers) == 2 and not fit_speakers & {r["speaker"] for r, f in zip(rows, by_speaker) if not f}


def test_the_probed_layer_is_chosen_without_the_scored_rows():
    """Of three layers, only layer 1 separates the keywords on every speaker; layer 2 does on the scored speakers
    alone (a layer that choosing on the scored rows would pick). The held-out choice picks layer 1 and scores it
    exactly as a plain probe of that layer would."""
    rng = np.random.default_rng(0)
    rows = [{"speaker": f"s{i % 12}", "label": "yes" if (i // 12) % 2 else "no"} for i in range(240)]
    labels, fit = probing.random_split(rows, "label", "speaker", seed=0)
    signal = np.where(labels[:, None] == 1, 1.0, -1.0) * np.ones((1, 4))
    noise = rng.normal(size=(240, 4))
    feats = [noise, 0.8 * signal + noise, np.where(fit[:, None], noise, 3.0 * signal + noise)]
    probe = probing.probe_on_a_held_out_layer(feats, rows, "label", "speaker", seed=0)
    assert probe["layer"] == 1 and len(probe["development"]) == 3
    assert probe["accuracy"] == probing.linear_probe(feats[1], labels, fit)
    assert probing.linear_probe(feats[2], labels, fit) > probe["accuracy"]  # the scored rows would have chosen 2
