"""Data-parallel training (kdlib.train.distributed, kdlib.train.fit under torchrun): two CPU processes on gloo must
train like one process on the same global batch."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import BatchSampler, SequentialSampler

from kdlib.train import distributed

sys.path.insert(0, str(Path(__file__).parent))
import ddp_job  # noqa: E402

# Tolerance: the two processes sum their gradients in another order than one process does, so weights and
# losses agree to float32 rounding (measured: 1.2e-7 at most over 15 AdamW steps), not bit for bit.
ATOL = 1e-6


def torchrun_job(out: Path) -> subprocess.CompletedProcess:
    """``tests/ddp_job.py`` in two gloo processes under torchrun, writing to ``out``."""
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*command, str(Path(ddp_job.__file__)), str(out)], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The job's outputs. A process of the pair can die of SIGABRT from gloo's transport threads ("terminate called
    without an active exception"; seen twice in this project's CI and fresh-clone runs, never in 45 runs in a row
    on a quiet machine; gloo's own tests upstream have aborted alike, pytorch/pytorch#50701), so a job that aborts
    is run once more in a fresh folder, with a warning that shows how far each rank got. Any other failure, or a
    second abort, fails the tests."""
    for attempt in (1, 2):
        out = tmp_path_factory.mktemp(f"ddp-attempt{attempt}")
        done = torchrun_job(out)
        log = done.stdout[-3000:] + done.stderr[-3000:]
        if done.returncode == 0:
            break
        aborted = "SIGABRT" in done.stderr or "terminate called" in done.stderr
        if attempt == 2 or not aborted:
            pytest.fail(f"the torchrun job failed (attempt {attempt}):\n{log}")
        progress = [line for line in done.stdout.splitlines() if line.startswith("rank ")]
        warnings.warn(f"the torchrun job aborted (gloo); ran it again. Stages reached: {progress}", stacklevel=1)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.parametrize("case", ddp_job.CASES)
def test_two_gloo_processes_train_like_one_on_the_same_global_batch(two_processes, case):
    _, ranks = two_processes
    assert [r["world_size"] for r in ranks] == [2, 2]
    history, weights = ddp_job.run(case)
    for r in ranks:
        their_history, their_weights = r["cases"][case]
        assert len(their_history["loss"]) == len(history["loss"]) == (15 if case == "dataloader" else 9)
        for key in ("loss", "mse", "constant", "lr"):
            assert their_history[key] == pytest.approx(history[key], abs=ATOL), key
        for name, value in weights.items():
            torch.testing.assert_close(their_weights[name], value, atol=ATOL, rtol=0)
    # and training did something: the loss fell
    assert history["loss"][-1] < 0.7 * history["loss"][0]


def test_evaluation_is_split_between_the_processes_and_comes_together(two_processes):
    _, ranks = two_processes
    alone = ddp_job.embeddings()
    for r in ranks:
        for how in ("whole", "cropped"):
            torch.testing.assert_close(r["embeddings"][how], alone[how], atol=1e-5, rtol=0)
    assert torch.equal(ranks[0]["embeddings"]["whole"][10], ranks[0]["embeddings"]["whole"][3])
    assert alone["clips_here"] == 10 and [int(r["embeddings"]["clips_here"]) for r in ranks] == [5, 5]


def test_only_rank_zero_writes_checkpoints_and_results(two_processes):
    out, _ = two_processes
    for case in ddp_job.CASES:
        assert (out / f"checkpoint-rank0-{case}.pt").exists()
        assert not (out / f"checkpoint-rank1-{case}.pt").exists()
    assert (out / "results-rank0" / "ddp_job.json").exists()
    assert not (out / "results-rank1").exists()


def test_the_sharded_sampler_deals_a_single_process_batches_in_order():
    batches = list(BatchSampler(SequentialSampler(range(24)), batch_size=7, drop_last=False))
    parts = [list(distributed.ShardedBatchSampler(batches, r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    for step, batch in enumerate(batches):
        assert parts[0][step] + parts[1][step] + parts[2][step] == batch
    assert [len(parts[r][0]) for r in range(3)] == [3, 2, 2]
    short = list(BatchSampler(SequentialSampler(range(23)), batch_size=7, drop_last=False))  # last batch: 2
    with pytest.raises(ValueError, match="a batch of 2 items cannot be split between 3 processes"):
        next(iter(distributed.ShardedBatchSampler(short, 0, 3)))


def test_shard_cuts_every_tensor_and_keeps_the_rest():
    batch = {"task": "sv", "wave": torch.arange(10).view(5, 2), "label": torch.arange(5)}
    first, second = distributed.shard(batch, 0, 2), distributed.shard(batch, 1, 2)
    assert first["task"] == second["task"] == "sv"
    assert first["label"].tolist() == [0, 1, 2] and second["label"].tolist() == [3, 4]
    assert torch.equal(torch.cat([first["wave"], second["wave"]]), batch["wave"])


def test_bad_batches_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="cannot be split between 4 processes"):
        distributed.slice_bounds(3, 0, 4)
    with pytest.raises(ValueError, match="needs 5 items along dim 0"):
        distributed.shard((torch.zeros(5, 2), torch.zeros(4)), 0, 2)
    with pytest.raises(ValueError, match="without tensors"):
        distributed.shard(["a", "b"], 0, 2)


def test_a_launcher_half_set_up_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="RANK, MASTER_ADDR, MASTER_PORT unset"):
        distributed.init()


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
