"""Training jobs shared by tests/test_distributed.py: run in the test's own process (one process) and under
``torchrun --nproc-per-node 2`` (``python tests/ddp_job.py OUT``), which saves each rank's history and weights
to ``OUT/rank<r>.pt``. Not a test module itself (no ``test_`` prefix)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kdlib import train
from kdlib.course import results
from kdlib.data.datasets import BucketBatches

CASES = ("dataloader", "buckets")


def data(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 6, generator=g)
    return x, torch.tanh(x @ torch.randn(6, 2, generator=g)) + 0.1 * torch.randn(n, 2, generator=g)


def run(case: str, checkpoint: Path | None = None) -> tuple[dict, dict]:
    """Train a small net for 3 epochs; return its history and final weights (the head included)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    offset = nn.Parameter(torch.zeros(2))  # trained through the optimizer, outside the model
    x, y = data()
    if case == "dataloader":  # global batch 7 of 30 items: shards of 4 + 3, and 1 + 1 for the last batch
        loader = DataLoader(TensorDataset(x, y), batch_size=7, shuffle=True)
        unpack = lambda b: b  # noqa: E731
    else:  # an iterable of dicts (cached tensor banks), global batch 8
        loader = BucketBatches({"all": {"x": x, "y": y}}, batch_size=8, seed=3)
        unpack = lambda b: (b["x"], b["y"])  # noqa: E731

    def loss_fn(batch):
        inputs, targets = unpack(batch)
        mse = ((net(inputs) + offset - targets) ** 2).mean()
        return mse, {"mse": mse.detach(), "constant": 1.0}

    optimizer = torch.optim.AdamW([*net.parameters(), offset], lr=2e-2)
    history = train.fit(
        net, loader, loss_fn, epochs=3, optimizer=optimizer, seed=5, progress=False, checkpoint=checkpoint
    )
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    weights["offset"] = offset.detach().clone()
    return dict(history), weights


def embeddings() -> dict[str, torch.Tensor]:
    """A small seeded ECAPA-TDNN's embeddings of 11 smoke-corpus sentences (one repeated), whole and cropped,
    and how many whole clips this process embedded."""
    from kdlib.data import corpus
    from kdlib.evaluation import verification
    from kdlib.models import speaker_model

    data = corpus.load("smoke")
    paths = [r["path"] for r in data.select("test", "sentence")[:10]]
    paths.append(paths[3])
    torch.manual_seed(0)
    model = speaker_model("ecapa_tdnn", channels=16, embed_dim=8)
    clips = []  # the clips this process ran its front end on
    model.frontend.register_forward_hook(lambda module, args, out: clips.append(args[0].shape[0]))
    whole = verification.embed(model, data, paths, progress=False)
    return {
        "whole": whole,
        "clips_here": torch.tensor(len(clips)),
        "cropped": verification.embed(model, data, paths, seconds=1.0, progress=False),
    }


if __name__ == "__main__":
    from kdlib.train import distributed

    out = Path(sys.argv[1])
    distributed.init()
    rank = distributed.rank()

    def reached(stage: str) -> None:  # on stdout, so that a failed run shows how far each rank got
        print(f"rank {rank}: {stage}", flush=True)

    saved = {}
    for case in CASES:
        saved[case] = run(case, out / f"checkpoint-rank{rank}-{case}.pt")
        reached(f"trained ({case})")
    results.save("ddp_job", seed=5, wall_time_s=0.0, models={}, out_dir=out / f"results-rank{rank}")
    embedded = embeddings()
    reached("embedded")
    torch.save({"world_size": distributed.world_size(), "cases": saved, "embeddings": embedded}, out / f"rank{rank}.pt")
    reached("saved")
    distributed.leave(wait_for_all=True)
    reached("left the process group")
