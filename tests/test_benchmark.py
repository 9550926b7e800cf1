"""The training-speed benchmark: FLOPs counted as the formula says, the ratio to the machine's own matrix product,
the notebooks' workloads still built from kdlib's parts, and the side-by-side table."""

import json
import math

import pytest
import torch
from torch import nn

from kdlib.course import benchmark


def test_flops_of_a_linear_layer_are_its_forward_and_weight_gradient_products():
    """y = x W^T + b on (8, 64) -> 32: forward 2·8·64·32, backward the weight's gradient (x needs none) as much."""
    model = nn.Linear(64, 32)
    x = torch.randn(8, 64)
    flops = benchmark.flops_of(model, lambda batch: model(batch).pow(2).mean(), x)
    assert flops == 2 * (2 * 8 * 64 * 32)
    assert model.weight.grad is None                                      # the count leaves no gradient behind


def test_a_workload_is_trained_timed_and_set_against_the_machine():
    model = nn.Linear(128, 128)
    before = model.weight.detach().clone()
    batches = [torch.randn(64, 128)]
    workload = benchmark.Workload(
        "t", "99_t", "a linear layer", lambda: (model, lambda b: model(b).pow(2).mean(), batches,
                                                torch.optim.SGD(model.parameters(), 0.1), {}),
        audio_seconds=64.0, gemm=(64, 128, 128))
    row = benchmark.time_workload(workload, steps=3, warmup=1)
    assert not torch.equal(model.weight, before)                          # it trained, through kdlib.train.fit
    assert row["gflop_per_step"] == pytest.approx(2 * 2 * 64 * 128 * 128 / 1e9)
    assert row["achieved_gflops"] == pytest.approx(row["gflop_per_step"] / row["seconds_per_step"])
    assert row["ratio"] == pytest.approx(row["achieved_gflops"] / row["machine_gflops"])
    assert row["audio_seconds_per_second"] == pytest.approx(64.0 / row["seconds_per_step"])
    assert row["machine_gflops"] > 0.1 and math.isfinite(row["ratio"])


def test_the_notebooks_workloads_build_and_keep_their_size():
    """Every workload runs a step from kdlib's current parts; the FLOPs of one step are golden values of the
    notebooks' full-mode architectures (a change to a model shows here, and in the benchmark's results)."""
    result = benchmark.run(steps=1, warmup=0, teachers=False, progress=False)
    gflop = {row["workload"]: row["gflop_per_step"] for row in result["workloads"]}
    assert gflop == pytest.approx({"00": 58.60, "01": 68.19, "02": 19.06, "03": 14.23, "04a": 14.23, "04b": 12.39},
                                  rel=2e-3)
    assert result["machine_gflops_large"] > 0 and result["provenance"]["numerics"]["torch_threads"] >= 1


def test_only_a_known_workload_can_be_chosen():
    with pytest.raises(ValueError, match="no workload matches"):
        benchmark.run(only=["17"], teachers=False, progress=False)


def _record(seconds: float) -> dict:
    return {"precision": "fp32", "large": 2048, "machine_gflops_large": 100.0,
            "workloads": [{"workload": "01", "what": "OS-KDFT (e): two branches", "gflop_per_step": 10.0,
                           "seconds_per_step": seconds, "achieved_gflops": 10.0 / seconds,
                           "ratio": 10.0 / seconds / 100.0}]}


def test_the_table_sets_runs_side_by_side_with_the_speed_up(tmp_path):
    text = benchmark.table({"before": _record(0.5), "after": _record(0.25)})
    row = next(line for line in text.splitlines() if line.startswith("| 01"))
    assert "| 0.500 | 20.0 (20 %) | 0.250 | 40.0 (40 %) | 2.00x |" in row
    for name, seconds in (("before", 0.5), ("after", 0.25)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_record(seconds)))
    assert benchmark.main(["table", str(tmp_path / "before.json"), str(tmp_path / "after.json")]) == 0
    with pytest.raises(SystemExit, match="missing"):
        benchmark.main(["table", str(tmp_path / "nowhere.json")])
