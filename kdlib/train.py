"""One training loop for every notebook: progress bar, seeding, device, gradient clipping, scheduler,
per-term loss history, and checkpoint save/resume.

The notebook supplies ``loss_fn(batch) -> loss`` or ``(loss, {"term": value, ...})``; ``fit`` does the
rest. Each epoch reseeds torch with ``seed + epoch``, so a run resumed from its checkpoint takes the same
steps as an uninterrupted one (with ``num_workers=0`` loaders).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn


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
        max_steps_per_epoch: int | None = None, desc: str = "") -> History:
    """Train ``model`` with ``loss_fn`` over ``loader`` for ``epochs``; return the loss history.

    ``loss_fn`` receives each batch already moved to ``device`` (kdlib's rule: the accelerator the model sits
    on, else :func:`kdlib.config.device`). ``optimizer`` defaults to AdamW over the
    trainable parameters of ``model`` (include a loss head's parameters by making it a submodule, or pass
    your own optimizer). ``schedule``: "cosine" (with linear warm-up) or "constant". With ``checkpoint``,
    the state is saved after every epoch and, if ``resume``, a run picks up where a previous one stopped.
    ``desc`` labels the progress bar and the epoch lines (what is being trained).
    """
    from kdlib.config import resolve_device
    from kdlib.progress import bar as progress_bar

    device = resolve_device(model, device)
    label = f"{desc}: " if desc else ""
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
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

    for epoch in range(start_epoch, epochs):
        torch.manual_seed(seed + epoch)
        model.train()
        bar = progress_bar(total=steps_per_epoch, desc=f"{label}epoch {epoch + 1}/{epochs}", unit="step",
                           disable=not progress)
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            out = loss_fn(_to(batch, device))
            loss, terms = out if isinstance(out, tuple) else (out, {})
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            scheduler.step()
            history.log(epoch=epoch, loss=loss.item(), lr=optimizer.param_groups[0]["lr"],
                        **{k: (v.item() if torch.is_tensor(v) else v) for k, v in terms.items()})
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        if progress:
            print(f"{label}epoch {epoch + 1}/{epochs}: mean loss {history.epoch_means()[-1]:.4f}")
        if ckpt:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "history": dict(history), "epoch": epoch}, tmp)
            os.replace(tmp, ckpt)
    model.eval()
    return history
