"""The house stays as HOUSE.md draws it: each module imports only from levels below its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gpubp"

# HOUSE.md's levels. checkpoint.py knows arrays and configs only, so it sits below network.py
# (which offers ``load``/``save`` through it, imported inside those functions); model.py (a network
# with its preprocessing) sits beside training.py.
LEVELS = {
    "kernels": 0, "_io": 0,
    "backend": 1,
    "params": 2, "optim": 2, "activations": 2, "losses": 2, "initializers": 2, "labels": 2, "metrics": 2,
    "loaders": 2, "data": 2, "validation": 2, "rows": 2, "checkpoint": 2,
    "network": 3,
    "training": 4, "parallel": 4, "model": 4,
    "bench": 5, "gradcheck": 5, "plots": 5,
    "cli": 6, "sklearn": 6, "__init__": 7, "__main__": 7,
}  # fmt: skip
# within a level, an import is allowed only where a lower module needs a sibling (no circles)
SAME_LEVEL = {("labels", "data"), ("rows", "data"), ("loaders", "data"), ("rows", "loaders"), ("rows", "validation"),
              ("kernels", "_io"),
              ("params", "optim"), ("parallel", "training")}  # fmt: skip
# upward on purpose: MLP.fit is the lecture's one-call convenience, building a Trainer (and, with
# distributed=True, a communicator) inside fit()
UPWARD = {("training", "network"), ("parallel", "network")}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def _imports(path: Path) -> set[str]:
    """gpubp modules ``path`` imports (relative or absolute), anywhere in the file."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for gpubp/x.py, 1 for gpubp/cli/x.py
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root, then name the top module
                if node.level - 1 < depth:
                    continue  # inside the same subpackage
                target = node.module.split(".")[0] if node.module else None
                names = [target] if target else [a.name for a in node.names]
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


def test_every_module_has_a_level():
    missing = sorted({_module(p) for p in FILES} - set(LEVELS))
    assert missing == [], f"modules without a level in HOUSE.md (add them here and there): {missing}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path):
    me = _module(path)
    wrong = [f"{me} (level {LEVELS[me]}) imports {other} (level {LEVELS[other]})"
             for other in sorted(_imports(path)) if other != me
             and (other, me) not in UPWARD
             and (LEVELS[other] > LEVELS[me]
                  or (LEVELS[other] == LEVELS[me] and (other, me) not in SAME_LEVEL))]  # fmt: skip
    assert wrong == []


def test_the_walker_sees_an_upward_import(tmp_path):
    # the check can fail: an import from a level above is found, wherever it sits in the file
    fake = PACKAGE / "labels.py"
    tree = ast.parse(fake.read_text() + "\ndef f():\n    from .network import MLP\n")
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert "network" in names


def test_the_network_module_opens_no_files_when_imported():
    # the package's __init__ imports everything; the network module itself imports no file
    # module at its top level (save/load reach checkpoint inside those functions)
    tree = ast.parse((PACKAGE / "network.py").read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.level}
    assert "network" not in top
    assert {"checkpoint", "_io", "cli", "model", "training"} & top == set()
    assert "backend" in top  # the walk sees the module's own imports
