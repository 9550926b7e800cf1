"""kdlib's rooms hold together: no import cycles, no private names across modules, no flat names of kdlib 0.1 left
in the code, notebooks or docs (they still import, with a warning), and ruff's checks pass."""

import ast
import importlib
import re
import subprocess
import sys
import warnings

import pytest

import kdlib
from kdlib.runtime import REPO_ROOT

PACKAGE = REPO_ROOT / "kdlib"


def _module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def _imported(name: str, node) -> set[str]:
    """The kdlib modules an import statement in module ``name`` runs (packages on the way included)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = set()
    for target in targets:
        parts = target.split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in MODULES}
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the kdlib modules it imports anywhere (at the top or inside a function: a function's import that
    closes a loop is a cycle that only waits for its call), without the module's own parent packages, which Python
    imports first anyway."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        graph[name] = (
            {
                m
                for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for m in _imported(name, node)
            }
            - {name}
            - ancestors
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_kdlib_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and graph["kdlib.kd.os_kdft"] >= {"kdlib.kd.losses", "kdlib.models.speaker"}
    assert not cycles(graph), cycles(graph)


def test_no_private_name_crosses_a_module():
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kdlib"):
                crossing += [
                    f"{name} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not crossing, crossing


def _text_files():
    tracked = subprocess.run(
        [
            "git",
            "ls-files",
            "kdlib",
            "tests",
            "notebooks",
            "docs",
            "experiments",
            "README.md",
            "Makefile",
            "data/README.md",
            "conftest.py",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO_ROOT / f for f in tracked if f.endswith((".py", ".ipynb", ".md")) or f == "Makefile"]


def test_nothing_uses_the_flat_names_of_kdlib_0_1():
    allowed = {PACKAGE / "__init__.py", REPO_ROOT / "tests" / "test_layout.py", REPO_ROOT / "docs" / "package.md"}
    old = "|".join(sorted(kdlib.MOVED, key=len, reverse=True)) + "|transfer"
    pattern = re.compile(rf"\bkdlib\.({old})\b(?!\.py)|\bfrom kdlib import [^\n]*\b({old})\b")
    found = [
        f"{path.relative_to(REPO_ROOT)}: {m.group(0)}"
        for path in _text_files()
        if path not in allowed
        for m in pattern.finditer(path.read_text())
    ]
    assert not found, found


@pytest.mark.parametrize("old", ["evaluate", "corpus", "config", "runner"])
def test_a_flat_name_still_imports_the_same_module_with_a_warning(old):
    new = importlib.import_module(f"kdlib.{kdlib.MOVED[old]}")
    sys.modules.pop(f"kdlib.{old}", None)
    vars(kdlib).pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"kdlib\.{old} moved to kdlib\.{re.escape(kdlib.MOVED[old])}"):
        module = importlib.import_module(f"kdlib.{old}")
    assert module is new and module.__spec__.name == new.__name__  # the module keeps its own identity
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert importlib.import_module(new.__name__) is new  # the new name: no warning
    sys.modules.pop(f"kdlib.{old}", None)
    vars(kdlib).pop(old, None)


def test_a_module_inside_a_moved_package_follows_it():
    from kdlib.data.corpus import real

    sys.modules.pop("kdlib.corpus.real", None)
    with pytest.warns(DeprecationWarning, match="kdlib.corpus moved"):
        assert importlib.import_module("kdlib.corpus.real") is real
    sys.modules.pop("kdlib.corpus.real", None)
    sys.modules.pop("kdlib.corpus", None)
    vars(kdlib).pop("corpus", None)


def test_the_split_transfer_module_still_offers_its_names_with_a_warning():
    from kdlib.data import unlabelled
    from kdlib.kd import real_teacher

    sys.modules.pop("kdlib.transfer", None)
    vars(kdlib).pop("transfer", None)
    with pytest.warns(DeprecationWarning, match="kdlib.data.unlabelled and kdlib.kd.real_teacher"):
        from kdlib import transfer
    assert transfer.distil_real_teacher is real_teacher.distil_real_teacher
    assert transfer.language_voices is unlabelled.language_voices
    sys.modules.pop("kdlib.transfer", None)
    vars(kdlib).pop("transfer", None)


def test_ruff_finds_nothing_in_the_code_and_the_notebooks():
    ruff = REPO_ROOT / ".venv" / "bin" / "ruff"
    command = [
        str(ruff) if ruff.exists() else "ruff",
        "check",
        "--no-cache",
        "kdlib",
        "tests",
        "experiments",
        "notebooks",
        "conftest.py",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_code_is_as_the_formatter_writes_it():
    """kdlib, tests and experiments are formatted by ``ruff format`` (pyproject.toml; notebooks are excluded there)."""
    ruff = REPO_ROOT / ".venv" / "bin" / "ruff"
    command = [str(ruff) if ruff.exists() else "ruff", "format", "--check", "--no-cache", "kdlib", "tests"]
    done = subprocess.run(command + ["experiments", "conftest.py"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"run `ruff format kdlib tests experiments conftest.py`:\n{done.stdout}{done.stderr}"
