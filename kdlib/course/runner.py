"""``python -m kdlib.course.runner run``: execute notebooks headlessly, keep executed copies, summarise results.

Notebooks run through papermill (https://papermill.readthedocs.io): ``-p KEY VALUE`` sets a knob the way
``papermill -p`` does (each notebook's knobs cell is tagged ``parameters``; papermill inserts a cell tagged
``injected-parameters`` after it), and papermill writes the executed copy after every cell, so a long run can be
watched in it. The runner adds what papermill does not do: it refuses a knob the notebook does not have before
anything runs, sets kdlib's numerics, records the knobs in the results file (``parameters``), and keeps each
notebook's run time, seconds per section and peak memory. ``--results DIR`` writes the results, the executed
copies and the kept models under ``DIR`` instead of ``results/``.

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
import contextlib
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
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            names += [t.id for t in elts if isinstance(t, ast.Name)]
    return names


RENAMED_KNOBS = {"KD_SCALE": "KD_WEIGHT"}
"""Knobs renamed in this release (old -> new): notebook 01's KD weight now has notebook 02's name. The old names
are still read, with a warning, in ``-p`` and in committed records; they go in the next release."""


def current_knob_names(parameters: dict, warn: bool = True) -> dict:
    """``parameters`` with renamed knobs (:data:`RENAMED_KNOBS`) under their current names."""
    import warnings

    renamed = {key: RENAMED_KNOBS[key] for key in parameters if key in RENAMED_KNOBS}
    if renamed and warn:
        warnings.warn(
            "renamed knobs: "
            + ", ".join(f"{a} is now {b}" for a, b in renamed.items())
            + "; the old names go in the next release",
            FutureWarning,
            2,
        )  # shown to learners
    return {renamed.get(key, key): value for key, value in parameters.items()}


def recorded_knobs(record: dict) -> dict:
    """The knobs a results record was run with, under their current names (records made before a knob was renamed
    keep its old name)."""
    return current_knob_names(record.get("parameters") or {}, warn=False)


def check_knobs(nb, parameters: dict, name: str = "notebook") -> list[str]:
    """The knobs of ``nb`` (the names its cell tagged ``parameters`` assigns). Refuses a notebook without exactly
    one knobs cell, and a knob it does not have, naming them, so that a renamed knob fails loudly instead of being
    ignored (papermill only logs a warning)."""
    found = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(found) != 1:
        raise ValueError(
            f"{name}: needs exactly one cell tagged {PARAMETERS_TAG!r} (the knobs cell), found {len(found)}"
        )
    known = knob_names(nb.cells[found[0]].source)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{name}: no knob named {', '.join(unknown)}; its knobs are {', '.join(known)}")
    return known


def _knob_translator():
    """papermill's Python translator, writing a tuple as a tuple (papermill's own writes it as a string) and any
    other value it does not know by its ``repr``, as ``-p`` reads values (:func:`parse_value`)."""
    from papermill.translators import PythonTranslator

    class KnobTranslator(PythonTranslator):
        @classmethod
        def translate(cls, val):
            if isinstance(val, tuple):
                return "(" + ", ".join(cls.translate(v) for v in val) + ("," if len(val) == 1 else "") + ")"
            if val is None or isinstance(val, (str, bool, int, float, dict, list)):
                return super().translate(val)
            return repr(val)

    return KnobTranslator


def _use_knob_translator() -> None:
    from papermill.translators import papermill_translators

    papermill_translators.register("python", _knob_translator())


def inject_parameters(nb, parameters: dict, name: str = "notebook"):
    """``nb`` with the cell tagged ``injected-parameters`` that papermill inserts after the knobs cell, assigning
    ``parameters``; a knob the notebook does not have is refused first (:func:`check_knobs`)."""
    from papermill.parameterize import parameterize_notebook

    check_knobs(nb, parameters, name)
    nb.metadata.setdefault("papermill", {})  # what papermill's own loader adds: its metadata, every cell's tags
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    _use_knob_translator()
    return parameterize_notebook(nb, parameters, kernel_name="python3", language="python")


def _failure(path: Path, nb, cell_index: int | None, err: Exception, executed: Path) -> str:
    """What failed, where, and what to do: the notebook, the cell (its number and first line), the error."""
    if hasattr(err, "ename"):  # papermill's PapermillExecutionError: the error the cell raised
        lines, name = [f"{err.evalue}"], err.ename
    else:
        lines, name = str(err).strip().splitlines(), type(err).__name__
    where = "before the first cell"
    if cell_index is not None:
        code_number = sum(c.cell_type == "code" for c in nb.cells[: cell_index + 1])
        first = (nb.cells[cell_index].source.strip().splitlines() or [""])[0][:80]
        where = f"cell {cell_index} (code cell {code_number}: {first!r})"
    hint = (
        "raise or drop --cell-timeout"
        if name == "CellTimeoutError"
        else f"open {path.name} in JupyterLab and run it from the top to see the error in place"
    )
    return (
        f"FAILED: {path} at {where}: {name}: {lines[-1] if lines else ''}\n"
        f"    executed copy up to the failure: {executed}\n    what to do: {hint}; rerun it alone with\n"
        f"    {rerun_command([path])}"
    )


"""Written by :func:`run` in the results folder: each notebook's wall time and where it went."""


def section_seconds(nb) -> list[dict]:
    """Where an executed notebook's time went: seconds per section (the cells under each markdown heading of
    level 1 or 2; subsections count to their section), from the timestamps nbclient records in each cell's
    metadata, in notebook order."""
    from datetime import datetime

    sections, heading = {}, "(before the first heading)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            titles = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith(("# ", "## "))]
            heading = titles[0] if titles else heading
            continue
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (
                datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                for k in ("iopub.execute_input", "shell.execute_reply")
            )
            sections[heading] = sections.get(heading, 0.0) + (end - start).total_seconds()
    return [{"section": name, "seconds": round(seconds, 1)} for name, seconds in sections.items()]


class PeakMemory:
    """The peak resident memory of the kernel this process started (``VmHWM`` in ``/proc/<pid>/status``, Linux),
    read after every cell while the kernel lives; None where it cannot be read."""

    def __init__(self):
        self.mb = None

    @staticmethod
    def kernel_pids() -> list[int]:
        """This process's children that run an IPython kernel."""
        pids = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                if int(fields["PPid"]) == os.getpid():
                    command = (status.parent / "cmdline").read_bytes()
                    pids += [int(status.parent.name)] if b"ipykernel" in command else []
            except (OSError, KeyError, ValueError):
                continue
        return pids

    def read(self, **_) -> None:
        for pid in self.kernel_pids():
            try:
                lines = Path(f"/proc/{pid}/status").read_text().splitlines()
                kb = next(int(line.split()[1]) for line in lines if line.startswith("VmHWM:"))
            except (OSError, StopIteration, ValueError):
                continue
            self.mb = max(self.mb or 0.0, kb / 1024)


def record_times(name: str, seconds: float, status: str, executed, peak_mb: float | None = None) -> Path:
    """Merge one executed notebook into ``results/run_times.json`` (a notebook run later replaces its entry):
    wall time, status, mode, numerics, the kernel's peak memory, hardware and seconds per section."""
    path = results_dir() / TIMES_FILE
    record = json.loads(path.read_text()) if path.is_file() else {"notebooks": {}}
    record["notebooks"][Path(name).stem] = {
        "seconds": round(seconds, 1),
        "status": status.splitlines()[0],
        "mode": "smoke" if SMOKE else "full",
        "precision": os.environ.get("KDLIB_PRECISION") or "fp32",
        "isa_capped": os.environ.get("ATEN_CPU_CAPABILITY") == REFERENCE_NUMERICS["ATEN_CPU_CAPABILITY"],
        "peak_memory_mb": None if peak_mb is None else round(peak_mb),
        "hardware": hardware(),
        "cpu": cpu(),
        "sections": section_seconds(executed),
    }
    record["notebooks"] = dict(sorted(record["notebooks"].items()))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def run(
    notebooks: list[Path], cell_timeout: int | None = None, parameters: dict | None = None
) -> list[tuple[str, float, str]]:
    """Execute each notebook through papermill in a fresh kernel, in its own folder, with ``parameters`` (knob
    values) injected after its knobs cell; return ``(name, seconds, "ok" or the failure)`` per notebook."""
    import copy

    import nbformat
    import papermill

    parameters = parameters or {}
    for path in notebooks if parameters else ():  # every notebook has the knobs, before any runs
        check_knobs(nbformat.read(path, as_version=4), parameters, str(path))
    _use_knob_translator()
    out_dir = results_dir() / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    with _knobs_for_kernels(parameters):  # each kernel records them in its results
        for path in notebooks:
            start = time.time()
            print(f"running {path.name} ({'smoke' if SMOKE else 'full'} mode) ...", flush=True)
            executed, current, peak = out_dir / path.name, {"nb": None, "index": None}, PeakMemory()
            status = "ok"
            try:
                done = papermill.execute_notebook(
                    path,
                    executed,
                    parameters=parameters or None,
                    kernel_name="python3",
                    language="python",
                    cwd=str(path.parent),
                    execution_timeout=cell_timeout,
                    progress_bar=sys.stderr.isatty(),
                    on_notebook_start=lambda notebook: current.update(nb=copy.deepcopy(notebook)),  # before error marks
                    on_cell_start=lambda cell, cell_index: current.update(index=cell_index),
                    on_cell_executed=peak.read,
                )
            except Exception as err:  # keep going: report every notebook, fail at the end
                index = getattr(err, "cell_index", current["index"])
                status = _failure(path, current["nb"] or nbformat.read(path, as_version=4), index, err, executed)
                done = nbformat.read(executed, as_version=4) if executed.is_file() else nbformat.v4.new_notebook()
            report.append((path.name, time.time() - start, status))
            record_times(*report[-1], done, peak.mb)
            print(f"  {status} in {report[-1][1]:.0f} s -> {executed}", flush=True)
    return report


@contextlib.contextmanager
def _knobs_for_kernels(parameters: dict):
    """Hand the knobs to the kernels started inside it, in ``$KDLIB_PARAMETERS`` (a kernel inherits this process's
    environment); the variable is restored afterwards."""
    before = os.environ.get("KDLIB_PARAMETERS")
    os.environ["KDLIB_PARAMETERS"] = _parameters_json(parameters)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("KDLIB_PARAMETERS", None)
        else:
            os.environ["KDLIB_PARAMETERS"] = before


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


def _knob_option(parser: argparse.ArgumentParser, whose: str) -> None:
    """``-p KEY VALUE``, papermill's option, repeatable; read with :func:`knobs_given`."""
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help=f"set a knob of {whose} (papermill's -p); repeat for several",
    )


def knobs_given(pairs: list[list[str]]) -> dict:
    """The knobs of ``-p`` options, values parsed (:func:`parse_value`), renamed knobs under their new names."""
    return current_knob_names({key: parse_value(value) for key, value in pairs})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute notebooks headlessly (default: every notebook in notebooks/)")
    r.add_argument("--notebooks", nargs="+", default=None, metavar="NOTEBOOK", help="notebooks to run")
    r.add_argument(
        "--cell-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="fail a cell that runs longer than this (default: no limit)",
    )
    r.add_argument(
        "--numerics",
        choices=NUMERICS,
        default="reference",
        help="reference: AVX2 kernels and 2 threads, bit-reproducible across AMD machines, not yet "
        "from AMD to Intel (default); "
        "native: every core and the processor's own kernels; fast: native, training in bfloat16",
    )
    _knob_option(r, "the notebooks' knobs cell")
    r.add_argument(
        "--results",
        default=None,
        metavar="DIR",
        help="write results, executed copies and models under DIR (default: results/)",
    )
    w = sub.add_parser("script", help="write a notebook as a Python script, e.g. for torchrun")
    w.add_argument("notebook", help="the notebook to convert")
    _knob_option(w, "its knobs cell")
    w.add_argument(
        "--out", default=None, metavar="FILE", help="where to write the script (default: results/scripts/<notebook>.py)"
    )
    sub.add_parser(
        "lab-copy",
        help=f"copy the notebooks into {LAB_DIR.name}/, the working copy make lab opens "
        "(never overwrites a notebook already there)",
    )
    sub.add_parser("lab-options", help="print the options make lab passes to JupyterLab")
    args = parser.parse_args(argv)
    if args.command == "lab-options":
        print(" ".join(LAB_SERVER_OPTIONS))
        return 0
    if args.command == "lab-copy":
        done = lab_copy()
        print(f"{LAB_DIR}: {len(done['copied'])} notebooks copied, {len(done['kept'])} of yours kept")
        for path in done["behind"]:
            print(
                f"  {path.relative_to(LAB_DIR)}: the tracked notebook changed since your copy; delete your copy "
                "to take the new one"
            )
        return 0
    if args.command == "script":
        path = Path(args.notebook)
        if not path.exists():
            parser.error(f"no such notebook: {path}")
        try:
            text = to_script(path, knobs_given(args.parameter))
        except ValueError as err:
            parser.error(str(err))
        out = Path(args.out) if args.out else results_dir() / "scripts" / f"{path.stem}.py"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"{out}  (launch: torchrun --nproc-per-node N {out})")
        return 0
    if args.results:
        os.environ["KDLIB_RESULTS"] = str(Path(args.results).resolve())
    parameters = knobs_given(args.parameter)
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
