"""One training loop for every notebook: progress bar, seeding, device, gradient clipping, scheduler,
per-term loss history, and checkpoint save/resume.

The notebook supplies ``loss_fn(batch) -> loss`` or ``(loss, {"term": value, ...})``; ``fit`` does the
rest. Each epoch reseeds torch with ``seed + epoch``, so a run resumed from its checkpoint takes the same
steps as an uninterrupted one (with ``num_workers=0`` loaders). Started by ``torchrun`` or ``accelerate launch``
on several processes, ``fit`` trains data-parallel with the same global batch (:mod:`kdlib.train.distributed`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from kdlib.train import distributed

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""What :func:`fit`'s ``precision`` accepts, and the dtype autocast computes in."""


class _Objective(nn.Module):
    """The model with its loss as ``forward``, so that DistributedDataParallel sees the loss computed."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(batch)


class History(dict):
    """Loss terms per step: ``history["loss"]``, ``history["epoch"]``, and whatever ``loss_fn`` returned."""

    def log(self, **values) -> None:
        for key, value in values.items():
            self.setdefault(key, []).append(float(value))

    def epoch_means(self, key: str = "loss") -> list[float]:
        means: dict[int, list[float]] = {}
        for e, v in zip(self["epoch"], self[key]):
            means.setdefault(int(e), []).append(v)
        return [sum(v) / len(v) for _, v in sorted(means.items())]


def _to(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def lr_factor(step: int, total: int, warmup_steps: int = 0, schedule: str = "cosine") -> float:
    """The learning rate at ``step`` as a fraction of the peak: a linear warm-up over ``warmup_steps``, then
    constant (``schedule="constant"``) or a cosine decay to 0 at step ``total``:
    ``0.5 · (1 + cos(π · (step − warmup) / (total − warmup)))``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress_frac = (step - warmup_steps) / max(1, total - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac)))


class _MixedPrecision:
    """``precision`` (fp32, bf16, fp16) as two pieces of the step: the forward pass under ``torch.autocast``,
    and, for fp16, a ``GradScaler`` around backward and the optimizer step (a no-op otherwise)."""

    def __init__(self, precision: str | None, device: str):
        precision = precision or os.environ.get("KDLIB_PRECISION") or "fp32"
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r} (KDLIB_PRECISION?)")
        device_type = torch.device(device).type
        if precision == "fp16" and device_type != "cuda":
            raise ValueError(f"precision 'fp16' needs a GPU (training on {device}); use 'bf16' or 'fp32'")
        self.autocast = torch.autocast(device_type, dtype=PRECISIONS[precision], enabled=precision != "fp32")
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def forward(self, objective: Callable, batch) -> tuple[torch.Tensor, dict]:
        with self.autocast:
            out = objective(batch)
        return out if isinstance(out, tuple) else (out, {})


class _OneProcess:
    """Training in this process alone: the objective is ``loss_fn``, the step's loss is the loss."""

    def __init__(self, loss_fn: Callable):
        self.objective, self.outside = loss_fn, []

    def shard(self, loader):
        return loader

    def reduce(self, loss: torch.Tensor, terms: dict, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        return loss, loss, dict(terms)


class _DataParallel:
    """Training on several processes (:mod:`kdlib.train.distributed`): each rank takes its slice of every batch,
    DistributedDataParallel averages the model's gradients, parameters outside the model (a loss head given
    through the optimizer) are averaged here, and the logged values are global means."""

    def __init__(self, model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, device: str):
        from torch.nn.parallel import DistributedDataParallel

        in_model = {id(p) for p in model.parameters()}
        self.outside = [
            p for g in optimizer.param_groups for p in g["params"] if p.requires_grad and id(p) not in in_model
        ]
        self.objective = DistributedDataParallel(
            _Objective(model, loss_fn),
            device_ids=[device] if device.startswith("cuda") else None,
            find_unused_parameters=True,
        )

    def shard(self, loader):
        return distributed.sharded(loader)

    def reduce(self, loss: torch.Tensor, terms: dict, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(the loss to back-propagate, weighted by this rank's share of the batch; the global mean loss; the
        global means of the terms)."""
        items = distributed.batch_size(batch) or 1
        keys = sorted(terms)
        values = torch.stack(
            [loss.detach().float()] + [torch.as_tensor(terms[k], dtype=torch.float32, device=loss.device) for k in keys]
        )
        means, global_items = distributed.global_means(values, items)
        return loss * (items * distributed.world_size() / global_items), means[0], dict(zip(keys, means[1:].tolist()))


class _Checkpoint:
    """The training state after every epoch (model, optimizer, scheduler, history, epoch) in one file, written
    atomically; ``path=None``: nothing is saved or resumed."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def resume(self, model, optimizer, scheduler, history: History, device: str) -> int | None:
        """Load the saved state into the arguments; the epoch it was saved after, or None when there is none."""
        if not (self.path and self.path.exists()):
            return None
        state = torch.load(self.path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history.update(state["history"])
        return state["epoch"]

    def save(self, model, optimizer, scheduler, history: History, epoch: int) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": dict(history),
                "epoch": epoch,
            },
            tmp,
        )
        os.replace(tmp, self.path)


def _backward_and_step(
    loss, optimizer, scheduler, scaler, clipped: list, grad_clip: float | None, outside: list
) -> None:
    """Gradients of ``loss`` (scaled for fp16), averaged over processes for the parameters outside the
    DDP-wrapped model, clipped to a global norm of ``grad_clip``; then the optimizer and the schedule take a step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    distributed.average_gradients(outside)
    scaler.unscale_(optimizer)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(clipped, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def fit(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    grad_clip: float | None = 5.0,
    device: str | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    max_steps_per_epoch: int | None = None,
    desc: str = "",
    precision: str | None = None,
) -> History:
    """Train ``model`` with ``loss_fn`` over ``loader`` for ``epochs``; return the loss history.

    ``loss_fn`` receives each batch already moved to ``device`` (kdlib's rule: the accelerator the model sits
    on, else :func:`kdlib.runtime.device`). ``optimizer`` defaults to AdamW over the
    trainable parameters of ``model`` (include a loss head's parameters by making it a submodule, or pass
    your own optimizer). ``schedule``: "cosine" (with linear warm-up) or "constant" (:func:`lr_factor`). With
    ``checkpoint``, the state is saved after every epoch and, if ``resume``, a run picks up where a previous one
    stopped. ``desc`` labels the progress bar and the epoch lines (what is being trained). ``precision``: "fp32",
    or mixed precision under ``torch.autocast``, "bf16" (GPUs since Ampere, recent CPUs) or "fp16" (GPUs; the loss
    is scaled by a ``GradScaler`` so that small gradients do not flush to zero); None (default) reads
    ``$KDLIB_PRECISION`` (unset: "fp32"), so that a whole notebook trains in bf16 with
    ``KDLIB_PRECISION=bf16`` and no change to its code.

    Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) each process trains on its slice of every
    batch of ``loader``, which is the global batch; gradients are averaged by DDP, the history holds global
    means, and only rank 0 shows progress and writes the checkpoint (:mod:`kdlib.train.distributed`).
    """
    from kdlib.progress import bar as progress_bar
    from kdlib.runtime import resolve_device

    parallel = distributed.init()
    main = distributed.is_main()
    progress = progress and main
    device = resolve_device(model, device or (distributed.device() if parallel else None))
    label = f"{desc}: " if desc else ""
    mixed = _MixedPrecision(precision, device)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = min(len(loader), max_steps_per_epoch or math.inf)  # type: ignore[arg-type]
    total = max(1, int(epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup_steps, schedule)
    )
    history, store = History(), _Checkpoint(checkpoint)
    done = store.resume(model, optimizer, scheduler, history, device) if resume else None
    if done is not None and progress:
        print(f"resumed from {store.path} after epoch {done + 1}/{epochs}")
    processes = _DataParallel(model, loss_fn, optimizer, device) if parallel else _OneProcess(loss_fn)
    clipped = trainable + processes.outside  # a head outside the model is clipped with it when data-parallel
    loader = processes.shard(loader)

    for epoch in range(0 if done is None else done + 1, epochs):
        torch.manual_seed(seed + epoch)
        model.train()
        bar = progress_bar(
            total=steps_per_epoch, desc=f"{label}epoch {epoch + 1}/{epochs}", unit="step", disable=not progress
        )
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            loss, terms = mixed.forward(processes.objective, _to(batch, device))
            loss, shown, terms = processes.reduce(loss, terms, batch)
            if not torch.isfinite(shown):
                raise FloatingPointError(f"loss became {shown.item()} at epoch {epoch + 1}, step {step}")
            _backward_and_step(loss, optimizer, scheduler, mixed.scaler, clipped, grad_clip, processes.outside)
            history.log(
                epoch=epoch,
                loss=shown.item(),
                lr=optimizer.param_groups[0]["lr"],
                **{k: (v.item() if torch.is_tensor(v) else v) for k, v in terms.items()},
            )
            bar.update()
            bar.set_postfix(loss=f"{shown.item():.3f}")
        bar.close()
        if progress:
            print(f"{label}epoch {epoch + 1}/{epochs}: mean loss {history.epoch_means()[-1]:.4f}")
        if main:
            store.save(model, optimizer, scheduler, history, epoch)
    model.eval()
    return history
