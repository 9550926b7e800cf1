"""How much does notebook 03's phone error rate move when only its CTC head's seed changes, and which head
schedule moves it least? One fixed representation (by default the 2-layer student of Whisper tiny.en before any
distillation, the notebook's "student before distillation") and the CTC head trained with several seeds, budgets and
learning-rate schedules (constant, or a cosine decay to zero). The spread is the instrument's own noise: what a
difference in PER between two students has to beat before it says anything about the students.

Two splits. ``--split test`` is the notebook's own phoneme task (600 training and 400 test sentences): it shows the
noise the notebook's verdicts live with and chooses nothing. ``--split dev`` holds out a sixth of the *training*
speakers (``experiments.speaker_split``, seed 1): the head fits 600 sentences of the others and is scored on 400 of
the held-out speakers', so a schedule can be chosen there without a test sentence. Not part of kdlib; run it from
the repository root:

    python -m experiments.phoneme_head_noise                       # test split, seeds 0-4, 300 and 1,000 steps
    python -m experiments.phoneme_head_noise --split dev --schedules constant cosine --steps 300
                                                                   # the schedule's choice (about 5 min)

It writes ``results/experiments/phoneme_head_noise.json`` (or ``--out``). The runs of 2026-12-07 (2-core AMD EPYC,
the processor's native kernels) are committed in ``results/reference/experiments/``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from experiments import speaker_split, write_record
from kdlib import runtime, zoo
from kdlib.data import corpus
from kdlib.data.datasets import random_subset
from kdlib.evaluation import phoneme_recognition as pr
from kdlib.models.ssl import make_student


def spread(values: dict[int, float]) -> dict:
    """Per-seed values (fractions) summarised in percent: each seed's value, mean, sample standard deviation
    and range."""
    if len(values) < 2:
        raise ValueError(f"a spread needs at least two seeds, got {len(values)}")
    pct = [100 * v for v in values.values()]
    return {
        "per_seed": {str(seed): round(100 * v, 3) for seed, v in values.items()},
        "mean": round(statistics.mean(pct), 3),
        "std": round(statistics.stdev(pct), 3),
        "range": [round(min(pct), 3), round(max(pct), 3)],
    }


def development_task(source, train_clips: int = 600, test_clips: int = 400, share: float = 1 / 6, seed: int = 0):
    """The phoneme task on training speakers only: ``train_clips`` sentences of the speakers kept and
    ``test_clips`` of a held-out ``share`` of them (``speaker_split`` with seed 1, as the distillation budget's),
    drawn with ``seed``."""
    rows = source.select("train", "sentence")
    held = speaker_split(rows, share, seed=1)
    rng = np.random.default_rng(seed)
    chosen = {
        "train": random_subset([r for r, h in zip(rows, held) if not h], train_clips, rng),
        "test": random_subset([r for r, h in zip(rows, held) if h], test_clips, rng),
    }
    return pr.phoneme_task_of(source, chosen, seed=seed)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en", help="zoo name of the encoder the student is cut from")
    parser.add_argument("--layers", type=int, default=2, help="how many of its layers the student keeps")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="dev: held-out training speakers")
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000], help="CTC head budgets")
    parser.add_argument("--schedules", nargs="+", choices=pr.SCHEDULES, default=["constant"], help="learning rates")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3], help="CTC head learning rates (peak)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="CTC head seeds")
    parser.add_argument("--corpus", default="default")
    parser.add_argument("--out", default="results/experiments/phoneme_head_noise.json")
    args = parser.parse_args(argv)
    runtime.seed_everything(0)
    data = corpus.load(args.corpus)
    # test: the notebook's 600 training and 400 test sentences (all, if fewer); dev: training speakers only
    task = development_task(data) if args.split == "dev" else pr.build_phoneme_task(data, seed=0)
    student = make_student(zoo.load(args.model), args.layers).eval()
    frames = task.frames(lambda x: list(student(x, output_hidden_states=True).hidden_states))
    targets, n = task.targets["train"], len(task.phone_set)
    out = {
        "provenance": runtime.provenance(),
        "model": f"{args.model}, first {args.layers} layers",
        "split": args.split,
        "clips": {"train_clips": len(task.rows["train"]), "test_clips": len(task.rows["test"])},
        "budgets": {},
    }
    for lr in args.lrs:
        for schedule in args.schedules:
            for steps in args.steps:
                values, train_loss, seconds = {}, {}, []
                for seed in args.seeds:
                    start = time.time()  # fit and score as run_phoneme_task does (clean), and the training loss
                    head = pr.fit_ctc(frames["train"], targets, n, steps=steps, lr=lr, schedule=schedule, seed=seed)
                    values[seed] = pr.score(head, frames["test"], task.targets["test"])
                    seconds.append(time.time() - start)
                    train_loss[seed] = round(pr.ctc_loss(head, frames["train"], targets), 4)
                    print(
                        f"{steps} steps, lr {lr:g}, {schedule}, seed {seed}: PER {100 * values[seed]:.2f} %, "
                        f"training loss {train_loss[seed]:.3f} ({seconds[-1]:.0f} s)",
                        flush=True,
                    )
                # "300": the head of runs up to 2026-12-07 (lr 3e-3, constant); other heads say what differs
                key = " ".join(
                    [
                        str(steps),
                        *([f"lr {lr:g}"] if lr != 3e-3 else []),
                        *([schedule] if schedule != "constant" else []),
                    ]
                )
                out["budgets"][key] = {
                    **spread(values),
                    "train_loss": {str(seed): loss for seed, loss in train_loss.items()},
                    "lr": lr,
                    "schedule": schedule,
                    "seconds_each": round(statistics.mean(seconds), 1),
                }
    write_record(out, args.out)
    return out


if __name__ == "__main__":
    main()
