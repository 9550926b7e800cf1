"""``python -m kdlib.course.runner run``: execute notebooks headlessly, keep executed copies, summarise results.

``-p KEY VALUE`` runs a notebook with other knobs, with papermill's semantics: each notebook's knobs cell is
tagged ``parameters``; the runner inserts a cell tagged ``injected-parameters`` after it that sets the given
values, and the results file records them (``parameters``). ``--results DIR`` writes the results,
the executed copies and the kept models under ``DIR`` instead of ``results/``.

``python -m kdlib.course.runner script NOTEBOOK [-p KEY VALUE ...]`` writes the notebook, knobs injected, as a plain
Python script (``results/scripts/<notebook>.py`` unless ``--out``) for a launcher: ``torchrun --nproc-per-node 4
results/scripts/01_os_kdft.py`` trains data-parallel (:mod:`kdlib.train.distributed`); every rank runs the whole
script, and only rank 0 writes results.

Executed notebooks go to ``results/executed/`` (the committed notebooks stay clean); each notebook writes
its own ``results/<notebook>.json``; ``results/SUMMARY.md`` aggregates them, and ``results/run_times.json``
records each notebook's wall time and its seconds per section. A full run never fails for being
slow: there is no per-cell time limit unless ``--cell-timeout`` asks for one (CI). By default the kernels
run with kdlib's reference numerics (:data:`kdlib.runtime.REFERENCE_NUMERICS` and 2 threads), so that a run
on another AMD x86 machine reproduces the reference results bit for bit (an Intel one does not yet: see
docs/reproducibility.md); ``--numerics native`` uses every core
and the processor's own kernels instead (faster on a big machine; results then differ within seed noise);
``--numerics fast`` is native with every training loop in bfloat16 autocast (``KDLIB_PRECISION=bf16``), the
fastest mode on a processor with AVX-512 BF16 or AMX (and on a GPU); its results are recorded as such and differ
from the reference ones (docs/performance.md compares them). ``run_times.json`` also records each kernel's peak
resident memory.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

from kdlib.runtime import REFERENCE_NUMERICS, REPO_ROOT, SMOKE, TIMES_FILE, cpu, hardware, results_dir

REFERENCE_THREADS = 2


def reference_environment() -> dict:
    """The environment of kdlib's reference numerics: the kernel settings and the thread count."""
    return {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": str(REFERENCE_THREADS)}


NUMERICS = ("reference", "native", "fast")
"""The runner's numerics modes: reference (bit-reproducible), native (the processor's own kernels, every core) and
fast (native, training in bfloat16 autocast)."""


def set_numerics(numerics: str = "reference") -> dict:
    """Put the environment of a numerics mode (:data:`NUMERICS`) in this process (inherited by the kernels it
    starts), unless the user already set a variable; return what is in force."""
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {NUMERICS}, got {numerics!r}")
    wanted = {"reference": reference_environment(), "fast": {"KDLIB_PRECISION": "bf16"}}.get(numerics, {})
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ.get(key) for key in (*REFERENCE_NUMERICS, "OMP_NUM_THREADS", "KDLIB_PRECISION")}


def notebook_path(name: str) -> Path:
    """A notebook given on the command line: a path as given when it exists, else the course notebook whose name
    starts with it (``01`` or ``01_os_kdft`` for ``notebooks/01_os_kdft.ipynb``) when exactly one does."""
    path = Path(name)
    if path.exists() or path.suffix == ".ipynb":
        return path
    matches = sorted((REPO_ROOT / "notebooks").glob(f"{name}*.ipynb"))
    return matches[0] if len(matches) == 1 else path


def rerun_command(names) -> str:
    """The command that runs the named notebooks (``"02_iml_kd"`` or a path) headlessly, as errors quote it."""
    paths = [str(n) if str(n).endswith(".ipynb") else f"notebooks/{n}.ipynb" for n in names]
    return "python -m kdlib.course.runner run --notebooks " + " ".join(paths)


PARAMETERS_TAG, INJECTED_TAG = "parameters", "injected-parameters"


def recorded_parameters(parameters: dict) -> dict:
    """``parameters`` (knob -> value) as a results file records them: through JSON, a value JSON cannot hold by its
    ``repr`` (tuples become lists, paths their repr)."""
    return json.loads(_parameters_json(parameters))


def _parameters_json(parameters: dict) -> str:
    """What the runner hands a kernel in ``$KDLIB_PARAMETERS``."""
    return json.dumps(parameters, default=repr)


def parse_value(text: str):
    """A ``-p`` value as Python reads it (``3``, ``1e-4``, ``(0, 1)``, ``True``, ``None``, ``'x'``), else the
    plain string (``-p TEACHER hubert-tiny``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def knob_names(source: str) -> list[str]:
    """The names a knobs cell assigns at top level (``A = ...``, ``A, B = ...``)."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            names += [t.id for t in elts if isinstance(t, ast.Name)]
    return names


def inject_parameters(nb, parameters: dict, name: str = "notebook"):
    """Insert, after the cell tagged ``parameters``, a cell tagged ``injected-parameters`` that assigns
    ``parameters`` (papermill's semantics). Refuses a notebook without a knobs cell and a knob it does not
    have, naming them, so that a renamed knob fails loudly instead of being ignored."""
    import nbformat

    found = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise ValueError(f"{name}: needs exactly one cell tagged {PARAMETERS_TAG!r} (the knobs cell), "
                         f"found {len(found)}")
    known = knob_names(nb.cells[found[0]].source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{name}: no knob named {', '.join(unknown)}; its knobs are {', '.join(known)}")
    lines = ["# Injected by python -m kdlib.course.runner -p"] + [f"{k} = {v!r}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    cell.id = INJECTED_TAG
    nb.cells.insert(found[0] + 1, cell)
    nbformat.validator.normalize(nb)
    return nb


def _failure(path: Path, nb, cell_index: int | None, err: Exception, executed: Path) -> str:
    """What failed, where, and what to do: the notebook, the cell (its number and first line), the error."""
    lines = str(err).strip().splitlines()
    where = "before the first cell"
    if cell_index is not None:
        code_number = sum(c.cell_type == "code" for c in nb.cells[:cell_index + 1])
        first = (nb.cells[cell_index].source.strip().splitlines() or [""])[0][:80]
        where = f"cell {cell_index} (code cell {code_number}: {first!r})"
    hint = ("raise or drop --cell-timeout" if type(err).__name__ == "CellTimeoutError" else
            f"open {path.name} in JupyterLab and run it from the top to see the error in place")
    return (f"FAILED: {path} at {where}: {type(err).__name__}: {lines[-1] if lines else ''}\n"
            f"    executed copy up to the failure: {executed}\n    what to do: {hint}; rerun it alone with\n"
            f"    {rerun_command([path])}")


"""Written by :func:`run` in the results folder: each notebook's wall time and where it went."""


def section_seconds(nb) -> list[dict]:
    """Where an executed notebook's time went: seconds per section (the cells under each markdown heading of
    level 1 or 2; subsections count to their section), from the timestamps nbclient records in each cell's
    metadata, in notebook order."""
    from datetime import datetime

    sections, heading = {}, "(before the first heading)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            titles = [line.lstrip("#").strip() for line in cell.source.splitlines()
                      if line.startswith(("# ", "## "))]
            heading = titles[0] if titles else heading
            continue
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            sections[heading] = sections.get(heading, 0.0) + (end - start).total_seconds()
    return [{"section": name, "seconds": round(seconds, 1)} for name, seconds in sections.items()]


class PeakMemory:
    """The peak resident memory of a kernel process (``VmHWM`` in ``/proc/<pid>/status``, Linux), read after
    every cell while the kernel lives; None where it cannot be read."""

    def __init__(self):
        self.client, self.mb = None, None

    def read(self, **_) -> None:
        try:
            pid = self.client.km.provisioner.pid
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            kb = next(int(line.split()[1]) for line in lines if line.startswith("VmHWM:"))
        except (AttributeError, OSError, StopIteration, ValueError):
            return
        self.mb = max(self.mb or 0.0, kb / 1024)


def record_times(name: str, seconds: float, status: str, executed, peak_mb: float | None = None) -> Path:
    """Merge one executed notebook into ``results/run_times.json`` (a notebook run later replaces its entry):
    wall time, status, mode, numerics, the kernel's peak memory, hardware and seconds per section."""
    path = results_dir() / TIMES_FILE
    record = json.loads(path.read_text()) if path.is_file() else {"notebooks": {}}
    record["notebooks"][Path(name).stem] = {
        "seconds": round(seconds, 1), "status": status.splitlines()[0], "mode": "smoke" if SMOKE else "full",
        "precision": os.environ.get("KDLIB_PRECISION") or "fp32",
        "isa_capped": os.environ.get("ATEN_CPU_CAPABILITY") == REFERENCE_NUMERICS["ATEN_CPU_CAPABILITY"],
        "peak_memory_mb": None if peak_mb is None else round(peak_mb),
        "hardware": hardware(), "cpu": cpu(), "sections": section_seconds(executed)}
    record["notebooks"] = dict(sorted(record["notebooks"].items()))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def run(notebooks: list[Path], cell_timeout: int | None = None,
        parameters: dict | None = None) -> list[tuple[str, float, str]]:
    """Execute each notebook in a fresh kernel, with ``parameters`` (knob values) injected after its knobs
    cell; return ``(name, seconds, "ok" or the failure)`` per notebook."""
    import nbformat
    from nbclient import NotebookClient

    parameters = parameters or {}
    prepared = [nbformat.read(path, as_version=4) for path in notebooks]
    for path, nb in zip(notebooks, prepared) if parameters else ():  # every notebook has the knobs, before any runs
        inject_parameters(nb, parameters, str(path))
    kernel_env = {**os.environ, "KDLIB_PARAMETERS": _parameters_json(parameters)}  # results record them
    out_dir = results_dir() / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    for path, nb in zip(notebooks, prepared):
        start = time.time()
        print(f"running {path.name} ({'smoke' if SMOKE else 'full'} mode) ...", flush=True)
        current: dict = {"index": None}
        peak = PeakMemory()
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                on_cell_start=lambda cell, cell_index: current.update(index=cell_index),
                                on_cell_executed=peak.read)
        peak.client = client
        status = "ok"
        try:
            client.execute(env=kernel_env)
        except Exception as err:  # keep going: report every notebook, fail at the end
            status = _failure(path, nb, current["index"], err, out_dir / path.name)
        nbformat.write(nb, out_dir / path.name)
        report.append((path.name, time.time() - start, status))
        record_times(*report[-1], nb, peak.mb)
        print(f"  {status} in {report[-1][1]:.0f} s -> {out_dir / path.name}", flush=True)
    return report


def to_script(path: Path, parameters: dict | None = None) -> str:
    """The notebook's code cells, knobs injected, as one Python script that runs where the notebook runs (its
    folder), headless, recording the knobs in its results like a ``run``. Markdown cells become comments."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if parameters:
        inject_parameters(nb, parameters, str(path))
    prelude = [
        f"# {path.name} as a script, made by python -m kdlib.course.runner script; launch it with python, torchrun or",
        "# accelerate launch. Every process runs all of it; kdlib.train.fit trains data-parallel when there are",
        "# several, and only rank 0 writes results.",
        "import json, os",
        "os.environ.setdefault('MPLBACKEND', 'Agg')",
        "os.environ.setdefault('KDLIB_HEADLESS', '1')",
        f"os.environ.setdefault('KDLIB_PARAMETERS', {json.dumps(_parameters_json(parameters or {}))})",
        f"os.chdir({str(path.resolve().parent)!r})",
    ]
    parts = ["\n".join(prelude)]
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append("\n".join("# " + line if line else "#" for line in cell.source.splitlines()))
        elif cell.cell_type == "code" and cell.source.strip():
            parts.append(f"# In[{number}]\n{cell.source}")
    return "\n\n".join(parts) + "\n"


LAB_DIR = REPO_ROOT / "lab"
LAB_SERVER_OPTIONS = ("--ContentsManager.allow_hidden=True",)
"""What ``make lab`` passes to JupyterLab beyond the folder: hidden paths served, so that jump to definition can
open kdlib's source through ``lab/.lsp_symlink`` (see :func:`link_to_filesystem_root`)."""
"""Where ``make lab`` opens JupyterLab: the learner's working copy of the notebooks (git-ignored), so that running
and saving a notebook leaves the tracked ``notebooks/`` and ``git status`` as they were."""


def lab_copy(source: Path = REPO_ROOT / "notebooks", dest: Path = LAB_DIR) -> dict[str, list[Path]]:
    """Copy every notebook of ``source`` (and of its subfolders, the solutions) into ``dest`` where ``dest`` has none
    of that name yet. A notebook already there is the learner's and is never overwritten; those whose tracked
    original changed since the copy was made are listed under ``"behind"`` (delete the copy to take the new one).
    Returns ``{"copied": [...], "kept": [...], "behind": [...]}`` (paths in ``dest``)."""
    import shutil

    out: dict[str, list[Path]] = {"copied": [], "kept": [], "behind": []}
    for original in sorted(Path(source).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in original.parts:
            continue
        copy = Path(dest) / original.relative_to(source)
        if copy.exists():
            out["kept"].append(copy)
            if original.stat().st_mtime > copy.stat().st_mtime:
                out["behind"].append(copy)
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(original, copy)
        out["copied"].append(copy)
    link_to_filesystem_root(Path(dest))
    return out


def link_to_filesystem_root(lab_root: Path) -> Path:
    """``<lab_root>/.lsp_symlink`` pointing at ``/``: jupyterlab-lsp opens a definition that lies outside the
    server's root (kdlib's source, from a notebook in ``lab/``) at ``/.lsp_symlink/<absolute path>``, which the
    server can serve through this link when it shows hidden files (``make lab`` passes
    ``--ContentsManager.allow_hidden=True``). Kept if present."""
    link = lab_root / ".lsp_symlink"
    lab_root.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path(lab_root.resolve().anchor), target_is_directory=True)
    return link


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute notebooks headlessly (default: every notebook in notebooks/)")
    r.add_argument("--notebooks", nargs="+", default=None, metavar="NOTEBOOK", help="notebooks to run")
    r.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS",
                   help="fail a cell that runs longer than this (default: no limit)")
    r.add_argument("--numerics", choices=NUMERICS, default="reference",
                   help="reference: AVX2 kernels and 2 threads, bit-reproducible across AMD machines, not yet "
                        "from AMD to Intel (default); "
                        "native: every core and the processor's own kernels; fast: native, training in bfloat16")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="set a knob of the notebooks' knobs cell (papermill's -p); repeat for several")
    r.add_argument("--results", default=None, metavar="DIR",
                   help="write results, executed copies and models under DIR (default: results/)")
    w = sub.add_parser("script", help="write a notebook as a Python script, e.g. for torchrun")
    w.add_argument("notebook", help="the notebook to convert")
    w.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="set a knob of its knobs cell (papermill's -p); repeat for several")
    w.add_argument("--out", default=None, metavar="FILE",
                   help="where to write the script (default: results/scripts/<notebook>.py)")
    sub.add_parser("lab-copy", help=f"copy the notebooks into {LAB_DIR.name}/, the working copy make lab opens "
                                    "(never overwrites a notebook already there)")
    sub.add_parser("lab-options", help="print the options make lab passes to JupyterLab")
    args = parser.parse_args(argv)
    if args.command == "lab-options":
        print(" ".join(LAB_SERVER_OPTIONS))
        return 0
    if args.command == "lab-copy":
        done = lab_copy()
        print(f"{LAB_DIR}: {len(done['copied'])} notebooks copied, {len(done['kept'])} of yours kept")
        for path in done["behind"]:
            print(f"  {path.relative_to(LAB_DIR)}: the tracked notebook changed since your copy; delete your copy "
                  "to take the new one")
        return 0
    if args.command == "script":
        path = Path(args.notebook)
        if not path.exists():
            parser.error(f"no such notebook: {path}")
        try:
            text = to_script(path, {key: parse_value(value) for key, value in args.parameter})
        except ValueError as err:
            parser.error(str(err))
        out = Path(args.out) if args.out else results_dir() / "scripts" / f"{path.stem}.py"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"{out}  (launch: torchrun --nproc-per-node N {out})")
        return 0
    if args.results:
        os.environ["KDLIB_RESULTS"] = str(Path(args.results).resolve())
    parameters = {key: parse_value(value) for key, value in args.parameter}
    in_force = set_numerics(args.numerics)
    os.environ["KDLIB_HEADLESS"] = "1"  # saved notebooks get one line per loop, not frozen widget bars
    print("numerics: " + ", ".join(f"{k}={v}" for k, v in in_force.items()), flush=True)
    print(f"processor: {hardware()}, {cpu()}", flush=True)  # the same name can hide different generations
    paths = [notebook_path(p) for p in args.notebooks or []] or sorted((REPO_ROOT / "notebooks").glob("[0-9]*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)} (give a path, or a course notebook's number: 01)")
    try:
        report = run(paths, args.cell_timeout, parameters)
    except ValueError as err:
        parser.error(str(err))
    print("\nwall time per notebook:")
    for name, seconds, status in report:
        print(f"  {name:40s} {seconds:7.0f} s  {status.splitlines()[0]}")
    print(f"\nresults: {results_dir()}  (SUMMARY.md, <notebook>.json, executed/)")
    return 0 if all(status == "ok" for _, _, status in report) else 1


if __name__ == "__main__":
    sys.exit(main())
