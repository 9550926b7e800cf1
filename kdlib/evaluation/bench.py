"""Size and speed measurements: parameter counts, bytes of the serialized weights, CPU latency."""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of a state dict serialized as safetensors (what a checkpoint on disk weighs)."""
    from safetensors.torch import save

    # safetensors refuses tensors that share memory; clone those.
    seen, clean = set(), {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        ptr = value.data_ptr()
        clean[key] = value.clone() if ptr in seen and value.numel() else value
        seen.add(ptr)
    return len(save(clean))


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict serialized as safetensors."""
    return state_bytes(model.state_dict())


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``, for models safetensors cannot hold (quantized int8 modules)."""
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


@torch.inference_mode()
def cpu_latency_ms(
    model: nn.Module, example: torch.Tensor, warmup: int = 3, repeats: int = 10, threads: int = 1
) -> float:
    """Median wall time in milliseconds of ``model(example)`` on the CPU with ``threads`` threads, after warm-up.

    The model is copied to the CPU in eval mode; the caller's model is left untouched.
    """
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = example.cpu()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _median_ms(lambda: cpu_model(example), warmup, repeats)
    finally:
        torch.set_num_threads(old_threads)


def _median_ms(call, warmup: int, repeats: int, sync=lambda: None) -> float:
    """Median wall time in milliseconds of ``call()`` over ``repeats`` runs after ``warmup`` untimed ones;
    ``sync`` runs before and after each timed call (waits for a GPU's queued work)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model: nn.Module, example: torch.Tensor, **latency_kwargs) -> dict:
    """``params``, ``bytes`` and ``latency_ms`` of a model, the size/speed part of a results entry."""
    return {
        "params": count_params(model),
        "bytes": model_bytes(model),
        "latency_ms": round(cpu_latency_ms(model, example, **latency_kwargs), 3),
    }


@torch.inference_mode()
def cuda_latency_ms(model: nn.Module, example: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time in milliseconds of ``model(example)`` on the GPU (synchronised before and after each
    call), after warm-up; the model is copied there in eval mode, the caller's left untouched."""
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_latency_ms needs a CUDA GPU; none is visible")
    gpu_model = copy.deepcopy(model).cuda().eval()
    example = example.cuda()
    return _median_ms(lambda: gpu_model(example), warmup, repeats, sync=torch.cuda.synchronize)


def reductions(rows: list[dict]) -> list[dict]:
    """What compression saves, per architecture: each ``student`` row against its architecture's ``teacher`` row.

    A row has ``architecture``, ``role`` (``"teacher"`` or ``"student"``), ``layers``, ``ssl_params``,
    ``system_params``, ``ssl_cpu_ms`` and optionally ``ssl_gpu_ms``. Each reduction is ``100·(1 − student/teacher)``
    (percent of the teacher's value): system size, SSL size, SSL CPU time, and SSL GPU time where both rows have it.
    Architectures keep their first appearance's order; an architecture without a teacher row is an error."""
    out = []
    for arch in dict.fromkeys(r["architecture"] for r in rows):
        group = [r for r in rows if r["architecture"] == arch]
        teachers = [r for r in group if r["role"] == "teacher"]
        if not teachers:
            raise ValueError(f"{arch}: no teacher row to compare its students with")
        t = teachers[0]
        cut = lambda key, s: 100 * (1 - s[key] / t[key])  # noqa: E731 - a one-line formula
        for s in (r for r in group if r["role"] == "student"):
            row = {
                "architecture": arch,
                "student layers": f"{s['layers']} of {t['layers']}",
                "teacher system params (M)": t["system_params"] / 1e6,
                "student system params (M)": s["system_params"] / 1e6,
                "system size reduction %": cut("system_params", s),
                "SSL size reduction %": cut("ssl_params", s),
                "SSL CPU time reduction %": cut("ssl_cpu_ms", s),
                "teacher SSL CPU ms": t["ssl_cpu_ms"],
                "student SSL CPU ms": s["ssl_cpu_ms"],
            }
            if s.get("ssl_gpu_ms") is not None and t.get("ssl_gpu_ms") is not None:
                row["SSL GPU time reduction %"] = cut("ssl_gpu_ms", s)
            out.append(row)
    return out
