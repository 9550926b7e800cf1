"""``python -m kdlib.runner``: execute every notebook headlessly, keep executed copies, summarise results.

Executed notebooks go to ``results/executed/`` (the committed notebooks stay clean); each notebook writes
its own ``results/<notebook>.json``; ``results/SUMMARY.md`` aggregates them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kdlib.config import REPO_ROOT, SMOKE, results_dir


def run(notebooks: list[Path], timeout: int = 3600) -> list[tuple[str, float, str]]:
    import nbformat
    from nbclient import NotebookClient

    out_dir = results_dir() / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    for path in notebooks:
        start = time.time()
        print(f"running {path.name} ({'smoke' if SMOKE else 'full'} mode) ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        status = "ok"
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as err:  # keep going: report every notebook, fail at the end
            status = f"FAILED: {type(err).__name__}: {str(err).splitlines()[-1] if str(err) else ''}"
        nbformat.write(nb, out_dir / path.name)
        report.append((path.name, time.time() - start, status))
        print(f"  {status} in {time.time() - start:.0f} s -> {out_dir / path.name}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.runner", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((REPO_ROOT / "notebooks").glob("[0-9]*.ipynb"))
    report = run(paths)
    print("\nwall time per notebook:")
    for name, seconds, status in report:
        print(f"  {name:40s} {seconds:7.0f} s  {status}")
    print(f"\nresults: {results_dir()}  (SUMMARY.md, <notebook>.json, executed/)")
    return 0 if all(status == "ok" for _, _, status in report) else 1


if __name__ == "__main__":
    sys.exit(main())
