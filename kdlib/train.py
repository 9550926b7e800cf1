"""One training loop for every notebook: progress bar, seeding, device, gradient clipping, scheduler,
per-term loss history, and checkpoint save/resume.

The notebook supplies ``loss_fn(batch) -> loss`` or ``(loss, {"term": value, ...})``; ``fit`` does the
rest. Each epoch reseeds torch with ``seed + epoch``, so a run resumed from its checkpoint takes the same
steps as an uninterrupted one (with ``num_workers=0`` loaders). Started by ``torchrun`` or ``accelerate launch``
on several processes, ``fit`` trains data-parallel with the same global batch (:mod:`kdlib.distributed`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn


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


def fit(model: nn.Module, loader: Iterable, loss_fn: Callable, *, epochs: int, lr: float = 1e-3,
        weight_decay: float = 0.0, optimizer: torch.optim.Optimizer | None = None, schedule: str = "cosine",
        warmup_steps: int = 0, grad_clip: float | None = 5.0, device: str | None = None, seed: int = 0,
        checkpoint: str | Path | None = None, resume: bool = True, progress: bool = True,
        max_steps_per_epoch: int | None = None, desc: str = "", precision: str | None = None) -> History:
    """Train ``model`` with ``loss_fn`` over ``loader`` for ``epochs``; return the loss history.

    ``loss_fn`` receives each batch already moved to ``device`` (kdlib's rule: the accelerator the model sits
    on, else :func:`kdlib.config.device`). ``optimizer`` defaults to AdamW over the
    trainable parameters of ``model`` (include a loss head's parameters by making it a submodule, or pass
    your own optimizer). ``schedule``: "cosine" (with linear warm-up) or "constant". With ``checkpoint``,
    the state is saved after every epoch and, if ``resume``, a run picks up where a previous one stopped.
    ``desc`` labels the progress bar and the epoch lines (what is being trained). ``precision``: "fp32", or
    mixed precision under ``torch.autocast``, "bf16" (GPUs since Ampere, recent CPUs) or "fp16" (GPUs; the loss
    is scaled by a ``GradScaler`` so that small gradients do not flush to zero); None (default) reads
    ``$KDLIB_PRECISION`` (unset: "fp32"), so that a whole notebook trains in bf16 with
    ``KDLIB_PRECISION=bf16`` and no change to its code.

    Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) each process trains on its slice of every
    batch of ``loader``, which is the global batch; gradients are averaged by DDP, the history holds global
    means, and only rank 0 shows progress and writes the checkpoint (:mod:`kdlib.distributed`).
    """
    from kdlib import distributed
    from kdlib.config import resolve_device
    from kdlib.progress import bar as progress_bar

    precision = precision or os.environ.get("KDLIB_PRECISION") or "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r} (KDLIB_PRECISION?)")
    parallel = distributed.init()
    main = distributed.is_main()
    progress = progress and main
    device = resolve_device(model, device or (distributed.device() if parallel else None))
    label = f"{desc}: " if desc else ""
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    outside = []  # trained but not in the model (a loss head given through the optimizer)
    if parallel:
        in_model = {id(p) for p in model.parameters()}
        outside = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad and id(p) not in in_model]
        params = params + outside
    steps_per_epoch = min(len(loader), max_steps_per_epoch or math.inf)  # type: ignore[arg-type]
    total = max(1, int(epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress_frac = (step - warmup_steps) / max(1, total - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    device_type = torch.device(device).type
    if precision == "fp16" and device_type != "cuda":
        raise ValueError(f"precision 'fp16' needs a GPU (training on {device}); use 'bf16' or 'fp32'")
    autocast = torch.autocast(device_type, dtype=PRECISIONS[precision], enabled=precision != "fp32")
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    history, start_epoch = History(), 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history.update(state["history"])
        start_epoch = state["epoch"] + 1
        if progress:
            print(f"resumed from {ckpt} after epoch {state['epoch'] + 1}/{epochs}")

    objective = loss_fn
    if parallel:
        from torch.nn.parallel import DistributedDataParallel

        loader = distributed.sharded(loader)
        wrapped = _Objective(model, loss_fn)
        objective = DistributedDataParallel(wrapped, device_ids=[device] if device.startswith("cuda") else None,
                                            find_unused_parameters=True)

    for epoch in range(start_epoch, epochs):
        torch.manual_seed(seed + epoch)
        model.train()
        bar = progress_bar(total=steps_per_epoch, desc=f"{label}epoch {epoch + 1}/{epochs}", unit="step",
                           disable=not progress)
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            with autocast:
                out = objective(_to(batch, device))
            loss, terms = out if isinstance(out, tuple) else (out, {})
            logged = dict(terms)
            if parallel:  # global means of the logged values; each rank's loss weighted by its share
                items = distributed.batch_size(batch) or 1
                keys = sorted(logged)
                values = torch.stack([loss.detach().float()] + [torch.as_tensor(logged[k], dtype=torch.float32,
                                                                                 device=loss.device) for k in keys])
                means, global_items = distributed.global_means(values, items)
                logged, global_loss = dict(zip(keys, means[1:].tolist())), means[0]
                loss = loss * (items * distributed.world_size() / global_items)
            else:
                global_loss = loss
            if not torch.isfinite(global_loss):
                raise FloatingPointError(f"loss became {global_loss.item()} at epoch {epoch + 1}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            distributed.average_gradients(outside)
            scaler.unscale_(optimizer)
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss = global_loss
            history.log(epoch=epoch, loss=loss.item(), lr=optimizer.param_groups[0]["lr"],
                        **{k: (v.item() if torch.is_tensor(v) else v) for k, v in logged.items()})
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        if progress:
            print(f"{label}epoch {epoch + 1}/{epochs}: mean loss {history.epoch_means()[-1]:.4f}")
        if ckpt and main:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "history": dict(history), "epoch": epoch}, tmp)
            os.replace(tmp, ckpt)
    model.eval()
    return history
