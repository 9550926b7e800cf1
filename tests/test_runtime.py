import importlib
from pathlib import Path

import kdlib.runtime as runtime


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "r"))
    assert runtime.data_dir() == tmp_path / "d"
    assert runtime.results_dir() in (tmp_path / "r", tmp_path / "r" / "smoke")


def test_default_paths_are_under_the_repo(monkeypatch):
    monkeypatch.delenv("KDLIB_DATA", raising=False)
    monkeypatch.delenv("KDLIB_RESULTS", raising=False)
    assert runtime.data_dir() == runtime.REPO_ROOT / "data"
    assert runtime.results_dir().is_relative_to(runtime.REPO_ROOT / "results")


def test_smoke_results_never_overwrite_full_results(monkeypatch):
    monkeypatch.setenv("KDLIB_SMOKE", "1")
    try:
        smoke = importlib.reload(runtime)
        assert smoke.SMOKE and smoke.results_dir().name == "smoke"
    finally:
        monkeypatch.undo()
        importlib.reload(runtime)


def test_seeding_repeats():
    import torch

    runtime.seed_everything(3)
    a = torch.rand(3)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_one_device_rule(monkeypatch):
    import torch

    monkeypatch.setattr(runtime, "_DEVICE", None)
    monkeypatch.setenv("KDLIB_DEVICE", "cpu")
    model = torch.nn.Linear(2, 2)
    assert runtime.resolve_device(model) == "cpu"  # a CPU model: the configured device
    assert runtime.resolve_device(model, "meta") == "meta"  # an explicit device wins
    meta = torch.nn.Linear(2, 2, device="meta")
    assert runtime.resolve_device(meta) == "meta"  # a model on an accelerator stays there
    assert runtime.use_device("meta") == "meta" and runtime.resolve_device(model) == "meta"
    assert runtime.use_device("auto") == "cpu"  # back to $KDLIB_DEVICE
    assert "meta" in runtime.devices_used()


def test_provenance_names_versions_hardware_numerics_and_commit():
    record = runtime.provenance()
    assert {"versions", "hardware", "cpu", "numerics", "git_commit", "created"} <= set(record)
    assert record["versions"]["torch"] and "cores" in record["hardware"]
    if Path("/proc/cpuinfo").exists():  # Linux: the generation and the extensions the kernels dispatch on
        assert {"cpu family", "model", "features"} <= set(record["cpu"])
        assert set(record["cpu"]["features"]) <= set(runtime.CPU_FEATURES)
    assert set(runtime.REFERENCE_NUMERICS) <= set(record["numerics"])


def test_one_way_to_write_a_wall_time():
    from kdlib.runtime import duration

    assert (duration(45.4), duration(89.6), duration(90), duration(661.1)) == ("45 s", "90 s", "1.5 min", "11.0 min")
