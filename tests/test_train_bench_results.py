import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kdlib import train
from kdlib.course import results
from kdlib.evaluation import bench, verdicts

LR = 0.2
GOLDEN_LAST_LOSS = 0.8807519674301147  # test_the_loop_gives_the_golden_losses_of_its_first_version


def _problem():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0])).unsqueeze(1)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)


def _fit(model, loader, epochs, ckpt=None):
    return train.fit(
        model,
        loader,
        lambda b: (nn.functional.mse_loss(model(b[0]), b[1]), {"mse": 0.0}),
        epochs=epochs,
        lr=LR,
        device="cpu",
        checkpoint=ckpt,
        progress=False,
    )


def test_fit_learns_and_logs_history():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    history = _fit(model, _problem(), 10)
    means = history.epoch_means()
    assert len(means) == 10 and means[-1] < 0.05 * means[0]
    assert len(history["loss"]) == len(history["mse"]) == 80
    assert history["lr"][-1] < history["lr"][0]  # cosine decay


def test_the_schedule_warms_up_linearly_then_decays_as_a_cosine():
    from kdlib.train.loop import lr_factor

    assert [lr_factor(s, 10, warmup_steps=2) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, warmup_steps=2) == 1.0 and lr_factor(10, 10, warmup_steps=2) == pytest.approx(0.0)
    assert lr_factor(6, 10, warmup_steps=2) == pytest.approx(0.5)  # half-way through the decay
    assert lr_factor(7, 10, schedule="constant") == 1.0


def test_the_loop_gives_the_golden_losses_of_its_first_version():
    """A small run with warm-up, an outside head given through the optimizer and shuffled batches; the losses
    were computed with the loop before it was split into named pieces (kdlib 0.1), and must not move."""
    torch.manual_seed(0)
    model, head = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)), nn.Linear(3, 3)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=3e-2)
    history = train.fit(
        model,
        loader,
        lambda b: nn.functional.cross_entropy(head(model(b[0])), b[1]),
        epochs=3,
        optimizer=optimizer,
        warmup_steps=3,
        progress=False,
        max_steps_per_epoch=6,
        device="cpu",
    )
    assert len(history["loss"]) == 18
    assert history["loss"][-1] == pytest.approx(GOLDEN_LAST_LOSS, rel=1e-5)


def test_same_seed_same_weights_and_checkpoint_records_the_epoch(tmp_path):
    torch.manual_seed(1)
    init = nn.Linear(4, 1).state_dict()
    a, b = nn.Linear(4, 1), nn.Linear(4, 1)
    a.load_state_dict(init)
    b.load_state_dict(init)
    _fit(a, _problem(), 4)
    _fit(b, _problem(), 4, tmp_path / "ck.pt")
    for k in init:
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]["loss"]) == 32


def test_interrupted_then_resumed_equals_straight(tmp_path):
    torch.manual_seed(2)
    init = nn.Linear(4, 1).state_dict()
    a, b = nn.Linear(4, 1), nn.Linear(4, 1)
    a.load_state_dict(init)
    b.load_state_dict(init)
    _fit(a, _problem(), 3)

    class Stop(Exception):
        pass

    calls = {"n": 0}

    def stopping_loss(batch):
        calls["n"] += 1
        if calls["n"] > 8 * 2:  # dies during epoch 3
            raise Stop
        return nn.functional.mse_loss(b(batch[0]), batch[1])

    with pytest.raises(Stop):
        train.fit(
            b, _problem(), stopping_loss, epochs=3, lr=LR, device="cpu", checkpoint=tmp_path / "c.pt", progress=False
        )
    fresh = nn.Linear(4, 1)
    _fit_fresh = train.fit(
        fresh,
        _problem(),
        lambda bt: nn.functional.mse_loss(fresh(bt[0]), bt[1]),
        epochs=3,
        lr=LR,
        device="cpu",
        checkpoint=tmp_path / "c.pt",
        progress=False,
    )
    assert len(_fit_fresh["loss"]) == 24
    for k in init:
        assert torch.allclose(a.state_dict()[k], fresh.state_dict()[k], atol=1e-6)


def test_non_finite_loss_stops_training():
    model = nn.Linear(4, 1)
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        train.fit(model, _problem(), lambda b: model(b[0]).sum() * float("nan"), epochs=1, device="cpu", progress=False)


def test_bench_measures():
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
    m = bench.measure(model, torch.randn(1, 100), repeats=3)
    assert m["params"] == 100 * 50 + 50 + 50 * 10 + 10
    assert 4 * m["params"] <= m["bytes"] < 4 * m["params"] + 2000  # fp32 weights plus a small header
    assert 0 < m["latency_ms"] < 1000


def test_results_file_and_summary(tmp_path):
    entry = {"params": 10, "bytes": 40, "latency_ms": 1.5, "eer": 0.05, "min_dcf": 0.3}
    (tmp_path / "run_times.json").write_text('{"notebooks": {}}')  # the runner's record lies beside: skipped
    path = results.save(
        "99_test",
        seed=[0, 1],
        wall_time_s=12.3,
        models={"tiny": entry},
        claims=[
            results.claim(
                "x beats y",
                "-5 %",
                "-3 %",
                verdicts.from_seeds([0.2, 0.3], [0.25, 0.2], verdicts.better(), higher_is_better=False),
            )
        ],
        out_dir=tmp_path,
    )
    record = json.loads(path.read_text())
    assert record["notebook"] == "99_test" and record["models"]["tiny"]["eer"] == 0.05
    assert {"mode", "seed", "wall_time_s", "device", "provenance", "claims"} <= set(record)
    assert {"versions", "hardware", "numerics", "git_commit"} <= set(record["provenance"])
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "| 99_test |" in summary and "5.00 %" in summary and "x beats y" in summary
    assert record["claims"][0]["outcome"] == "inconclusive" and "| inconclusive" in summary
    with pytest.raises(ValueError, match="missing .*outcome"):  # an old-style claim is refused, nothing written
        results.save(
            "99_old",
            seed=0,
            wall_time_s=1,
            models={"tiny": entry},
            out_dir=tmp_path,
            claims=[{"claim": "x", "paper": "p", "ours": "o", "holds": True}],
        )
    assert not (tmp_path / "99_old.json").exists()


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"params": 1, "bytes": 4, "latency_ms": 1.0, "eer": 5.0}, "not a fraction"),
        ({"params": 1, "bytes": 4}, "latency_ms"),
    ],
)
def test_results_reject_bad_entries(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        results.save("99_bad", seed=0, wall_time_s=1, models={"m": entry}, out_dir=tmp_path)
    assert not (tmp_path / "99_bad.json").exists()


def test_entry_and_claim_state_a_result_in_one_line():
    model = nn.Linear(4, 2)
    e = results.entry(
        model,
        torch.randn(1, 4),
        test={"eer": 0.1, "min_dcf": 0.5, "scores": None},
        other={"eer": 0.2, "min_dcf": 0.6},
        bytes=7,
        note="x",
    )
    assert e["params"] == 10 and e["bytes"] == 7 and e["note"] == "x" and e["latency_ms"] > 0
    assert (e["eer"], e["min_dcf"], e["eer_other_language"], e["min_dcf_other_language"]) == (0.1, 0.5, 0.2, 0.6)
    assert results.entry(eer=0.3) == {"eer": 0.3}
    v = verdicts.from_value(3.0, verdicts.better(), "points")
    c = results.claim("a beats b", "paper says so", "3 vs 4", v)
    assert c == {
        "claim": "a beats b",
        "paper": "paper says so",
        "ours": "3 vs 4",
        "outcome": "holds",
        "holds": True,
        "verdict": v,
    }
    assert type(c["holds"]) is bool
    with pytest.raises(TypeError, match="kdlib.evaluation.verdicts"):
        results.claim("a beats b", "p", "o", np.bool_(True))  # a bare yes/no is no longer a verdict


def test_a_missing_number_is_written_as_null():
    """A single seed's spread (NaN) and an absent value become null in a results file; numbers become floats."""
    assert [results.number(v) for v in (float("nan"), np.float32("nan"), None)] == [None, None, None]
    assert results.number(np.float32(0.25)) == 0.25 and type(results.number(np.int64(3))) is float
    assert json.dumps({"eer_std": results.number(np.nan)}) == '{"eer_std": null}'


def test_claims_read_in_full_as_markdown_with_effect_interval_and_outcome():
    long = "x" * 80 + " | with a pipe"
    seeds = verdicts.from_seeds([0.10, 0.11, 0.12], [0.20, 0.21, 0.19], verdicts.better(), higher_is_better=False)
    claims = [
        results.claim(long, "p", "o", seeds),
        results.claim("c", "p", "o", verdicts.from_value(69.9, verdicts.about(79, 5), "%")),
    ]
    lines = results.claims_markdown(claims, mode="full").splitlines()
    assert lines[0] == "| claim | paper | ours | effect [95 % interval] | outcome |" and len(lines) == 4
    assert "x" * 80 + " \\| with a pipe" in lines[2]
    assert "| +9.00 points [+6.73, +11.27], detectable 3.04 |" in lines[2] and lines[2].endswith("| **holds** |")
    assert "+69.90 % (measured)" in lines[3] and lines[3].endswith("| **contradicted** |")
    smoke = results.claims_markdown(claims, mode="smoke").splitlines()  # a smoke run's verdicts say so
    assert smoke[0] == f"> {results.SMOKE_NOTE}" and smoke[2] == lines[0]
    assert smoke[4].endswith("| **holds** (smoke) |") and smoke[5].endswith("| **contradicted** (smoke) |")
    assert results.smoke_note("full") == ""
    assert results.tally(claims) == "1 holds, 1 contradicted, 0 inconclusive"
    assert results.resolution(claims[0]) == "detectable 3.04 points (paper: p)"
    combined = results.claim("c", "q", "o", verdicts.all_of([seeds, verdicts.all_of([seeds])]))
    assert results.resolution(combined) == "detectable 3.04 points (paper: q)"
    single = verdicts.from_seeds([0.1], [0.2], verdicts.better(), higher_is_better=False)
    assert results.resolution(results.claim("c", "q", "o", single)).startswith("no interval")


def test_the_summary_of_a_smoke_run_says_its_numbers_mean_nothing(tmp_path):
    claim = results.claim("c", "p", "o", verdicts.from_value(1.0, verdicts.better(), "points"))
    for mode in ("full", "smoke"):
        out = tmp_path / mode
        out.mkdir()
        record = {
            "notebook": "99_x",
            "mode": mode,
            "wall_time_s": 1.0,
            "device": "cpu",
            "models": {},
            "claims": [claim],
        }
        (out / "99_x.json").write_text(json.dumps(record))
        text = results.write_summary(out).read_text()
        assert (results.SMOKE_NOTE in text) == (mode == "smoke")
        assert text.rstrip().endswith("| holds (smoke) |" if mode == "smoke" else "| holds |")


def test_results_record_the_device_actually_used(tmp_path, monkeypatch):
    from kdlib import runtime

    monkeypatch.setattr(runtime, "_USED", set())
    runtime.resolve_device(nn.Linear(2, 2), "cpu")
    record = json.loads(results.save("99_dev", seed=0, wall_time_s=1, models={}, out_dir=tmp_path).read_text())
    assert record["device"] == "cpu"


def test_headless_runs_print_one_labelled_line_per_loop(monkeypatch, capsys):
    from kdlib import progress

    monkeypatch.setenv("KDLIB_HEADLESS", "1")
    assert sum(progress.bar(range(3), desc="clips", unit="clip")) == 3
    manual = progress.bar(total=4, desc="epoch 1/1", unit="step")
    manual.update(2)
    manual.close()
    assert list(progress.bar(range(2), desc="quiet", disable=True)) == [0, 1]
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["clips: 3/3 clip in 00:00", "epoch 1/1: 2/4 step in 00:00"]


def test_fit_labels_its_epochs(monkeypatch, capsys):
    monkeypatch.setenv("KDLIB_HEADLESS", "1")
    model = nn.Linear(2, 1)
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    train.fit(model, loader, lambda b: ((model(b[0]) - b[1]) ** 2).mean(), epochs=1, device="cpu", desc="tiny")
    out = capsys.readouterr().out
    assert "tiny: epoch 1/1: 2/2 step in" in out and "tiny: epoch 1/1: mean loss" in out


def test_gpu_latency_needs_a_gpu_and_measures_one_when_there():
    model = torch.nn.Linear(8, 2)
    if torch.cuda.is_available():
        assert bench.cuda_latency_ms(model, torch.randn(1, 8), warmup=1, repeats=2) > 0
        assert next(model.parameters()).device.type == "cpu"  # the caller's model stays where it was
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            bench.cuda_latency_ms(model, torch.randn(1, 8))


def test_save_model_keeps_fp32_weights_for_a_later_notebook(tmp_path):
    from kdlib.models import load_speaker_model, speaker_model

    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=16, embed_dim=8).eval()
    folder = results.save_model(
        "02_iml_kd", "student_seed0", model, "ecapa_tdnn", {"channels": 16, "embed_dim": 8}, out_dir=tmp_path
    )
    assert folder == results.model_dir("02_iml_kd", "student_seed0", tmp_path)
    assert folder == tmp_path / "models" / "02_iml_kd" / "student_seed0"
    loaded = load_speaker_model(folder)
    x = torch.randn(2, 8000)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # fp32 kept bit for bit (the zoo's fp16 would not be)


def test_mixed_precision_trains_close_to_fp32_and_bad_settings_are_refused():
    """bf16 autocast on the CPU: a net with matmuls learns as in fp32, within bf16's 8-bit mantissa."""
    histories = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
        histories[precision] = train.fit(
            model,
            _problem(),
            lambda b: nn.functional.mse_loss(model(b[0]).float(), b[1]),
            epochs=6,
            lr=0.02,
            device="cpu",
            progress=False,
            precision=precision,
        )["loss"]
    assert histories["bf16"][-1] < 0.2 * histories["bf16"][0]
    assert histories["bf16"][0] == pytest.approx(histories["fp32"][0], rel=2e-2)
    assert np.mean(histories["bf16"][-8:]) == pytest.approx(np.mean(histories["fp32"][-8:]), rel=0.15)
    assert histories["bf16"] != histories["fp32"]  # autocast did run in bf16
    model = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="'fp16' needs a GPU"):
        train.fit(model, _problem(), lambda b: model(b[0]).sum(), epochs=1, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        train.fit(model, _problem(), lambda b: model(b[0]).sum(), epochs=1, device="cpu", precision="half")


def test_the_precision_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KDLIB_PRECISION", "bf16")
    runs = []
    for precision in (None, "bf16"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
        runs.append(
            train.fit(
                model,
                _problem(),
                lambda b: nn.functional.mse_loss(model(b[0]).float(), b[1]),
                epochs=1,
                lr=0.02,
                device="cpu",
                progress=False,
                precision=precision,
            )["loss"]
        )
    assert runs[0] == runs[1]
    from kdlib.runtime import numerics

    assert numerics()["KDLIB_PRECISION"] == "bf16"
    monkeypatch.setenv("KDLIB_PRECISION", "float8")
    with pytest.raises(ValueError, match="KDLIB_PRECISION"):
        train.fit(model, _problem(), lambda b: model(b[0]).sum(), epochs=1, device="cpu")


def test_a_curve_keeps_the_mean_of_each_window_and_a_shorter_last_one():
    assert results.curve([4, 2, 3, 1, 5], window=2) == [3.0, 2.0, 5.0]
    assert results.curve(np.arange(100.0), window=25) == [12.0, 37.0, 62.0, 87.0]
    assert results.curve([], window=3) == []
    with pytest.raises(ValueError, match="window"):
        results.curve([1.0], window=0)
