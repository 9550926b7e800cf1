"""The results contract: ``results/<notebook>.json`` per notebook and ``results/SUMMARY.md`` over all.

A results file holds ``notebook``, ``mode``, ``seed``, ``wall_time_s``, ``device`` (the devices the run
actually used), ``provenance`` (versions, hardware, numerics, git commit: :func:`kdlib.runtime.provenance`),
``models`` (name -> ``params``, ``bytes``, ``latency_ms`` and task metrics: ``eer``/``min_dcf`` as
fractions, ``accuracy``) and ``claims`` (``{claim, paper, ours, outcome, holds, verdict}``: a paper's finding
beside ours, judged by :mod:`kdlib.evaluation.verdicts`: ``outcome`` is holds, contradicted or inconclusive,
``holds`` is ``outcome == "holds"`` for older readers, ``verdict`` the effect, its 95 % interval, the smallest
detectable effect and the method); ``teachers`` (the zoo teachers loaded by name, each with the sha256 of its
weights: :func:`kdlib.zoo.loaded`) where there were any; a data-parallel run adds ``processes`` (how many trained
together).
A notebook states a model with :func:`entry` and a claim with :func:`claim`, one line each.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from kdlib.evaluation.verdicts import OUTCOMES, count, describe
from kdlib.runtime import SMOKE, device, devices_used, provenance, results_dir

_FRACTIONS = ("eer", "min_dcf", "accuracy")


def _check(models: dict, claims: list) -> None:
    for name, entry in models.items():
        for key in ("params", "bytes", "latency_ms"):
            if key not in entry:
                raise ValueError(f"model {name!r}: missing {key!r} (measure it with kdlib.evaluation.bench.measure)")
        for key in _FRACTIONS:
            value = entry.get(key)
            if value is not None and not (0.0 <= value <= 1.0 and math.isfinite(value)):
                raise ValueError(f"model {name!r}: {key}={value} is not a fraction in [0, 1]")
    for claim in claims:
        missing = {"claim", "paper", "ours", "outcome", "holds", "verdict"} - set(claim)
        if missing:
            raise ValueError(f"claim {claim.get('claim')!r}: missing {sorted(missing)} (make it with results.claim)")
        if claim["outcome"] not in OUTCOMES:
            raise ValueError(f"claim {claim['claim']!r}: outcome {claim['outcome']!r} is not one of {OUTCOMES}")


def number(value) -> float | None:
    """``value`` as a float for a results file, or ``None`` where it is missing (``None`` or NaN: the spread of a
    single seed, a trial list the corpus does not have)."""
    if value is None or math.isnan(value := float(value)):
        return None
    return value


def curve(values, window: int = 25) -> list[float]:
    """A training curve shortened for a results file: the mean of each run of ``window`` consecutive values
    (the last run may be shorter), so that a 2,000-step loss history becomes 80 numbers that still show whether
    it flattens."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    values = [float(v) for v in values]
    return [sum(run) / len(run) for run in (values[i : i + window] for i in range(0, len(values), window))]


def entry(model=None, example=None, *, test: dict | None = None, other: dict | None = None, **fields) -> dict:
    """One model's results entry: ``params``, ``bytes`` and ``latency_ms`` measured on ``model`` with
    ``example`` (:func:`kdlib.evaluation.bench.measure`), ``eer``/``min_dcf`` from the ``test`` SV result and
    ``eer_other_language``/``min_dcf_other_language`` from ``other`` (:func:`kdlib.evaluation.verification.sv` results),
    then ``fields`` as given (they win, e.g. the packed ``bytes`` of a quantized model)."""
    from kdlib.evaluation.bench import measure

    out = measure(model, example) if model is not None else {}
    for prefix, res in (("", test), ("_other_language", other)):
        if res is not None:
            out.update({f"eer{prefix}": float(res["eer"]), f"min_dcf{prefix}": float(res["min_dcf"])})
    return {**out, **fields}


def claim(claim: str, paper: str, ours: str, verdict: dict) -> dict:
    """A paper's finding beside ours, judged: ``verdict`` comes from :mod:`kdlib.evaluation.verdicts`
    (``from_trials``, ``from_seeds``, ``from_value``, ``all_of``, ``at_least``)."""
    if not isinstance(verdict, dict) or verdict.get("outcome") not in OUTCOMES:
        raise TypeError(f"claim {claim!r}: the verdict must come from kdlib.evaluation.verdicts, got {verdict!r}")
    return {
        "claim": claim,
        "paper": paper,
        "ours": ours,
        "outcome": verdict["outcome"],
        "holds": verdict["outcome"] == "holds",
        "verdict": verdict,
    }


SMOKE_NOTE = (
    "**Smoke run**: tiny data, one seed and a few steps, only to prove that the code runs. Its numbers "
    "and verdicts mean nothing; the notebook's results come from full mode (`KDLIB_SMOKE=0`)."
)
"""What every number shown in smoke mode carries: claims tables, summaries, results files, the course book."""


def smoke_note(mode: str | None = None) -> str:
    """:data:`SMOKE_NOTE` as a Markdown paragraph (ending in a blank line) when ``mode`` (default: this
    process's mode) is smoke; ``""`` in full mode. Notebooks put it before their summary."""
    smoke = SMOKE if mode is None else mode == "smoke"
    return f"> {SMOKE_NOTE}\n\n" if smoke else ""


def claims_markdown(claims: list[dict], mode: str | None = None) -> str:
    """The claims as a Markdown table, every cell in full (a DataFrame cuts long text at 50 characters); in a
    smoke run (``mode``, default this process's) the table opens with :data:`SMOKE_NOTE` and every verdict says
    "(smoke)"."""

    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    smoke = " (smoke)" if smoke_note(mode) else ""
    lines = ["| claim | paper | ours | effect [95 % interval] | outcome |", "|---|---|---|---|---|"]
    lines += [
        f"| {cell(c['claim'])} | {cell(c['paper'])} | {cell(c['ours'])} | {cell(describe(c['verdict']))} | "
        f"**{c['outcome']}**{smoke} |"
        for c in claims
    ]
    return smoke_note(mode) + "\n".join(lines)


def resolution(claim: dict) -> str:
    """What a claim's run could resolve, in words: its smallest detectable effect (the largest over the parts of
    a combined claim) beside the paper's words, e.g. ``"detectable 3.20 points (paper: ~5 % relative EER
    reduction)"``."""
    verdict = claim["verdict"]
    parts = verdict.get("parts", [verdict])
    parts = [p for p in parts if "detectable" in p] or [p for q in parts for p in q.get("parts", [])]
    known = [p for p in parts if p.get("detectable") is not None]
    if not known:
        return f"no interval, so no detectable effect (paper: {claim['paper']})"
    widest = max(known, key=lambda p: p["detectable"])
    return f"detectable {widest['detectable']:.2f} {widest['unit']} (paper: {claim['paper']})"


def tally(claims: list[dict]) -> str:
    """``"2 hold, 1 contradicted, 2 inconclusive"``: the outcomes of ``claims``, counted apart."""
    return ", ".join(f"{n} {'hold' if o == 'holds' and n != 1 else o}" for o, n in count(claims).items())


def parameters() -> dict:
    """The knobs this run changed from the notebook's own values (``python -m kdlib.course.runner run -p KEY VALUE``
    puts them in ``$KDLIB_PARAMETERS``); ``{}`` for a notebook run as committed."""
    text = os.environ.get("KDLIB_PARAMETERS") or "{}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"$KDLIB_PARAMETERS is not JSON ({err}): {text[:80]!r}") from None


def save(
    notebook: str,
    *,
    seed,
    wall_time_s: float,
    models: dict,
    claims: list | None = None,
    extra: dict | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Write ``<results>/<notebook>.json`` and refresh ``SUMMARY.md``; return the JSON's path. In a
    data-parallel run only rank 0 writes (the others check the record and return the same path)."""
    from kdlib.train.distributed import is_main, world_size

    claims = claims or []
    _check(models, claims)
    out = Path(out_dir) if out_dir else results_dir()
    if not is_main():
        return out / f"{notebook}.json"
    out.mkdir(parents=True, exist_ok=True)
    used = devices_used()
    zoo = sys.modules.get("kdlib.zoo")  # not imported: no zoo teacher was loaded
    teachers = zoo.loaded() if zoo else {}
    record = {
        "notebook": notebook,
        "mode": "smoke" if SMOKE else "full",
        "seed": seed,
        "wall_time_s": round(float(wall_time_s), 1),
        "device": ", ".join(used) if used else device(),
        "provenance": provenance(),
        "parameters": parameters(),
        "models": models,
        "claims": claims,
        **({"teachers": teachers} if teachers else {}),
        **({"extra": extra} if extra else {}),
        **({"processes": world_size()} if world_size() > 1 else {}),
    }
    path = out / f"{notebook}.json"
    path.write_text(json.dumps(record, indent=1, default=float))
    write_summary(out)
    return path


def model_dir(notebook: str, name: str, out_dir: str | Path | None = None) -> Path:
    """Where :func:`save_model` keeps a notebook's trained model: ``<results>/models/<notebook>/<name>/``."""
    return (Path(out_dir) if out_dir else results_dir()) / "models" / notebook / name


def save_model(
    notebook: str, name: str, model, architecture: str, kwargs: dict, out_dir: str | Path | None = None
) -> Path:
    """Keep a trained speaker model (front end + encoder, fp32, with its config) for a later notebook, which
    loads it with :func:`kdlib.models.load_speaker_model` (notebook 06 quantizes notebook 02's students).
    In a data-parallel run only rank 0 writes."""
    from kdlib.models.checkpoint import save_speaker_model
    from kdlib.train.distributed import is_main

    if not is_main():
        return model_dir(notebook, name, out_dir)

    return save_speaker_model(model, model_dir(notebook, name, out_dir), architecture, kwargs, half=False)


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:.2f} %"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1e6:.2f} M"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(out_dir: str | Path | None = None) -> Path:
    """Aggregate every results JSON in ``out_dir`` into one Markdown table (``SUMMARY.md``); other JSON files
    there (the runner's ``run_times.json``) are not results records and are left out."""
    out = Path(out_dir) if out_dir else results_dir()
    lines = [
        "# Results",
        "",
        "| notebook | mode | model | params | MB | CPU ms | EER | minDCF | accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    claim_lines = [
        "",
        "## Paper claims against this run",
        "",
        "| notebook | claim | paper | ours | effect [95 % interval] | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*.json")):
        rec = json.loads(path.read_text())
        if "notebook" not in rec:
            continue
        for name, m in rec.get("models", {}).items():
            lines.append(
                f"| {rec['notebook']} | {rec['mode']} | {name} | {_fmt(m.get('params'))} | "
                f"{m['bytes'] / 1e6:.2f} | {m['latency_ms']:.1f} | {_fmt(m.get('eer'), True)} | "
                f"{_fmt(m.get('min_dcf'))} | {_fmt(m.get('accuracy'), True)} |"
            )
        smoke = " (smoke)" if rec["mode"] == "smoke" else ""
        for c in rec.get("claims", []):
            judged = describe(c["verdict"]) if "verdict" in c else "–"
            claim_lines.append(
                f"| {rec['notebook']} | {c['claim']} | {c['paper']} | {c['ours']} | {judged} | "
                f"{c.get('outcome', 'holds' if c['holds'] else 'not judged')}{smoke} |"
            )
        lines.append(f"<!-- {rec['notebook']}: {rec['mode']}, {rec['wall_time_s']} s on {rec['device']} -->")
    modes = {json.loads(p.read_text()).get("mode") for p in out.glob("*.json")}
    if "smoke" in modes:
        lines[1:1] = ["", f"> {SMOKE_NOTE}", ""]
    summary = out / "SUMMARY.md"
    summary.write_text("\n".join(lines + claim_lines) + "\n")
    return summary
