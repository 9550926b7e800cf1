"""How much does notebook 03's phone error rate move when only its CTC head's seed changes? One fixed
representation (by default the 2-layer student of Whisper tiny.en before any distillation, the notebook's
"student before distillation"), the notebook's phoneme task (600 training and 400 test sentences), and the CTC head
trained with several seeds at several budgets. The spread it prints is the instrument's own noise: what a
difference in PER between two students has to beat before it says anything about the students. It chooses
nothing; a change to the head (its steps, its learning rate) must be chosen on held-out training speakers, not on
these test sentences. Not part of kdlib; run it from the repository root:

    python -m experiments.phoneme_head_noise                       # seeds 0-4, 300 and 1,000 steps (about 6 min)
    python -m experiments.phoneme_head_noise --steps 300 --seeds 0 1 2

It writes ``results/experiments/phoneme_head_noise.json`` (or ``--out``). The run of 2026-12-07 (2-core AMD EPYC,
the processor's native kernels) is committed as ``results/reference/experiments/phoneme_head_noise.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from experiments import write_record
from kdlib import runtime, zoo
from kdlib.data import corpus
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en", help="zoo name of the encoder the student is cut from")
    parser.add_argument("--layers", type=int, default=2, help="how many of its layers the student keeps")
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000], help="CTC head budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="CTC head seeds")
    parser.add_argument("--corpus", default="default")
    parser.add_argument("--out", default="results/experiments/phoneme_head_noise.json")
    args = parser.parse_args(argv)
    runtime.seed_everything(0)
    data = corpus.load(args.corpus)
    task = pr.build_phoneme_task(data, seed=0)  # the notebook's 600 training and 400 test sentences (all, if fewer)
    student = make_student(zoo.load(args.model), args.layers).eval()
    frames = task.frames(lambda x: list(student(x, output_hidden_states=True).hidden_states))
    out = {
        "provenance": runtime.provenance(),
        "model": f"{args.model}, first {args.layers} layers",
        "clips": {"train_clips": len(task.rows["train"]), "test_clips": len(task.rows["test"])},
        "budgets": {},
    }
    for steps in args.steps:
        values, seconds = {}, []
        for seed in args.seeds:
            start = time.time()
            values[seed] = pr.run_phoneme_task(frames, task, steps=steps, seed=seed)["clean"]["per"]
            seconds.append(time.time() - start)
            print(f"{steps} steps, seed {seed}: PER {100 * values[seed]:.2f} % ({seconds[-1]:.0f} s)", flush=True)
        out["budgets"][str(steps)] = {**spread(values), "seconds_each": round(statistics.mean(seconds), 1)}
    write_record(out, args.out)
    return out


if __name__ == "__main__":
    main()
