"""The house stays as HOUSE.md draws it: each module imports only from levels below its own, the
imports make no circle, and importing the network loads nothing above it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpubp"

# HOUSE.md's levels (docs/architecture.md draws the same picture, with what each module holds)
LEVELS = {
    "kernelkit": 0, "formula": 0, "kernels": 0, "_io": 0, "blas": 0, "npzfiles": 0,
    "probe": 0, "device": 1, "backend": 1,
    "params": 2, "optim": 2, "activations": 2, "losses": 2, "initializers": 2, "labels": 2, "metrics": 2,
    "loaders": 2, "data": 2, "validation": 2, "rows": 2, "settings": 2, "columns": 2, "reference": 2,
    "csvfiles": 2, "limits": 2, "idxfiles": 2, "tables": 2,
    "network": 3, "checkpoint": 3, "batches": 3, "stopping": 3, "members": 3,
    "training": 4, "parallel": 4, "model": 4, "state": 4,
    "bench": 5, "gradcheck": 5, "plots": 5, "export": 5, "monitor": 5,
    "cli": 6, "sklearn": 6, "_sklearn_checks": 6, "__init__": 7, "__main__": 7,
}  # fmt: skip
# within a level, a module may import a sibling (pairs are (imported, importer)); the graph stays acyclic
SAME_LEVEL = {("labels", "data"), ("rows", "data"), ("loaders", "data"), ("rows", "loaders"), ("rows", "validation"),
              ("columns", "loaders"), ("csvfiles", "loaders"), ("idxfiles", "loaders"), ("limits", "data"),
              ("loaders", "limits"), ("rows", "limits"), ("tables", "csvfiles"), ("tables", "loaders"),
              ("tables", "data"),
              ("kernels", "_io"), ("kernelkit", "kernels"), ("kernelkit", "formula"), ("formula", "kernels"),
              ("device", "backend"),
              ("params", "optim"), ("optim", "settings"), ("validation", "settings"),
              ("checkpoint", "network"), ("members", "checkpoint"),
              ("parallel", "training"), ("state", "training"),
              ("_sklearn_checks", "sklearn")}  # fmt: skip
# upward on purpose, and only inside a function (never when the module is imported): MLP.fit is the
# lecture's one-call convenience, building a Trainer (and, with distributed=True, a communicator);
# MLP.to_onnx and Model.to_onnx reach the export tool inside those methods
UPWARD = {("training", "network"), ("parallel", "network"), ("export", "network"), ("export", "model")}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _imports(path: Path, source: str | None = None, top_only: bool = False) -> set[str]:
    """gpubp modules ``path`` imports (relative or absolute), anywhere in the file (or only at its top
    level with ``top_only``): ``from . import x`` and ``from .x import y`` both name x."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for gpubp/x.py, 1 for gpubp/cli/x.py
    tree = ast.parse(path.read_text() if source is None else source)
    nodes = tree.body if top_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root, then name the top module
                if node.level - 1 < depth:
                    continue  # inside the same subpackage
                up = node.level - 1 - depth  # levels above the package root: none in gpubp
                if up > 0:
                    continue
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "gpubp":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            else:
                continue
            found.update(names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "gpubp" and len(parts) > 1:
                    found.add(parts[1])
    return {n for n in found if n in LEVELS}


FILES = sorted(p for p in PACKAGE.rglob("*.py"))


def _wrong(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` that break the levels (an allowed upward one only inside a function)."""
    me = _module(path)
    top = _imports(path, source, top_only=True)
    wrong = []
    for other in sorted(_imports(path, source)):
        if other == me:
            continue
        if (other, me) in UPWARD:
            if other in top:
                wrong.append(
                    f"{me} imports {other} (level {LEVELS[other]}) when it is imported; only inside a function"
                )
            continue
        if LEVELS[other] > LEVELS[me] or (LEVELS[other] == LEVELS[me] and (other, me) not in SAME_LEVEL):
            wrong.append(f"{me} (level {LEVELS[me]}) imports {other} (level {LEVELS[other]})")
    return wrong


def test_every_module_has_a_level():
    missing = sorted({_module(p) for p in FILES} - set(LEVELS))
    assert missing == [], f"modules without a level in HOUSE.md (add them here and there): {missing}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path):
    assert _wrong(path) == []


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in FILES:
        me = _module(path)
        if me not in ("__init__", "__main__"):  # the package's door may name anything (lazily)
            graph.setdefault(me, set()).update(_imports(path) - {me})
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph`` (module → modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start, [start])):
            return found
    return None


def test_the_imports_make_no_circle():
    # lazy imports inside functions count too: a circle through one is still two files needing each other
    assert _circle(_graph()) is None


def test_the_circle_finder_sees_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set(), "c": {"a"}}) is None
    graph = _graph()
    graph["training"].add("network")  # Trainer.resume importing the network's load again
    assert _circle(graph) is not None


@pytest.mark.parametrize(
    "line",
    ["from .network import MLP", "from . import network", "from . import checkpoint, network",
     "import gpubp.network", "from gpubp import network", "from gpubp.network import MLP"],
)  # fmt: skip
def test_the_walker_sees_an_upward_import(line):
    # the check itself fails on labels.py (level 2) importing the network (level 3), in any
    # spelling, at the top or inside a function
    source = (PACKAGE / "labels.py").read_text()
    assert _wrong(PACKAGE / "labels.py", source) == []
    for planted in (f"{line}\n{source}", f"{source}\ndef f():\n    {line}\n"):
        assert any("imports network" in w for w in _wrong(PACKAGE / "labels.py", planted)), planted


def test_an_allowed_upward_import_at_the_top_is_refused():
    source = "from .training import make_trainer\n" + (PACKAGE / "network.py").read_text()
    assert any("only inside a function" in w for w in _wrong(PACKAGE / "network.py", source))


def test_the_walker_reads_a_subpackage():
    path = PACKAGE / "cli" / "train.py"
    assert {"network", "training"} <= _imports(path)
    assert "_common" not in _imports(path, "from ._common import UsageError\n")  # cli's own module


def test_importing_the_network_loads_nothing_above_it():
    # in a fresh interpreter: the package's __init__ must not pull in checkpoint, training, the CLI...
    code = "import sys, json, gpubp.network; print(json.dumps(sorted(m for m in sys.modules if m.startswith('gpubp'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.split(".")[1] if "." in m else "__init__" for m in json.loads(out)}
    above = sorted(m for m in loaded - {"__init__"} if m not in LEVELS or LEVELS[m] > LEVELS["network"])
    assert above == []
    assert "checkpoint" not in loaded  # files only when asked (save/load import it inside those functions)
    assert "network" in loaded


def test_import_gpubp_loads_nothing_heavy_and_keeps_its_names():
    """The command's Ctrl-C guard needs `import gpubp` to load no NumPy; the names still resolve, and
    importing the submodule gpubp.gradcheck leaves gpubp.gradcheck the function."""
    code = ("import sys, gpubp; assert 'numpy' not in sys.modules, 'numpy'; import gpubp.gradcheck; "
            "assert callable(gpubp.gradcheck), 'gradcheck'; "
            "print(gpubp.MLP.__name__, gpubp.load.__name__, gpubp.data.__name__, sorted(gpubp.__all__) == "
            "sorted(n for n in gpubp.__all__ if hasattr(gpubp, n)))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MLP", "load", "gpubp.data", "True"]
