"""How fast the notebooks' training loops run, against what the processor itself can do:
``python -m kdlib.course.benchmark``.

Each *workload* is one notebook's main training step at its full-mode knobs, built from the same kdlib parts and
run through the same loop (:func:`kdlib.train.fit`, the notebook's optimizer and clipping): notebook 00's ECAPA-TDNN,
01's OS-KDFT system (e), 02's IML-KD student, 03's ensemble student (layerwise average) and 04's distillation
(stage 1) and multi-task fine-tuning (stage 2). Frozen teachers' forward passes are timed as the notebooks call
them (hidden states of every layer, no gradient). Inputs are random tensors of the notebooks' shapes: the time of
a step does not depend on what the audio says.

For each it records the median seconds per step over ``--steps`` timed steps (after untimed warm-up steps), steps
and audio seconds per second, the floating-point operations of one step (forward and backward, as
:class:`torch.utils.flop_counter.FlopCounterMode` counts them: matrix products, convolutions and attention; not
element-wise work or the optimizer), the achieved GFLOP/s, and, **in the same process**, the machine's own
matrix-product speed at the workload's main product size (:data:`Workload.gemm`) and at 2048³. The *ratio*
achieved / machine-at-that-size says how much of the processor the loop uses.

    python -m kdlib.course.benchmark                              # reference numerics (AVX2, 2 threads), fp32
    python -m kdlib.course.benchmark --numerics native --precision bf16
    python -m kdlib.course.benchmark --only 01 03 --steps 5       # a quick look

Results go to ``results/benchmark/<numerics>-<precision>-<device>.json`` (``--out`` to choose);
``python -m kdlib.course.benchmark table FILE...`` prints them side by side as Markdown, and
``python -m kdlib.course.benchmark docs`` rewrites docs/performance.md's generated part from the committed ones in
``results/reference/benchmark/``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

LARGE = 2048
"""The side of the large square matrix product that stands for the processor's peak."""

N_SPEAKERS, N_KEYWORDS = 200, 12
"""The embedded corpus's training speakers and Speech Commands' 12 classes (the heads' sizes)."""


@dataclass
class Workload:
    """One training step to time. ``build()`` returns ``(model, loss_fn, batches, optimizer, fit_options)``:
    ``batches`` is a list cycled through (one item per step). ``gemm`` ``(M, K, N)`` is the matrix product that
    carries most of the step's work (rows = batch × frames, K and N the layer's widths), where the machine's own
    speed is measured."""

    key: str
    notebook: str
    what: str
    build: Callable[[], tuple]
    audio_seconds: float
    gemm: tuple[int, int, int]


def _ssl_student(teacher_name: str = "whisper-tiny.en", layers: int = 2):
    from kdlib import zoo
    from kdlib.models.ssl import make_student

    teacher = zoo.load(teacher_name).requires_grad_(False)
    return teacher, make_student(teacher, layers).requires_grad_(True)


def _ecapa_00():
    from kdlib.models.speaker import speaker_model

    model = speaker_model("ecapa_tdnn", N_SPEAKERS, 0.2, 30.0, channels=256, embed_dim=192)
    batches = [(0.1 * torch.randn(32, 32_000), torch.randint(0, N_SPEAKERS, (32,)))]
    return model, model.loss, batches, torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=2e-5), {}


def _oskdft_01():
    from kdlib.kd import os_kdft
    from kdlib.models import ECAPA_TDNN, AAMSoftmax, SpeakerModel
    from kdlib.models.ssl import add_adapters, freeze_stem, without_stem

    teacher, student = _ssl_student()
    freeze_stem(student)
    student.config.layerdrop = 0.0
    adapters = add_adapters(student, 64)
    dim, n_states = teacher.config.hidden_size, student.config.num_hidden_layers + 1
    encoder = os_kdft.MixedLayers(ECAPA_TDNN(128, 192, n_mels=dim, input_norm="batch"), n_states)
    backend = SpeakerModel(encoder, head=AAMSoftmax(192, N_SPEAKERS, margin=0.2, scale=30.0))
    objective = os_kdft.OneStepKDFT(
        without_stem(student),
        backend,
        regime="one_step",
        adapters=adapters,
        readout="layers",
        kd_target="mse",
        kd_weight=5.0,
        total_steps=300,
    )
    feats = _stems(teacher, 32, 1.0)
    batch = {
        "feats": feats,
        "label": torch.randint(0, N_SPEAKERS, (32,)),
        "targets": torch.randn(32, 1, feats.shape[-1], dim).half(),
    }
    optimizer = torch.optim.Adam(objective.param_groups(2e-4, 2e-3, 2e-3))
    return objective, objective.loss, [batch], optimizer, {"grad_clip": None}


def _imlkd_02():
    from kdlib.kd import losses
    from kdlib.models.speaker import speaker_model

    student = speaker_model("ecapa_tdnn", 120, 0.2, 30.0, frontend=False, channels=128, embed_dim=192)

    def loss_fn(batch):
        emb = student.encoder(batch["integrated"])
        aam, logits = student.head(emb, batch["label"])
        kd = losses.multi_level(logits, batch["t_logits_integrated"], losses.MLKD_TEMPERATURES)[0]
        return aam + kd, {"aam": aam, "kd": kd}

    batches = [
        {
            "integrated": torch.randn(32, 80, 100 * s + 1),
            "label": torch.randint(0, 120, (32,)),
            "t_logits_integrated": 10 * torch.randn(32, 120),
        }
        for s in (1, 2, 3)
    ]
    return student, loss_fn, batches, torch.optim.AdamW(student.parameters(), 2e-3, weight_decay=2e-5), {}


def _stems(teacher, batch: int, seconds: float) -> torch.Tensor:
    from kdlib.models.ssl import stem_output

    with torch.no_grad():
        wave = 0.1 * torch.randn(batch, int(seconds * 16_000))
        return stem_output(teacher, teacher.feature_extractor(wave)).transpose(1, 2)


def _distil(n_teachers: int):
    from kdlib.kd import ensemble
    from kdlib.kd.layers import distil_layers
    from kdlib.models.ssl import freeze_stem, without_stem

    teacher, student = _ssl_student()
    freeze_stem(student)
    dim, layers = teacher.config.hidden_size, distil_layers(teacher.config.num_hidden_layers, 3)
    distiller = ensemble.EnsembleDistiller(
        without_stem(student), ensemble.heads_for("average", dim, n_teachers, len(layers))
    )
    feats = _stems(teacher, 24, 1.0)
    batch = {"feats": feats, "targets": torch.randn(24, n_teachers, len(layers), feats.shape[-1], dim).half()}
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in student.parameters() if p.requires_grad], "lr": 1e-3},
            {"params": list(distiller.heads.parameters()), "lr": 4e-3},
        ],
        betas=(0.9, 0.98),
        weight_decay=1e-6,
    )
    return distiller, distiller.loss, [batch], optimizer, {"grad_clip": 5.0}


def _finetune_04():
    from kdlib.kd import multitask
    from kdlib.kd.layers import distil_layers
    from kdlib.models.heads import PredictionHeads
    from kdlib.models.ssl import freeze_stem, without_stem

    teacher, student = _ssl_student()
    dim, depth = teacher.config.hidden_size, student.config.num_hidden_layers
    heads = PredictionHeads(dim, len(distil_layers(teacher.config.num_hidden_layers, 3)))
    encoder = multitask.EncoderOutput(without_stem(freeze_stem(student)), heads, "layers")
    model = multitask.JointModel(
        encoder,
        encoder.width(dim),
        N_KEYWORDS,
        N_SPEAKERS,
        margin=0.2,
        scale=30.0,
        layers=encoder.representations(depth),
        standardise=True,
    )
    stems = _stems(teacher, 24, 1.0)
    batches = [
        {"task": "kws", "wave": stems, "label": torch.randint(0, N_KEYWORDS, (24,))},
        {"task": "sv", "wave": stems, "label": torch.randint(0, N_SPEAKERS, (24,))},
    ]
    optimizer = torch.optim.Adam(
        [
            {"params": [p for head in model.task_heads() for p in head.parameters()], "lr": 1e-3},
            {"params": [p for p in encoder.parameters() if p.requires_grad], "lr": 1e-4},
        ]
    )
    return model, model.loss, batches, optimizer, {"grad_clip": 5.0}


def _ssl_gemm(batch: int, seconds: float, dim: int) -> tuple[int, int, int]:
    """A transformer layer's feed-forward product: (batch × frames) × dim → 4·dim, at Whisper's 50 frames a
    second."""
    return batch * int(seconds * 50), dim, 4 * dim


WORKLOADS = [
    Workload(
        "00",
        "00_data_and_teachers",
        "ECAPA-TDNN C=256 from audio, AAM-softmax, 32 × 2 s",
        _ecapa_00,
        32 * 2.0,
        (32 * 201, 3 * 256, 256),
    ),
    Workload(
        "01",
        "01_os_kdft",
        "OS-KDFT (e): 2-layer Whisper tiny.en student with adapters, two "
        "branches, ECAPA C=128 on the mix of its states, 32 × 1 s",
        _oskdft_01,
        32 * 1.0,
        _ssl_gemm(64, 1.0, 384),
    ),
    Workload(
        "02",
        "02_iml_kd",
        "IML-KD (b): ECAPA C=128 student on log-mel features, multi-level KD, 32 × 1, 2 and 3 s",
        _imlkd_02,
        32 * 2.0,
        (32 * 201, 3 * 128, 128),
    ),
    Workload(
        "03",
        "03_ensemble_kd",
        "ensemble distillation, layerwise average of 2 teachers, 2-layer Whisper tiny.en student, 24 × 1 s",
        lambda: _distil(2),
        24 * 1.0,
        _ssl_gemm(24, 1.0, 384),
    ),
    Workload(
        "04a",
        "04_joint_kd_multitask",
        "stage 1: DistilHuBERT distillation of Whisper tiny.en, 2-layer student, 24 × 1 s",
        lambda: _distil(1),
        24 * 1.0,
        _ssl_gemm(24, 1.0, 384),
    ),
    Workload(
        "04b",
        "04_joint_kd_multitask",
        "stage 2: KWS + SV fine-tuning of the distilled student, every layer read, 24 × 1 s",
        _finetune_04,
        24 * 1.0,
        _ssl_gemm(24, 1.0, 384),
    ),
]

TEACHERS = {
    "hubert-tiny": "knobs of 01, 03, 04",
    "wavlm-tiny": "knobs of 03",
    "wav2vec2-tiny": "knobs of 04",
    "ecapa": "02, 05",
    "whisper-tiny.en": "00, 01, 03, 04",
    "whisper-base": "00, 03",
}
"""Zoo teachers whose forward pass is timed, and the notebooks that run it."""


def conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
) -> int:
    """FLOPs of a convolution's backward pass: each of the input gradient and the weight gradient asked for
    (``output_mask``) costs what the forward convolution costs, 2·N·T_out·C_out·(C_in / groups)·K.

    Replaces FlopCounterMode's own formula, which in torch 2.11 counts the weight gradient of a grouped
    convolution as if it were dense (``groups`` times too much: 16 times for the positional convolution of the
    HuBERT-like students, which made 01's step look 1.6 times as large as it is)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flops_of(model: nn.Module, loss_fn: Callable, batch) -> int:
    """Floating-point operations of one training step's forward and backward pass (FlopCounterMode's count,
    with :func:`conv_backward_flops` for convolutions' backward passes)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        out = loss_fn(batch)
        (out[0] if isinstance(out, tuple) else out).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(
    m: int, k: int, n: int, dtype: torch.dtype = torch.float32, seconds: float = 0.5, device: str = "cpu"
) -> float:
    """The machine's matrix-product speed, ``(m, k) @ (k, n)`` in ``dtype``: 2·m·k·n / the median time of
    repeated products (repeated for about ``seconds`` after a warm-up)."""
    a, b = torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)
    torch.mm(a, b)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * m * k * n / statistics.median(times) / 1e9


class _Timed:
    """The workload's batches, cycled for ``steps`` steps, noting the time each is asked for (after the previous
    step has finished)."""

    def __init__(self, batches: list, steps: int, device: str = "cpu"):
        self.batches, self.steps, self.device, self.times = batches, steps, device, []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for i in range(self.steps):
            _sync(self.device)
            self.times.append(time.perf_counter())
            yield self.batches[i % len(self.batches)]
        _sync(self.device)
        self.times.append(time.perf_counter())


def where_time_goes(
    model: nn.Module,
    loss_fn: Callable,
    batches: list,
    optimizer,
    options: dict,
    steps: int = 3,
    precision: str = "fp32",
    device: str = "cpu",
    top: int = 6,
) -> dict[str, float]:
    """The share of ``steps`` training steps' operator time taken by each of the ``top`` costliest operators
    (self time, torch.profiler), e.g. ``{"aten::mm": 0.41, "aten::bernoulli_": 0.09, ...}``."""
    from torch.profiler import ProfilerActivity, profile

    from kdlib import train

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train.fit(
            model,
            _Timed(batches, steps, device),
            loss_fn,
            epochs=1,
            optimizer=optimizer,
            device=device,
            progress=False,
            precision=precision,
            **options,
        )
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return {e.key: round(e.self_cpu_time_total / total, 4) for e in ranked}


def time_workload(
    workload: Workload,
    steps: int = 10,
    warmup: int = 3,
    precision: str = "fp32",
    device: str = "cpu",
    profile: bool = False,
) -> dict:
    """Seconds per training step of ``workload`` (the median of ``steps`` after ``warmup``), its FLOPs, the
    achieved GFLOP/s and the ratio to the machine's matrix-product speed at the workload's size; with
    ``profile``, also the operators that take the time (:func:`where_time_goes`, after the timed steps)."""
    from kdlib import train

    torch.manual_seed(0)
    model, loss_fn, batches, optimizer, options = workload.build()
    flops = statistics.mean(flops_of(model, loss_fn, b) for b in batches)
    loader = _Timed(batches, warmup + steps, device)
    train.fit(
        model,
        loader,
        loss_fn,
        epochs=1,
        optimizer=optimizer,
        device=device,
        progress=False,
        precision=precision,
        **options,
    )
    operators = (
        where_time_goes(model, loss_fn, batches, optimizer, options, precision=precision, device=device)
        if profile
        else None
    )
    per_step = statistics.median(b - a for a, b in zip(loader.times[warmup:-1], loader.times[warmup + 1 :]))
    achieved = flops / per_step / 1e9
    dtype = train.PRECISIONS[precision]
    machine = matmul_gflops(*workload.gemm, dtype=dtype, device=device)
    return {
        "workload": workload.key,
        "notebook": workload.notebook,
        "what": workload.what,
        "seconds_per_step": per_step,
        "steps_per_second": 1 / per_step,
        "audio_seconds_per_second": workload.audio_seconds / per_step,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": achieved,
        "gemm": list(workload.gemm),
        "machine_gflops": machine,
        "ratio": achieved / machine,
        **({"top_operators": operators} if operators else {}),
    }


def time_teacher(
    name: str, batch: int = 24, seconds: float = 1.0, repeats: int = 5, precision: str = "fp32", device: str = "cpu"
) -> dict:
    """A frozen teacher's forward pass as the notebooks run it: every hidden state (SSL, Whisper) or the
    embedding (a speaker model), no gradient; the median of ``repeats`` after one warm-up."""
    from torch.utils.flop_counter import FlopCounterMode

    from kdlib import train, zoo

    teacher = zoo.load(name).eval().to(device)
    wave = 0.1 * torch.randn(batch, int(seconds * 16_000), device=device)
    speaker = not hasattr(teacher, "config")
    autocast = torch.autocast(torch.device(device).type, dtype=train.PRECISIONS[precision], enabled=precision != "fp32")

    def forward():
        with torch.no_grad(), autocast:
            return teacher(wave) if speaker else teacher(wave, output_hidden_states=True)

    counter = FlopCounterMode(display=False)
    with counter:
        forward()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        forward()
        _sync(device)
        times.append(time.perf_counter() - t)
    per_pass = statistics.median(times)
    return {
        "teacher": name,
        "notebooks": TEACHERS[name],
        "batch": batch,
        "crop_seconds": seconds,
        "seconds_per_batch": per_pass,
        "audio_seconds_per_second": batch * seconds / per_pass,
        "gflop_per_batch": counter.get_total_flops() / 1e9,
        "achieved_gflops": counter.get_total_flops() / per_pass / 1e9,
    }


def run(
    only: list[str] | None = None,
    steps: int = 10,
    warmup: int = 3,
    precision: str = "fp32",
    teachers: bool = True,
    progress: bool = True,
    device: str = "cpu",
    profile: bool = False,
) -> dict:
    """Every workload (or those whose key starts with one of ``only``), the teachers' forward passes and the
    machine's large matrix product, with the processor, versions and numerics in force."""
    from kdlib import runtime, train
    from kdlib.progress import bar

    chosen = [w for w in WORKLOADS if not only or any(w.key.startswith(o) for o in only)]
    if only and not chosen:
        raise ValueError(f"no workload matches {only}; the workloads are {[w.key for w in WORKLOADS]}")
    rows = [
        time_workload(w, steps, warmup, precision, device, profile)
        for w in bar(chosen, desc="training steps", unit="workload", disable=not progress)
    ]
    forward = [
        time_teacher(name, precision=precision, device=device)
        for name in bar(TEACHERS if teachers else [], desc="teachers' forward", unit="teacher", disable=not progress)
    ]
    dtype = train.PRECISIONS[precision]
    return {
        "precision": precision,
        "device": device,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "warmup": warmup,
        "machine_gflops_large": matmul_gflops(LARGE, LARGE, LARGE, dtype, device=device),
        "large": LARGE,
        "workloads": rows,
        "teachers": forward,
        "provenance": runtime.provenance(),
    }


def table(records: dict[str, dict]) -> str:
    """Markdown: each workload's seconds per step and ratio in each record (``{label: run(...) result}``), with
    the speed-up of each later record over the first."""
    labels = list(records)
    first = {r["workload"]: r for r in records[labels[0]]["workloads"]}
    head = (
        "| workload | GFLOP/step | "
        + " | ".join(
            f"{label}: s/step | GFLOP/s (ratio)" + (" | speed-up" if i else "") for i, label in enumerate(labels)
        )
        + " |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, base in first.items():
        cells = [f"{key}: {base['what'].split(':')[0]}", f"{base['gflop_per_step']:.1f}"]
        for i, label in enumerate(labels):
            row = next((r for r in records[label]["workloads"] if r["workload"] == key), None)
            if row is None:
                cells += ["–", "–"] + (["–"] if i else [])
                continue
            cells += [f"{row['seconds_per_step']:.3f}", f"{row['achieved_gflops']:.1f} ({100 * row['ratio']:.0f} %)"]
            if i:
                cells.append(f"{base['seconds_per_step'] / row['seconds_per_step']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    machine = "; ".join(
        f"{label}: {r['machine_gflops_large']:.0f} GFLOP/s at {r['large']}³ ({r['precision']})"
        for label, r in records.items()
    )
    return "\n".join(lines) + f"\n\nThe machine's large matrix product: {machine}."


PAGE = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
MEASURED = PAGE.parents[1] / "results" / "reference" / "benchmark"
"""The committed measurements: one folder per machine, each holding a file per mode of :data:`MODES`."""
BEGIN, END = "<!-- benchmark:begin -->", "<!-- benchmark:end -->"
MODES = ("reference-fp32-cpu", "native-fp32-cpu", "native-bf16-cpu", "native-bf16-gpu")
"""The modes the performance page shows, in this order, where measured."""


def machine_section(folder: Path) -> list[str]:
    """One machine's part of the performance page, from the benchmark files in ``folder``: the training steps in
    every measured mode side by side, where a step's time goes, and the teachers' forward passes."""
    from kdlib.course.report import processor

    records = {m: json.loads((folder / f"{m}.json").read_text()) for m in MODES if (folder / f"{m}.json").is_file()}
    if not records:
        raise FileNotFoundError(
            f"{folder}: no benchmark results ({', '.join(m + '.json' for m in MODES)}); "
            "measure with python -m kdlib.course.benchmark --out FILE"
        )
    first = next(iter(records.values()))
    teachers = [
        "| teacher (24 × 1 s, every hidden state) | used in | " + " | ".join(records) + " |",
        "|---|---|" + "---|" * len(records),
    ]
    for row in first["teachers"]:
        cells = []
        for record in records.values():
            match = next((t for t in record["teachers"] if t["teacher"] == row["teacher"]), None)
            cells.append(
                f"{match['seconds_per_batch']:.3f} s, {match['achieved_gflops']:.0f} GFLOP/s" if match else "–"
            )
        teachers.append(f"| {row['teacher']} | {row['notebooks']} | " + " | ".join(cells) + " |")
    operators = [
        f"| workload | where a step's time goes, {next(iter(records))} (operator: share of operator time) |",
        "|---|---|",
    ]
    operators += [
        f"| {row['workload']} | "
        + ", ".join(
            f"{name.removeprefix('aten::')} {100 * share:.0f} %" for name, share in row["top_operators"].items()
        )
        + " |"
        for row in first["workloads"]
        if row.get("top_operators")
    ]
    return [
        f"### {processor(first['provenance'])}",
        "",
        f"`{folder.relative_to(MEASURED.parents[2]) if folder.is_relative_to(MEASURED.parents[2]) else folder}`: "
        f"{first['threads']} threads; {first['steps']} timed steps per workload after {first['warmup']} warm-up "
        f"steps; torch {first['provenance']['versions'].get('torch', '?')}.",
        "",
        table(records),
        "",
        *(operators + [""] if len(operators) > 2 else []),
        *teachers,
        "",
    ]


def docs_section(folder: Path = MEASURED) -> str:
    """The performance page's generated part: :func:`machine_section` for every machine folder in ``folder``."""
    machines = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    if not machines:
        raise FileNotFoundError(
            f"{folder}: no benchmark results (a folder per machine, each with files named "
            f"{', '.join(m + '.json' for m in MODES)}); measure with "
            "python -m kdlib.course.benchmark --out FOLDER/MACHINE/MODE.json"
        )
    body = [line for machine in machines for line in machine_section(machine)]
    return "\n".join(
        [
            BEGIN,
            "",
            "Generated from `results/reference/benchmark/` by `python -m kdlib.course.benchmark "
            "docs`; do not edit by hand. Ratio: achieved GFLOP/s over the machine's own matrix product at "
            "the workload's size, in the same run and precision.",
            "",
            *body,
            END,
        ]
    )


def _reexec_with(numerics: str, argv: list[str]) -> None:
    """Start this command again with kdlib's reference numerics in the environment (the kernel libraries read
    it when torch loads), unless they are already in force."""
    from kdlib.course.runner import reference_environment

    wanted = reference_environment() if numerics == "reference" else {}
    if all(os.environ.get(k) == v for k, v in wanted.items()):
        return
    env = {**os.environ, **wanted}
    os.execve(sys.executable, [sys.executable, "-m", "kdlib.course.benchmark", *argv], env)


def main(argv: list[str] | None = None) -> int:
    from kdlib.runtime import results_dir
    from kdlib.train import PRECISIONS

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["docs"]:
        from kdlib.course.report import write_or_check

        return write_or_check(
            docs_section(),
            PAGE,
            BEGIN,
            END,
            check="--check" in argv,
            what="generated section",
            command="python -m kdlib.course.benchmark docs",
        )
    if argv[:1] == ["table"]:
        paths = [Path(p) for p in argv[1:]]
        missing = [str(p) for p in paths if not p.exists()]
        if not paths or missing:
            raise SystemExit(f"table: give benchmark JSON files; missing: {missing or 'none given'}")
        print(table({p.stem: json.loads(p.read_text()) for p in paths}))
        return 0
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--numerics", choices=("reference", "native"), default="reference")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="workloads whose key starts with these (00 .. 04)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per workload")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--no-teachers", action="store_true", help="skip the teachers' forward passes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--profile", action="store_true", help="also record the operators that take the time")
    parser.add_argument("--out", default=None, metavar="FILE", help="JSON file (default: results/benchmark/...)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("need at least one timed step and no negative warm-up")
    _reexec_with(args.numerics, argv)
    result = {
        "numerics": args.numerics,
        **run(
            args.only,
            args.steps,
            args.warmup,
            args.precision,
            not args.no_teachers,
            device=args.device,
            profile=args.profile,
        ),
    }
    where = "cpu" if args.device == "cpu" else "gpu"
    out = Path(args.out) if args.out else results_dir() / "benchmark" / f"{args.numerics}-{args.precision}-{where}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table({out.stem: result}))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
