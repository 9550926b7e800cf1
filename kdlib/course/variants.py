"""Run a notebook again with other knobs and set its results beside the notebook's own run.

The solutions notebooks answer most exercises this way: "set ``KD_WEIGHT = 100``" becomes
``variants.run("01_os_kdft", {"KD_WEIGHT": 100}, "kd_weight_100")``, which executes the notebook in a fresh
process (``python -m kdlib.course.runner run -p KD_WEIGHT 100``), so the answer runs the notebook's own code and
cannot drift from it. Each variant writes under ``<results>/variants/<notebook>/<name>/`` (its results file,
its executed copy), never over the notebook's own results.

Answers measured once in full mode are committed beside the notebooks' reference run
(``results/reference/variants/<notebook>/<name>/<notebook>.json``, see :func:`promote`): the solutions show them
in every mode, and a full-mode variant with the same knobs, numerics and zoo teachers reads them instead of
running again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kdlib.course.runner import (
    check_knobs,
    current_knob_names,
    recorded_knobs,
    recorded_parameters,
    reference_environment,
    rerun_command,
)
from kdlib.runtime import REPO_ROOT, SMOKE, duration, results_dir, results_root


def _notebook_path(notebook: str) -> Path:
    """``"01_os_kdft"`` -> ``notebooks/01_os_kdft.ipynb``; a path to a notebook stays as it is."""
    path = Path(notebook) if str(notebook).endswith(".ipynb") else REPO_ROOT / "notebooks" / f"{notebook}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook")
    return path


REFERENCE = REPO_ROOT / "results" / "reference"
"""The committed reference run; its ``variants/`` folder holds the committed answers."""


def folder(notebook: str, name: str) -> Path:
    """Where the variant ``name`` of ``notebook`` writes (its runner's ``--results``)."""
    return results_root() / "variants" / Path(notebook).stem / name


def check(notebook: str, parameters: dict) -> None:
    """Refuse, naming it, a knob the notebook does not have (without running anything)."""
    import nbformat

    path = _notebook_path(notebook)
    check_knobs(nbformat.read(path, as_version=4), parameters, path.name)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable results file ({err})") from None


def run(notebook: str, parameters: dict, name: str, execute: bool = True, reuse: bool = True) -> dict | None:
    """The results record of ``notebook`` run with ``parameters`` (knob -> value), in this mode (smoke or full).

    ``reuse``: a record already written by the same variant, in the same mode, numerics, knobs and zoo teachers
    (in smoke mode also the same commit), is read instead of running again (a full variant costs as much as the
    notebook); in full mode so is the committed answer. ``execute=False`` only checks the knobs and returns the
    committed answer (full mode), or None where there is none (the smoke tests check every variant this way).
    A knob renamed in this release is read under its new name, with a warning (:data:`runner.RENAMED_KNOBS`)."""
    parameters = current_knob_names(parameters)
    check(notebook, parameters)
    answer = committed(notebook, name, parameters)
    if not execute:
        if answer is not None:
            print(
                f"{Path(notebook).stem} {name}: the committed answer (full mode, "
                f"{answer['provenance']['created'][:10]}, {duration(answer['wall_time_s'])})"
                + ("" if same_teachers(answer) else "; measured with a zoo teacher since rebuilt")
            )
        return answer
    if reuse and not SMOKE and answer is not None and _same_conditions(answer, same_commit=False):
        print(f"{Path(notebook).stem} {name}: reusing the committed answer ({answer['provenance']['created']})")
        return answer
    out = folder(notebook, name)
    record_path = (out / "smoke" if SMOKE else out) / f"{Path(notebook).stem}.json"
    wanted = recorded_parameters(parameters)
    if reuse and record_path.is_file():
        record = _read(record_path)
        if recorded_knobs(record) == wanted and _same_conditions(record, same_commit=SMOKE):
            print(f"{notebook} {name}: reusing {record_path} ({record['provenance']['created']})")
            return record
    args = [
        sys.executable,
        "-m",
        "kdlib.course.runner",
        "run",
        "--notebooks",
        str(_notebook_path(notebook)),
        "--results",
        str(out),
    ]
    for key, value in parameters.items():
        args += ["-p", key, repr(value)]
    knobs = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    notebook = Path(notebook).stem
    print(f"running {notebook} with {knobs} ({'smoke' if SMOKE else 'full'} mode) -> {out}", flush=True)
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode != 0 or not record_path.is_file():
        tail = "\n".join((done.stdout.strip() or done.stderr.strip()).splitlines()[-12:])
        raise RuntimeError(f"{notebook} with {knobs} failed; its executed copy is under {out}.\n{tail}")
    return _read(record_path)


def committed_path(notebook: str, name: str) -> Path:
    """Where the committed answer of the variant ``name`` lives."""
    stem = Path(notebook).stem
    return REFERENCE / "variants" / stem / name / f"{stem}.json"


def committed(notebook: str, name: str, parameters: dict) -> dict | None:
    """The committed full-mode answer of the variant ``name`` (its record), or None when there is none; one
    measured with other knobs is refused, naming both."""
    path = committed_path(notebook, name)
    if not path.is_file():
        return None
    record = _read(path)
    wanted = recorded_parameters(current_knob_names(parameters))
    if recorded_knobs(record) != wanted:
        raise ValueError(
            f"{path}: measured with {record.get('parameters')}, not {wanted}; run the variant again "
            f"in full mode and promote it (kdlib.course.variants.promote)"
        )
    return record


def reference(notebook: str) -> dict:
    """The committed reference run of ``notebook`` (full mode): the baseline of the committed answers."""
    path = REFERENCE / f"{Path(notebook).stem}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no committed reference run")
    return _read(path)


def committed_table(notebook: str):
    """The committed answers of ``notebook``: one row per variant with its knobs, when it ran and how long."""
    import pandas as pd

    stem = Path(notebook).stem
    rows = [
        {
            "variant": path.parent.name,
            "knobs": ", ".join(f"{k} = {v}" for k, v in recorded_knobs(rec).items()),
            "measured": rec["provenance"]["created"][:10],
            "wall time": duration(rec["wall_time_s"]),
        }
        for path in sorted((REFERENCE / "variants" / stem).glob(f"*/{stem}.json"))
        for rec in [_read(path)]
    ]
    return pd.DataFrame(rows, columns=["variant", "knobs", "measured", "wall time"]).set_index("variant")


def promote(notebook: str, name: str) -> Path:
    """Commit the full-mode answer of the variant ``name`` (its results file, not its executed copy) beside the
    reference run; refuses a smoke record or one made under other numerics than the reference run's."""
    source = folder(notebook, name) / f"{Path(notebook).stem}.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the variant {name!r} has not run in full mode")
    record = _read(source)
    if record.get("mode") != "full" or not _same_conditions(record, same_commit=False, mode="full"):
        raise ValueError(f"{source}: not a full-mode run under the reference numerics; it cannot be an answer")
    target = committed_path(notebook, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=1) + "\n")
    return target


def _same_conditions(record: dict, same_commit: bool, mode: str | None = None) -> bool:
    """Whether a run was made as the variants run now: this mode, the variants' numerics (the runner's
    reference numerics: a run under other kernels differs within seed noise, which would pass for an effect),
    the zoo teachers shipped now (:func:`same_teachers`) and, with ``same_commit``, the code of this checkout."""
    from kdlib.runtime import git_commit

    wanted = {k: os.environ.get(k, v) for k, v in reference_environment().items()}
    ran = record.get("provenance", {}).get("numerics", {})
    return (
        record.get("mode") == (mode or ("smoke" if SMOKE else "full"))
        and all(ran.get(k) == v for k, v in wanted.items())
        and same_teachers(record)
        and (not same_commit or record["provenance"].get("git_commit") == git_commit())
    )


def same_teachers(record: dict) -> bool:
    """Whether every zoo teacher that ``record`` lists (``teachers``: name -> sha256 of the weights) is the one the
    zoo ships now; a record made before results listed their teachers passes."""
    from kdlib import zoo

    return all(zoo.weights_digest(name) == digest for name, digest in record.get("teachers", {}).items())


def baseline(notebook: str, run_missing: bool = False) -> dict:
    """The notebook's own run to compare variants with: in full mode ``<results>/<notebook>.json``, else the
    committed reference run (``results/reference/``); in smoke mode the smoke run of this very checkout. A run
    under other numerics (e.g. by ``pytest --nbmake``) does not count. Without one, ``run_missing`` runs the
    notebook as committed (the variant ``as-committed``); otherwise this raises, naming the command."""
    stem = Path(notebook).stem
    candidates = [results_dir() / f"{stem}.json"]
    if not SMOKE:
        candidates.append(REPO_ROOT / "results" / "reference" / f"{stem}.json")
    for path in candidates:
        record = _read(path) if path.is_file() else None
        if record and not record.get("parameters") and _same_conditions(record, same_commit=SMOKE):
            return record
    if run_missing:
        return run(notebook, {}, "as-committed")
    raise FileNotFoundError(
        f"no comparable {'smoke' if SMOKE else 'full'} run of {stem} in "
        f"{candidates[0].parent}; produce it with {'KDLIB_SMOKE=1 ' if SMOKE else ''}"
        f"{rerun_command([stem])}"
    )


def figures(notebook: str, name: str, marker: str, missing_ok: bool = False) -> list[bytes]:
    """The PNG figures of the variant's executed copy, from the code cells whose source contains ``marker``
    (e.g. a line of the plotting cell), to show a variant's curves beside the answer. A committed answer keeps
    its numbers, not its executed copy: ``missing_ok`` then says so and returns no figure instead of raising."""
    import base64

    import nbformat

    out = folder(notebook, name)
    path = (out / "smoke" if SMOKE else out) / "executed" / f"{Path(notebook).stem}.ipynb"
    if not path.is_file():
        if missing_ok:
            print(
                f"{name}: no executed copy in {path.parent} (a committed answer keeps its numbers only); its "
                "figures appear once the variant has run here"
            )
            return []
        raise FileNotFoundError(f"{path}: the variant {name!r} has not run in this mode")
    nb = nbformat.read(path, as_version=4)
    return [
        base64.b64decode(o["data"]["image/png"])
        for c in nb.cells
        if c.cell_type == "code" and marker in c.source
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


def ran(records: dict) -> dict:
    """The records of the variants that ran (``records`` maps a label to a results record, or to None for a
    variant whose knobs were only checked); says which were not run."""
    for label, record in records.items():
        if record is None:
            print(
                f"{label}: no measured answer (knobs checked; no committed full-mode run): what the text says "
                "of it is a prediction"
            )
    return {label: record for label, record in records.items() if record is not None}


def table(records: dict, metrics=("eer",), models=None):
    """One row per model, one column per (variant, metric): ``records`` maps a label to a results record
    (None: a variant not run in this mode, left out). EERs, accuracies and phone error rates (a metric whose
    name holds ``eer`` or ``acc``, or has ``per`` as a word: ``eer_std``, ``accuracy``, ``clean_kws_acc``,
    ``harsh_per``) are shown in percent, minDCF as it is."""
    import pandas as pd

    columns = {}
    for label, record in records.items():
        if record is None:
            continue
        for key, entry in record["models"].items():
            if models is not None and key not in models:
                continue
            for metric in metrics:
                value = entry.get(metric)
                if value is not None and ("eer" in metric or "acc" in metric or "per" in metric.split("_")):
                    value = 100 * value
                columns.setdefault((label, metric), {})[key] = value
    frame = pd.DataFrame(columns)
    if models is not None:
        frame = frame.reindex([m for m in models if m in frame.index])
    return frame


def claims(records: dict):
    """Each claim's outcome under each variant (rows: claims, columns: variants). A record made before
    claims were judged by :mod:`kdlib.evaluation.verdicts` says so: its yes/no came from the older rule
    (means apart by more than the larger seed spread)."""
    import pandas as pd

    old = {True: "held (older rule)", False: "did not hold (older rule)"}
    return pd.DataFrame(
        {
            label: {c["claim"][:90]: c.get("outcome", old[bool(c["holds"])]) for c in record["claims"]}
            for label, record in records.items()
            if record is not None
        }
    )
