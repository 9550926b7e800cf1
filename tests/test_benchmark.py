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
    assert model.weight.grad is None  # the count leaves no gradient behind


def test_a_workload_is_trained_timed_and_set_against_the_machine():
    model = nn.Linear(128, 128)
    before = model.weight.detach().clone()
    batches = [torch.randn(64, 128)]
    workload = benchmark.Workload(
        "t",
        "99_t",
        "a linear layer",
        lambda: (model, lambda b: model(b).pow(2).mean(), batches, torch.optim.SGD(model.parameters(), 0.1), {}),
        audio_seconds=64.0,
        gemm=(64, 128, 128),
    )
    row = benchmark.time_workload(workload, steps=3, warmup=1)
    assert not torch.equal(model.weight, before)  # it trained, through kdlib.train.fit
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
    assert gflop == pytest.approx(
        {"00": 58.60, "01": 76.65, "02": 19.06, "03": 31.85, "04a": 31.85, "04b": 31.86}, rel=2e-3
    )
    assert result["machine_gflops_large"] > 0 and result["provenance"]["numerics"]["torch_threads"] >= 1


def test_a_grouped_convolutions_backward_costs_twice_its_forward():
    """The backward pass computes the input gradient and the weight gradient, each as costly as the forward
    convolution, whatever the groups (torch 2.11's own formula counts a grouped weight gradient as dense)."""
    from torch.utils.flop_counter import FlopCounterMode

    for conv in (nn.Conv1d(32, 32, 9, padding=4, groups=8), nn.Conv1d(16, 32, 3), nn.ConvTranspose1d(8, 4, 5, 2)):
        x = torch.randn(2, conv.in_channels, 20, requires_grad=True)
        counter = FlopCounterMode(
            display=False, custom_mapping={torch.ops.aten.convolution_backward: benchmark.conv_backward_flops}
        )
        with counter:
            y = conv(x)
        forward = counter.get_total_flops()
        out_channels, in_per_group, kernel = (
            conv.weight.shape
            if isinstance(conv, nn.Conv1d)
            else (conv.weight.shape[1], conv.weight.shape[0] // conv.groups, conv.weight.shape[2])
        )
        frames = y.shape[-1] if isinstance(conv, nn.Conv1d) else x.shape[-1]
        assert forward == 2 * 2 * frames * out_channels * in_per_group * kernel
        with counter:
            y.sum().backward()
        assert counter.get_total_flops() == 2 * forward
    # an input that needs no gradient: the forward pass and the weight gradient only
    assert benchmark.flops_of(conv, lambda b: conv(b).sum(), torch.randn(2, 8, 20)) == 2 * forward


def test_only_a_known_workload_can_be_chosen():
    with pytest.raises(ValueError, match="no workload matches"):
        benchmark.run(only=["17"], teachers=False, progress=False)


def _record(seconds: float) -> dict:
    return {
        "precision": "fp32",
        "large": 2048,
        "machine_gflops_large": 100.0,
        "workloads": [
            {
                "workload": "01",
                "what": "OS-KDFT (e): two branches",
                "gflop_per_step": 10.0,
                "seconds_per_step": seconds,
                "achieved_gflops": 10.0 / seconds,
                "ratio": 10.0 / seconds / 100.0,
            }
        ],
    }


def test_the_table_sets_runs_side_by_side_with_the_speed_up(tmp_path):
    text = benchmark.table({"before": _record(0.5), "after": _record(0.25)})
    row = next(line for line in text.splitlines() if line.startswith("| 01"))
    assert "| 0.500 | 20.0 (20 %) | 0.250 | 40.0 (40 %) | 2.00x |" in row
    for name, seconds in (("before", 0.5), ("after", 0.25)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_record(seconds)))
    assert benchmark.main(["table", str(tmp_path / "before.json"), str(tmp_path / "after.json")]) == 0
    with pytest.raises(SystemExit, match="missing"):
        benchmark.main(["table", str(tmp_path / "nowhere.json")])


def test_the_performance_page_shows_the_committed_measurements(tmp_path):
    """docs/performance.md's generated part is what the committed benchmark files give (rerun
    python -m kdlib.course.benchmark docs after measuring), one section per machine."""
    from kdlib.course.report import section_matches

    section = benchmark.docs_section()
    assert section_matches(section, benchmark.PAGE, benchmark.BEGIN, benchmark.END)
    machines = [p for p in benchmark.MEASURED.iterdir() if p.is_dir()]
    assert machines and section.count("\n### ") == len(machines)
    for machine in machines:
        reference = json.loads((machine / "reference-fp32-cpu.json").read_text())
        assert reference["provenance"]["numerics"]["ATEN_CPU_CAPABILITY"] == "avx2"  # the reference numerics
        assert {row["workload"] for row in reference["workloads"]} == {w.key for w in benchmark.WORKLOADS}
    with pytest.raises(FileNotFoundError, match="no benchmark results"):
        benchmark.docs_section(tmp_path / "nowhere")
    (tmp_path / "empty-machine").mkdir()
    with pytest.raises(FileNotFoundError, match="empty-machine: no benchmark results"):
        benchmark.docs_section(tmp_path)
