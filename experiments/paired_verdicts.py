"""Notebook 03's four claims judged a second way: paired over seeds.

In notebook 03 every student of seed *i* distils on the same batches in the same order, and the suite scores every
student with the same downstream seed. So seed *i* of one method and seed *i* of another share whatever those batches
did to both. The notebook's verdicts use a Welch t-interval, which treats the seeds of two methods as unrelated. A
paired t-interval (``kdlib.evaluation.verdicts.from_paired_seeds``) judges the per-seed differences instead: it
leaves out what a seed does to every method alike, at the price of fewer degrees of freedom (2 against up to 4 for
three seeds). It is narrower only where the pairs move together (Pearson's r above about 0.5 at three seeds).

This is a **secondary analysis, declared on 2026-12-07 before the 2,000-step run's results were read**, after the
reference run had shown that seed 2's phone error rate is below seed 0's for all six students. It is applied to every
part of all four claims of every notebook-03 record given, never to a chosen one, and it does not replace the
notebook's verdicts. Not part of kdlib; run it from the repository root:

    python -m experiments.paired_verdicts results/reference/03_ensemble_kd.json \\
        results/reference/fast/steps_1000/03_ensemble_kd.json

It reads each record's per-seed scores (``extra.per_seed``), rebuilds the four claims with both intervals, checks
that the Welch ones give the record's own outcomes, prints them side by side and writes
``results/experiments/paired_verdicts_03.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from experiments import write_record
from kdlib import runtime
from kdlib.evaluation import verdicts

HIGHER = {"SID acc": True, "KWS acc": True, "word acc": True, "PER": False, "SV EER": False}
TASK_ORDER = ("SID acc", "KWS acc", "word acc", "PER", "SV EER")
MOST = 3  # "most tasks": 3 of the 5 clean tasks, as the notebook
# (the paper's side, the student it favours, the students it is compared with ("singles": every single-teacher
# student), the condition); the notebook's claims in its order
CLAIMS = (
    ("average > concatenation", "ensemble: average", ("ensemble: concat",), "clean"),
    ("multi-head > single set of heads", "ensemble: multi-head", ("ensemble: average",), "clean"),
    ("EKD improves on single-teacher distillation", "ensemble: multi-head", "singles", "clean"),
    ("distorted input carries robustness", "ensemble: average, distorted input", ("ensemble: average",), "harsh"),
)
JUDGES = {
    "welch": lambda a, b, higher: verdicts.from_seeds(a, b, verdicts.better(), higher_is_better=higher),
    "paired": lambda a, b, higher: verdicts.from_paired_seeds(a, b, verdicts.better(), higher_is_better=higher),
}


def per_seed_table(record: dict, path: str = "record") -> dict:
    """``{(model, condition, metric): {seed: value}}`` from a notebook-03 record's ``extra.per_seed``."""
    rows = record.get("extra", {}).get("per_seed")
    if not rows:
        raise ValueError(f"{path}: no extra.per_seed (not a notebook-03 record, or written before per-seed scores)")
    table: dict = {}
    for row in rows:
        if row["seed"] is None or (isinstance(row["seed"], float) and np.isnan(row["seed"])):
            continue  # a reference: one run, no seed
        table.setdefault((row["model"], row["condition"], row["metric"]), {})[int(row["seed"])] = row["value"]
    return table


def judge(table: dict, judge_name: str) -> list[dict]:
    """The four claims of notebook 03 judged with ``JUDGES[judge_name]`` on every task the record has."""
    tasks = [m for m in TASK_ORDER if any(key[2] == m for key in table)]
    singles = sorted({model for model, _, _ in table if model.startswith("single: ")})
    out = []
    for paper, a, others, cond in CLAIMS:
        others = singles if others == "singles" else list(others)
        parts = []
        for metric in tasks:
            each = []
            for b in others:
                va, vb = table[a, cond, metric], table[b, cond, metric]
                if sorted(va) != sorted(vb):
                    raise ValueError(f"{a} and {b} have different seeds ({sorted(va)}, {sorted(vb)})")
                seeds = sorted(va)
                verdict = JUDGES[judge_name]([va[s] for s in seeds], [vb[s] for s in seeds], HIGHER[metric])
                each.append({**verdict, "task": metric, "against": b})
            parts.append(each[0] if len(each) == 1 else {**verdicts.all_of(each), "task": metric})
        out.append({"paper": paper, "condition": cond, **verdicts.at_least(parts, MOST)})
    return out


def compare(path: str) -> dict:
    """Both judgements of one record; the Welch one must give the record's own four outcomes."""
    record = json.loads(Path(path).read_text())
    table = per_seed_table(record, path)
    judged = {name: judge(table, name) for name in JUDGES}
    recorded = [c["outcome"] for c in record["claims"]]
    rebuilt = [c["outcome"] for c in judged["welch"]]
    if recorded != rebuilt:
        raise ValueError(f"{path}: the Welch claims rebuilt here ({rebuilt}) are not the record's ({recorded})")
    return {
        "steps": record.get("extra", {}).get("steps"),
        "numerics": record["provenance"]["numerics"].get("KDLIB_PRECISION") or "fp32",
        "git_commit": record["provenance"]["git_commit"],
        **judged,
    }


def _line(v: dict) -> str:
    if "parts" in v:
        return f"{v['outcome']} ({verdicts.describe(v)})"
    r = "" if v.get("correlation") is None else f", r {v['correlation']:+.2f}"
    return f"{v['outcome']}: {verdicts.describe(v)}{r}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", help="notebook 03's results files")
    parser.add_argument("--out", default="results/experiments/paired_verdicts_03.json")
    args = parser.parse_args(argv)
    out = {"provenance": runtime.provenance(), "records": {}}
    for path in args.records:
        both = out["records"][path] = compare(path)
        print(f"\n{path} ({both['steps']} steps, {both['numerics']})")
        for welch, paired in zip(both["welch"], both["paired"]):
            print(f"  {welch['paper']} ({welch['condition']}): Welch {welch['outcome']}, paired {paired['outcome']}")
            for w, p in zip(welch["parts"], paired["parts"]):
                print(f"    {w['task']:8s} Welch  {_line(w)}\n    {'':8s} paired {_line(p)}")
    write_record(out, args.out)
    return out


if __name__ == "__main__":
    main()
