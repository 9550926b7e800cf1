"""Training throughput at the papers' scale, and what a full-scale run would cost:
``python -m kdlib.course.throughput``.

It times DistilHuBERT distillation (Chang, Yang and Lee, ICASSP 2022, arXiv 2110.01900) of a randomly
initialised model of a published architecture (HuBERT Base by default, :func:`kdlib.models.ssl.paper_scale_ssl`)
into its 2-layer student with three prediction heads, online (the teacher runs on every batch), through
:func:`kdlib.train.fit`: the same loop, precision and data-parallel code the notebooks use. Audio is random
noise: speed does not depend on content. The time per training item then gives estimates for the papers'
budgets (:data:`BUDGETS`), stated as estimates: data loading from disk, evaluation and checkpointing are not in
them.

    python -m kdlib.course.throughput --batch 8 --seconds 4 --steps 5              # here: CPU
    python -m kdlib.course.throughput --batch 24 --precision bf16 --steps 50       # one GPU
    torchrun --nproc-per-node 4 -m kdlib.course.throughput --batch 96 --steps 50   # global batch over 4 GPUs
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

BUDGETS = {
    "DistilHuBERT: 200,000 steps x 24 LibriSpeech utterances (17.1 passes over 960 h)": (200_000 * 24, 12.3),
    "OS-KDFT, later code: VoxCeleb1-dev, 148,642 utterances x 100 epochs, 3 s crops": (148_642 * 100, 3.0),
    "OS-KDFT, paper: VoxCeleb2-dev, 1,092,009 utterances x 100 epochs, 2 s crops": (1_092_009 * 100, 2.0),
}
"""Full-scale budgets as (training items, seconds of audio per item), from the papers and the OS-KDFT code
(LibriSpeech 960 h: 281,241 utterances, 12.3 s on average). An estimate divides the audio by the measured
audio seconds per second, i.e. assumes cost proportional to audio length, and counts one DistilHuBERT step per
item: OS-KDFT's student runs twice per item (two branches) and adds a backend, so its estimates are lower
bounds; the paper's own teacher (XLSR-53, 24 layers of width 1024) with its 4-layer student measured 2.0 times
the time of HuBERT Base with 2 layers on a 2-core CPU."""


class _Distiller(nn.Module):
    def __init__(self, teacher: nn.Module, student: nn.Module, layers: tuple[int, ...]):
        from kdlib.models.heads import PredictionHeads

        super().__init__()
        self.teacher, self.student, self.layers = teacher.requires_grad_(False).eval(), student, layers
        self.heads = PredictionHeads(student.config.hidden_size, len(layers))

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen: no layer drop, all hidden states
        return self

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
        from kdlib.kd import losses

        with torch.no_grad():
            hidden = self.teacher(batch, output_hidden_states=True).hidden_states
            targets = torch.stack([hidden[i] for i in self.layers], dim=1)
        predictions = self.heads(self.student(batch).last_hidden_state)
        frames = min(predictions.shape[2], targets.shape[2])
        loss, parts = losses.distilhubert(predictions[:, :, :frames].float(), targets[:, :, :frames].float())
        return loss, parts


class _Clock:
    """Batches of random audio that note when each is asked for (after the previous step has finished)."""

    def __init__(self, batch: int, samples: int, steps: int, device: str):
        self.batch, self.samples, self.steps, self.device, self.times = batch, samples, steps, device, []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(self.steps):
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            yield 0.1 * torch.randn(self.batch, self.samples, generator=g)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def measure(
    teacher: str = "hubert-base-ls960",
    student_layers: int = 2,
    batch: int = 8,
    seconds: float = 4.0,
    steps: int = 5,
    warmup: int = 2,
    precision: str | None = "fp32",
    device: str | None = None,
) -> dict:
    """Seconds per DistilHuBERT training step (``batch`` crops of ``seconds``; the global batch when
    data-parallel), the median over ``steps`` timed steps after ``warmup`` untimed ones, and the derived
    items and audio seconds per second."""
    from kdlib import train
    from kdlib.evaluation.bench import count_params
    from kdlib.kd.layers import distil_layers
    from kdlib.models.ssl import make_student, paper_scale_ssl
    from kdlib.runtime import resolve_device
    from kdlib.train import distributed

    if steps < 1 or warmup < 0:
        raise ValueError(f"need at least one timed step and no negative warm-up, got {steps} and {warmup}")
    torch.manual_seed(0)
    big = paper_scale_ssl(teacher)
    student = make_student(big, student_layers)
    student.config.layerdrop, student.config.mask_time_prob = 0.0, 0.0  # DistilHuBERT neither drops nor masks
    distiller = _Distiller(big, student, distil_layers(big.config.num_hidden_layers))
    parallel = distributed.init()
    device = device or (distributed.device() if parallel else resolve_device(None))
    clock = _Clock(batch, int(seconds * 16_000), warmup + steps, device)
    train.fit(
        distiller,
        clock,
        distiller.loss,
        epochs=1,
        lr=2e-4,
        device=device,
        progress=False,
        precision=precision,
        desc="throughput",
    )
    per_step = sorted(b - a for a, b in zip(clock.times[warmup:-1], clock.times[warmup + 1 :]))
    seconds_per_step = per_step[len(per_step) // 2]
    return {
        "teacher": teacher,
        "student_layers": student_layers,
        "batch": batch,
        "crop_seconds": seconds,
        "precision": precision,
        "device": device,
        "processes": distributed.world_size(),
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "teacher_params": count_params(big),
        "student_params": count_params(distiller.student),
        "timed_steps": steps,
        "seconds_per_step": seconds_per_step,
        "items_per_second": batch / seconds_per_step,
        "audio_seconds_per_second": batch * seconds / seconds_per_step,
    }


def estimates(result: dict) -> dict[str, float]:
    """Hours of the measured setup for each of :data:`BUDGETS`: items × seconds per item / audio seconds per
    second / 3600 (device hours: multiply by the processes for GPU hours when data-parallel)."""
    return {name: items * crop / result["audio_seconds_per_second"] / 3600 for name, (items, crop) in BUDGETS.items()}


def main(argv: list[str] | None = None) -> int:
    from kdlib.models.ssl import PAPER_SCALE
    from kdlib.train import PRECISIONS, distributed

    parser = argparse.ArgumentParser(prog="python -m kdlib.course.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="hubert-base-ls960", choices=sorted(PAPER_SCALE))
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="global batch (split between processes)")
    parser.add_argument("--seconds", type=float, default=4.0, help="crop length in seconds")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the measurement here")
    args = parser.parse_args(argv)
    result = measure(
        args.teacher, args.student_layers, args.batch, args.seconds, args.steps, args.warmup, args.precision
    )
    if distributed.is_main():
        result["estimated_hours"] = estimates(result)
        print(json.dumps(result, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
