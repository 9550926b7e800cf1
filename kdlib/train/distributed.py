"""Data-parallel training under an existing launcher: one process per device, started by ``torchrun`` or
``accelerate launch``; :func:`kdlib.train.fit` notices and needs no change.

    torchrun --nproc-per-node 4 train_script.py                   # one machine, 4 GPUs
    accelerate launch --multi_gpu --num_processes 4 train_script.py

Both launchers set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. When
``WORLD_SIZE`` is above 1, ``fit``:

- joins the process group (NCCL on GPUs, gloo on CPUs) and puts each process on GPU ``LOCAL_RANK``;
- splits every *global* batch (the batch a single process would train on) between the processes. A
  ``DataLoader`` over a map-style dataset gets a :class:`ShardedBatchSampler`: every rank draws the same
  batches as a single process (same seed, same order) and loads only its slice. Any other iterable of batches
  (cached tensor banks, task alternation) is read whole by every rank, which keeps its slice (:func:`shard`);
- averages gradients with ``DistributedDataParallel``, each rank's loss weighted by its share of the global
  batch, so that a step is a single-process step on the whole global batch for losses that are means over
  items (a loss over the batch as a whole, e.g. a batch-level similarity matrix, sees each rank's slice only);
- logs global-batch means, so every rank holds the same history; progress bars, prints, checkpoints and
  results files come from rank 0 only (:func:`is_main`).

Random crops: the data order repeats a single process's exactly; the crops a rank draws come from its own
stream (the epoch's seed, offset by the rank), so they repeat for a given seed and number of processes.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, Sampler


def requested() -> bool:
    """True when a launcher started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True once this process belongs to a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init() -> bool:
    """Join the launcher's process group if one was requested and not yet joined; return :func:`active`.
    Backend: NCCL when GPUs are visible, else gloo."""
    if requested() and not (dist.is_available() and dist.is_initialized()):
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} unset: start "
                "the script with torchrun or accelerate launch, which set them"
            )
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend, init_method="env://")
        atexit.register(leave)
        if is_main():
            print(
                f"kdlib: data-parallel over {world_size()} processes ({backend}); each global batch is split "
                "between them",
                flush=True,
            )
    return active()


def leave(wait_for_all: bool = False) -> None:
    """Leave the process group (registered at exit by :func:`init`; a script may call it once its collective work
    is over). A group left to the interpreter's teardown can abort a process after its work is done (gloo's
    threads: "terminate called without an active exception"). ``wait_for_all``: first wait at a barrier until
    every rank is here, so that no rank closes its connections while another still reads from them."""
    if dist.is_available() and dist.is_initialized():
        if wait_for_all and active():
            dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``), which picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes: rank 0, or the only process."""
    return rank() == 0


def device() -> str:
    """The device of this process when distributed: ``cuda:<LOCAL_RANK>`` with GPUs, else ``cpu``."""
    return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"


def slice_bounds(n: int, rank_: int, world: int) -> tuple[int, int]:
    """The items ``[start, stop)`` of a batch of ``n`` that rank ``rank_`` of ``world`` takes: contiguous,
    sizes differing by at most one. Raises when a rank would get nothing (fewer items than processes)."""
    if n < world:
        raise ValueError(
            f"a batch of {n} items cannot be split between {world} processes; use a batch size of "
            f"at least {world} (and drop_last=True if the last batch can be smaller)"
        )
    base, extra = divmod(n, world)
    start = rank_ * base + min(rank_, extra)
    return start, start + base + (1 if rank_ < extra else 0)


def shard(batch, rank_: int | None = None, world: int | None = None):
    """This rank's slice of a global batch: every tensor is cut along dim 0 (all must share its length);
    strings, numbers and other values are kept whole. Recurses into tuples, lists and dicts."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    n = batch_size(batch)
    if n is None:
        raise ValueError(f"cannot split a batch without tensors between processes: {type(batch).__name__}")
    start, stop = slice_bounds(n, rank_, world)

    def cut(value):
        if isinstance(value, torch.Tensor):
            if value.dim() == 0 or len(value) != n:
                raise ValueError(
                    f"every tensor of a batch needs {n} items along dim 0 to be split between "
                    f"processes; got shape {tuple(value.shape)}"
                )
            return value[start:stop]
        if isinstance(value, (list, tuple)):
            return type(value)(cut(v) for v in value)
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    return cut(batch)


def batch_size(batch) -> int | None:
    """Items in a batch: the length of its first tensor (depth first), None without tensors."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() else None
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        n = batch_size(value)
        if n is not None:
            return n
    return None


class ShardedBatchSampler(Sampler):
    """Deals rank ``rank_`` its contiguous slice of each batch that ``batch_sampler`` draws.

    Every rank draws the same batches (the global generator is seeded alike on all of them), so the ranks'
    slices together are exactly a single process's batches, in the same order. Then the global generator is
    reseeded per rank, so that the random crops of different ranks differ."""

    def __init__(self, batch_sampler, rank_: int, world: int):
        self.batch_sampler, self.rank, self.world = batch_sampler, rank_, world

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        batches = [list(b) for b in self.batch_sampler]
        bounds = [slice_bounds(len(b), self.rank, self.world) for b in batches]  # refuse before the first step
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) + 1_000_003 * self.rank)
        for b, (start, stop) in zip(batches, bounds):
            yield b[start:stop]


def _worker_init(rank_: int, inner):
    def init_fn(worker_id: int) -> None:
        torch.manual_seed(torch.initial_seed() + 1_000_003 * rank_)
        if inner is not None:
            inner(worker_id)

    return init_fn


class Shards:
    """An iterable of batches read whole by every rank, each keeping its slice (:func:`shard`)."""

    def __init__(self, batches, rank_: int, world: int):
        self.batches, self.rank, self.world = batches, rank_, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return (shard(b, self.rank, self.world) for b in self.batches)


def sharded(loader, rank_: int | None = None, world: int | None = None):
    """``loader`` as this rank sees it: a ``DataLoader`` over a map-style dataset is rebuilt around a
    :class:`ShardedBatchSampler` (each rank loads only its items); anything else becomes :class:`Shards`."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    if (
        isinstance(loader, DataLoader)
        and not isinstance(loader.dataset, IterableDataset)
        and loader.batch_sampler is not None
    ):
        return DataLoader(
            loader.dataset,
            batch_sampler=ShardedBatchSampler(loader.batch_sampler, rank_, world),
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=_worker_init(rank_, loader.worker_init_fn) if loader.num_workers else None,
            persistent_workers=loader.persistent_workers,
            generator=loader.generator,
        )
    return Shards(loader, rank_, world)


def global_means(values: torch.Tensor, items: int) -> tuple[torch.Tensor, int]:
    """Item-weighted means over all ranks of per-rank means ``values`` (a 1-D tensor), each rank holding
    ``items`` items; returns the means and the global batch size. The identity when not distributed."""
    if not active():
        return values, items
    packed = torch.cat([values.detach().double() * items, values.new_tensor([items], dtype=torch.float64)])
    dist.all_reduce(packed)
    total = int(packed[-1].item())
    return (packed[:-1] / total).to(values.dtype), total


def average_gradients(params) -> None:
    """Average the gradients of ``params`` over ranks (for parameters outside the DDP-wrapped model)."""
    if not active():
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def gather(keys: list, rows: torch.Tensor | None) -> dict:
    """Every rank's ``{key: row}`` merged, rows on the CPU (``rows``: one per key, or None for no keys);
    the local pairs alone when not distributed. How evaluation split between processes comes together."""
    local = (keys, rows.cpu() if rows is not None else None)
    parts = [local]
    if active():
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
    merged = {}
    for part_keys, part_rows in parts:
        if part_rows is not None:
            merged.update(zip(part_keys, part_rows))
    return merged
