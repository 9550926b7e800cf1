import importlib

import kdlib.config as config


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "r"))
    assert config.data_dir() == tmp_path / "d"
    assert config.results_dir() in (tmp_path / "r", tmp_path / "r" / "smoke")


def test_default_paths_are_under_the_repo(monkeypatch):
    monkeypatch.delenv("KDLIB_DATA", raising=False)
    monkeypatch.delenv("KDLIB_RESULTS", raising=False)
    assert config.data_dir() == config.REPO_ROOT / "data"
    assert config.results_dir().is_relative_to(config.REPO_ROOT / "results")


def test_smoke_results_never_overwrite_full_results(monkeypatch):
    monkeypatch.setenv("KDLIB_SMOKE", "1")
    try:
        smoke = importlib.reload(config)
        assert smoke.SMOKE and smoke.results_dir().name == "smoke"
    finally:
        monkeypatch.undo()
        importlib.reload(config)


def test_seeding_repeats():
    import torch

    config.seed_everything(3)
    a = torch.rand(3)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(3))
