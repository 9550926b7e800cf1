"""Phoneme labels from eSpeak NG, the phone error rate, and the CTC downstream of the phoneme-recognition task."""

from types import SimpleNamespace

import pytest
import torch

from kdlib.data import phonemes
from kdlib.evaluation import metrics
from kdlib.evaluation import phoneme_recognition as pr


def test_the_synthesizer_gives_the_phonemes_it_speaks_in_each_accent():
    assert phonemes.phonemes("Yes.", "en-us") == ["j", "ɛ", "s"]
    assert phonemes.phonemes("Seven, no.", "en-us") == ["s", "ɛ", "v", "ə", "n", "n", "oʊ"]  # clauses joined
    # the accent decides the pronunciation: British English drops the r of "car", Spanish has its own vowels
    assert phonemes.phonemes("car", "en-us") == ["k", "ɑːɹ"]
    assert phonemes.phonemes("car", "en-gb-x-rp") == ["k", "ɑː"]
    assert phonemes.phonemes("no", "es-419") == ["n", "o"]
    assert not any(
        mark in p for p in phonemes.phonemes("The teacher carried it.", "en-us") for mark in phonemes.STRESS_MARKS
    )
    with pytest.raises(ValueError, match="no voice"):
        phonemes.phonemes("yes", "xx-nowhere")
    with pytest.raises(ValueError, match="no text"):
        phonemes.phonemes("  ", "en-us")


def test_clips_are_transcribed_by_their_text_and_accent_and_silence_is_refused():
    rows = [
        {"text": "yes", "accent": "en-us", "path": "a.flac"},
        {"text": "yes", "accent": "en-gb-x-rp"},
        {"text": "yes", "accent": "en-us"},
    ]
    out = phonemes.clip_phonemes(rows)
    assert out[0] == out[2] == ["j", "ɛ", "s"] and len(out) == 3
    with pytest.raises(ValueError, match="silence_003.flac.*text and accent.*'silence'"):
        phonemes.clip_phonemes([{"text": None, "accent": "en-us", "kind": "silence", "path": "silence_003.flac"}])


def test_the_phone_set_puts_the_blank_first_and_round_trips():
    phone_set = phonemes.PhoneSet.of([["j", "ɛ", "s"], ["n", "oʊ"]])
    assert len(phone_set) == 6 and phone_set.phones == ["j", "n", "oʊ", "s", "ɛ"]
    ids = phone_set.encode(["j", "ɛ", "s"])
    assert ids.tolist() == [1, 5, 4] and phone_set.decode(ids.tolist() + [0]) == ["j", "ɛ", "s"]
    with pytest.raises(KeyError, match="outside the inventory.*'θ'"):
        phone_set.encode(["θ", "j"])
    assert phone_set.encode(["θ", "j"], unknown="drop").tolist() == [1]
    with pytest.raises(ValueError, match="at least one"):
        phonemes.PhoneSet([])


def test_edit_distance_and_phone_error_rate_golden_values():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance([], [1, 2]) == 2 and metrics.edit_distance([1, 2], []) == 2
    assert metrics.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    # 1 substitution in 4 phones and 1 deletion + 1 insertion in 2: 3 errors over 6 reference phones
    assert metrics.phone_error_rate([[1, 2, 3, 4], [5, 6]], [[1, 2, 9, 4], [6, 7]]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        metrics.phone_error_rate([[1], [2]], [[1]])
    with pytest.raises(ValueError, match="no phones"):
        metrics.phone_error_rate([[]], [[]])


def test_greedy_decoding_merges_repeats_and_drops_blanks_within_the_valid_frames():
    path = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 0, 3, 3]])
    log_probs = torch.nn.functional.one_hot(path, 4).float().log()
    assert pr.greedy_decode(log_probs, torch.tensor([10])) == [[1, 1, 2, 3]]
    assert pr.greedy_decode(log_probs, torch.tensor([7])) == [[1, 1, 2]]  # padding frames are ignored


def _spoken(n_clips: int, n_phones: int, seed: int):
    """Synthetic clips: each phone a fixed random vector (the same for every seed) held 2-4 frames with noise,
    in layer 1 only; layer 0 is noise; no phone follows itself (nothing would mark the boundary). Returns each
    clip's frames (frames, 2, 8) and its phone sequence (1-based)."""
    prototypes = torch.randn(n_phones + 1, 8, generator=torch.Generator().manual_seed(99)) * 2
    g = torch.Generator().manual_seed(seed)
    clips, targets = [], []
    for _ in range(n_clips):
        steps = torch.randint(1, n_phones, (int(torch.randint(3, 7, (1,), generator=g)),), generator=g)
        seq = (torch.cumsum(steps, 0) % n_phones) + 1  # each phone differs from the one before
        held = torch.cat([prototypes[p].repeat(int(torch.randint(2, 5, (1,), generator=g)), 1) for p in seq])
        clips.append(
            torch.stack(
                [torch.randn(len(held), 8, generator=g), held + 0.3 * torch.randn(len(held), 8, generator=g)], dim=1
            ).half()
        )
        targets.append(seq)
    return clips, targets


def test_the_ctc_head_learns_to_read_phones_from_the_layer_that_holds_them():
    clips, targets = _spoken(64, 5, seed=0)
    state = torch.random.get_rng_state()
    model = pr.fit_ctc(clips, targets, n_classes=6, steps=60, batch_size=16, lr=5e-2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    test_clips, test_targets = _spoken(32, 5, seed=7)  # clips not fitted
    assert pr.score(model, clips, targets) < 0.1
    assert pr.score(model, test_clips, test_targets) < 0.1
    assert model.mix.layer_weights()[1] > 0.6  # it found the layer with the phones
    untrained = pr.FrameDownstream(2, 8, 6).standardise_with(clips)
    assert pr.score(untrained, clips, targets) > 0.5
    again = pr.fit_ctc(clips, targets, n_classes=6, steps=60, batch_size=16, lr=5e-2)
    assert torch.equal(again.linear.weight, model.linear.weight)  # same seed, same head


def test_the_training_loss_is_ctc_over_every_clip_and_tries_keep_the_head_that_explains_them_best():
    clips, targets = _spoken(40, 5, seed=0)
    model = pr.fit_ctc(clips, targets, n_classes=6, steps=20, batch_size=16, lr=5e-2)
    x, n = pr.pad(clips)
    assert pr.ctc_loss(model, clips, targets) == pytest.approx(float(pr.ctc_objective(model(x), n, targets)), rel=1e-5)
    many, many_targets = _spoken(150, 5, seed=1)  # more than one batch of 64: weighted by clips, not by batches
    x, n = pr.pad(many)
    whole = float(pr.ctc_objective(model(x), n, many_targets))
    assert pr.ctc_loss(model, many, many_targets) == pytest.approx(whole, rel=1e-4)

    task = SimpleNamespace(targets={"train": targets, "test": targets, "test_harsh": targets}, phone_set=range(6))
    frames = {"train": clips, "test": clips, "test_harsh": clips}
    one = pr.run_phoneme_task(frames, task, steps=5, lr=5e-2, seed=0)
    assert "head" not in one  # one try: the head of seed 0, as before
    assert one["clean"]["per"] == pr.score(pr.fit_ctc(clips, targets, 6, steps=5, lr=5e-2, seed=0), clips, targets)
    best = pr.run_phoneme_task(frames, task, steps=5, lr=5e-2, seed=0, tries=3)
    losses = best["head"]["train_loss"]
    assert sorted(losses) == [0, 1, 2] and best["head"]["seed"] == min(losses, key=losses.get)
    kept = pr.fit_ctc(clips, targets, 6, steps=5, lr=5e-2, seed=best["head"]["seed"])
    assert best["clean"]["per"] == pr.score(kept, clips, targets)
    with pytest.raises(ValueError, match="tries"):
        pr.run_phoneme_task(frames, task, tries=0)


def test_standardising_uses_every_frame_of_every_clip_and_nothing_else():
    clips = [torch.tensor([[[1.0]], [[3.0]]]), torch.tensor([[[5.0]]])]
    head = pr.FrameDownstream(1, 1, 2).standardise_with(clips)
    assert head.mean.item() == pytest.approx(3.0) and head.std.item() == pytest.approx(2.0)  # of 1, 3, 5
    padded, lengths = pr.pad(clips)
    assert padded.shape == (2, 2, 1, 1) and lengths.tolist() == [2, 1] and padded[1, 1].item() == 0


def test_ctc_refuses_clips_too_short_for_their_phones_and_mismatched_inputs():
    clips, targets = _spoken(4, 5, seed=1)
    with pytest.raises(ValueError, match=r"clips \[0\] have fewer frames than phonemes"):
        pr.fit_ctc([clips[0][:2], *clips[1:]], targets, n_classes=6, steps=1)
    with pytest.raises(ValueError, match="need each clip's frames"):
        pr.fit_ctc([c[:, 0] for c in clips], targets, n_classes=6, steps=1)
    with pytest.raises(ValueError, match="need each clip's frames"):
        pr.fit_ctc(clips, targets[:2], n_classes=6, steps=1)


def test_the_ctc_head_trains_on_frames_standardised_once_exactly_as_on_each_padded_batch():
    """fit_ctc standardises every clip once; a step that standardised its padded batch (as the head did before)
    must train the same weights to the bit: padded frames differ, and CTC gives them no gradient."""
    torch.manual_seed(0)
    clips = [(3 * torch.randn(n, 3, 8) + 1).half() for n in (9, 14, 6, 11, 12)]
    targets = [torch.randint(1, 5, (k,)) for k in (3, 5, 2, 4, 4)]
    fitted = pr.fit_ctc(clips, targets, n_classes=5, steps=6, batch_size=3, seed=2)

    generator = torch.Generator().manual_seed(2)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        by_hand = pr.FrameDownstream(3, 8, 5).standardise_with(clips)
    optimizer = torch.optim.AdamW(by_hand.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(6):
        batch = torch.randperm(len(clips), generator=generator)[:3].tolist()
        x, n = pr.pad([clips[i] for i in batch])
        loss = pr.ctc_objective(by_hand(x), n, [targets[i] for i in batch])  # standardised per padded batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for (name, a), b in zip(fitted.state_dict().items(), by_hand.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        start = pr.FrameDownstream(3, 8, 5)
    assert not torch.equal(fitted.linear.weight, start.linear.weight)  # and it trained


def test_the_cosine_schedule_lowers_the_heads_learning_rate_step_by_step_to_near_zero():
    """schedule="cosine" trains as a loop that sets lr · (1 + cos(π t / steps)) / 2 before step t, to the bit;
    its first step is the constant schedule's."""
    torch.manual_seed(0)
    clips = [(3 * torch.randn(n, 3, 8) + 1).half() for n in (9, 14, 6, 11, 12)]
    targets = [torch.randint(1, 5, (k,)) for k in (3, 5, 2, 4, 4)]
    fitted = pr.fit_ctc(clips, targets, n_classes=5, steps=4, batch_size=3, lr=1e-2, schedule="cosine", seed=2)

    generator = torch.Generator().manual_seed(2)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        by_hand = pr.FrameDownstream(3, 8, 5).standardise_with(clips)
    optimizer = torch.optim.AdamW(by_hand.parameters(), lr=1e-2, weight_decay=1e-3)
    for step, rate in enumerate([1e-2, 1e-2 * (1 + 2**-0.5) / 2, 1e-2 / 2, 1e-2 * (1 - 2**-0.5) / 2]):
        optimizer.param_groups[0]["lr"] = rate
        batch = torch.randperm(len(clips), generator=generator)[:3].tolist()
        x, n = pr.pad([clips[i] for i in batch])
        loss = pr.ctc_objective(by_hand(x), n, [targets[i] for i in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for (name, a), b in zip(fitted.state_dict().items(), by_hand.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    one = {s: pr.fit_ctc(clips, targets, n_classes=5, steps=1, batch_size=3, schedule=s, seed=2) for s in pr.SCHEDULES}
    assert torch.equal(one["cosine"].linear.weight, one["constant"].linear.weight)
    constant = pr.fit_ctc(clips, targets, n_classes=5, steps=4, batch_size=3, lr=1e-2, seed=2)
    assert not torch.equal(constant.linear.weight, fitted.linear.weight)
    with pytest.raises(ValueError, match="schedule must be one of"):
        pr.fit_ctc(clips, targets, n_classes=5, steps=1, schedule="linear")


def test_layer_frames_keeps_every_layer_and_each_clips_share_of_the_frames():
    def layers_fn(waves):  # two "layers", one frame per 320 samples (50 Hz at 16 kHz)
        framed = waves.unfold(1, 320, 320)
        return [framed[..., :4], 2 * framed[..., :4]]

    waves = [torch.randn(16_000), torch.randn(8_000), torch.randn(100 + 320)]
    frames = pr.layer_frames(layers_fn, waves, batch_size=2)
    assert [tuple(f.shape) for f in frames] == [(50, 2, 4), (25, 2, 4), (2, 2, 4)]
    assert frames[0].dtype == torch.float16
    assert torch.allclose(frames[1][:, 1].float(), 2 * frames[1][:, 0].float(), rtol=1e-2)
    assert torch.allclose(frames[1][:, 0].float(), waves[1].unfold(0, 320, 320)[:, :4], atol=1e-2)


def test_the_task_takes_whole_sentences_with_their_phonemes_and_a_harsh_copy(smoke_corpus):
    task = pr.build_phoneme_task(smoke_corpus, train_clips=12, test_clips=6, seed=3)
    assert [len(task.waves[k]) for k in ("train", "test", "test_harsh")] == [12, 6, 6]
    assert {r["split"] for r in task.rows["train"]} == {"train"} and {r["split"] for r in task.rows["test"]} == {"test"}
    first = task.rows["test"][0]
    assert task.phone_set.decode(task.targets["test"][0].tolist()) == phonemes.phonemes(first["text"], first["accent"])
    assert abs(len(task.waves["test"][0]) - first["duration"] * 16_000) < 2  # the whole sentence, uncut
    assert [len(w) for w in task.waves["test_harsh"]] == [len(w) for w in task.waves["test"]]
    assert not torch.equal(task.waves["test_harsh"][0], task.waves["test"][0])
    again = pr.build_phoneme_task(smoke_corpus, train_clips=12, test_clips=6, seed=3)
    assert torch.equal(again.waves["test_harsh"][2], task.waves["test_harsh"][2])  # drawn from the seed

    def layers_fn(waves):
        framed = waves.unfold(1, 320, 320)
        return [framed[..., :16].abs(), framed[..., 16:32].abs()]

    result = pr.run_phoneme_task(task.frames(layers_fn), task, steps=3, batch_size=4)
    assert set(result) == {"clean", "harsh", "layer_weights"} and len(result["layer_weights"]) == 2
    assert 0.5 < result["clean"]["per"] < 5  # a head that hears nothing useful recognises almost nothing


def test_a_task_of_chosen_rows_is_the_drawn_task_when_given_the_same_rows(smoke_corpus):
    drawn = pr.build_phoneme_task(smoke_corpus, train_clips=8, test_clips=4, seed=5)
    chosen = pr.phoneme_task_of(smoke_corpus, {"train": drawn.rows["train"], "test": drawn.rows["test"]}, seed=5)
    assert chosen.settings == drawn.settings and chosen.phone_set.phones == drawn.phone_set.phones
    for name in ("train", "test", "test_harsh"):
        assert all(torch.equal(a, b) for a, b in zip(chosen.waves[name], drawn.waves[name]))
        assert all(torch.equal(a, b) for a, b in zip(chosen.targets[name], drawn.targets[name]))
    speakers = {r["speaker"] for r in drawn.rows["train"]}  # a development split: training speakers on both sides
    some = sorted(speakers)[: len(speakers) // 2]
    rows = smoke_corpus.select("train", "sentence")
    dev = pr.phoneme_task_of(
        smoke_corpus,
        {"train": [r for r in rows if r["speaker"] in some], "test": [r for r in rows if r["speaker"] not in some]},
    )
    assert not {r["speaker"] for r in dev.rows["train"]} & {r["speaker"] for r in dev.rows["test"]}
    with pytest.raises(ValueError, match="no test sentences"):
        pr.phoneme_task_of(smoke_corpus, {"train": rows, "test": []})


def test_only_a_source_whose_sentences_carry_text_and_accent_has_a_phoneme_task(smoke_corpus):
    assert pr.transcribed(smoke_corpus)

    class Untranscribed:  # a VoxCeleb1 folder: sentences without text or accent
        def select(self, split, kind):
            return [{"path": f"{split}/a.wav", "speaker": "id1", "kind": "sentence"}]

    class Empty:
        def select(self, split, kind):
            return []

    assert not pr.transcribed(Untranscribed()) and not pr.transcribed(Empty())
