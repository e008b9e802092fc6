"""docs/companion.ipynb, the lecture's companion: it runs top to bottom (its claims are asserts in its cells),
the committed file shows the outputs of such a run, and it reaches gpubp through public names only.

After changing the notebook, run it and write its outputs into it: ``.venv/bin/python tests/test_companion.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the companion needs the docs extra: pip install 'gpubp[docs]'")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "companion.ipynb"
# the public API the issue allows the companion (gpubp.MLP, gpubp.gradcheck, ... are names of `gpubp` itself)
MODULES = {"gpubp", "gpubp.reference", "gpubp.data", "gpubp.monitor"}
QUESTIONS = ("## 2. Can I batch this?", "## 3. When do we stop?", "## 4. How do we initialize?")


def _read(path: Path = NOTEBOOK):
    return nbformat.read(path, as_version=4)


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _kinds(cell) -> list[tuple[str, ...]]:
    """What a cell shows, without the values (timings differ from run to run): each output's type and MIME
    types, consecutive pieces of one stream counted once (how a stream is cut into pieces depends on timing)."""
    kinds: list[tuple[str, ...]] = []
    for o in cell.outputs:
        kind = (o.output_type, o.get("name", ""), *sorted(o.get("data", {})))
        if not (kinds and kinds[-1] == kind and o.output_type == "stream"):
            kinds.append(kind)
    return kinds


def execute(nb):
    """Run every cell of ``nb`` in a fresh kernel, in docs/ (raises at the first cell that fails); each cell's
    pieces of one stream merged into one output, as the committed file has them."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=300, kernel_name="python3", coalesce_streams=True, record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})  # fmt: skip
    return client.execute()


def private_names(source: str) -> list[str]:
    """Every place ``source`` reaches past gpubp's public API: a ``._name`` attribute (dunders aside), a
    private name imported, ``getattr(x, "_name")``, or a gpubp module outside ``MODULES``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] == "gpubp" and module not in MODULES:
                    found.append(f"line {node.lineno}: import of {module}")
            if isinstance(node, ast.ImportFrom):
                found += [f"line {node.lineno}: import of {a.name}" for a in node.names if a.name.startswith("_")]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and str(node.args[1].value).startswith("_")):  # fmt: skip
            found.append(f"line {node.lineno}: {node.func.id}(…, {node.args[1].value!r})")
    return found


def test_the_companion_uses_only_public_names():
    source = "\n".join(c.source for c in _code(_read()))
    assert private_names(source) == []


@pytest.mark.parametrize(
    "source",
    ["net._one_pass(X, Y)", "gpubp._LAZY", "import gpubp._io", "from gpubp.network import Workspace",
     "from gpubp import _io", "getattr(net, '_bind')"],
)  # fmt: skip
def test_the_public_name_check_catches_a_private_name(source):
    assert private_names(f"import gpubp\nnet = gpubp.MLP([2, 2])\n{source}\n") != []


def test_the_public_name_check_lets_the_public_api_through():
    ok = "import gpubp\nfrom gpubp import reference\nfrom gpubp.monitor import GradientStats\nprint(gpubp.__version__)"
    assert private_names(ok) == []


def test_the_committed_companion_shows_a_whole_run():
    nb = _read()
    cells = _code(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "not one run, top to bottom"
    assert [i for i, c in enumerate(cells) if not c.outputs] == [], "code cells without outputs"
    errors = [o.get("ename") for c in cells for o in c.outputs if o.output_type == "error"]
    assert errors == []


def test_each_question_is_answered_with_a_figure():
    nb = _read()
    starts = [next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(q))
              for q in QUESTIONS]  # fmt: skip
    for q, start, end in zip(QUESTIONS, starts, [*starts[1:], len(nb.cells)]):
        images = sum("image/png" in o.get("data", {}) for c in nb.cells[start:end] if c.cell_type == "code"
                     for o in c.outputs)  # fmt: skip
        assert images >= 1, f"{q!r} has no figure"


def test_the_companion_links_lead_somewhere_and_the_docs_link_it():
    LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    targets = [t for c in _read().cells if c.cell_type == "markdown" for t in LINK.findall(c.source)]
    assert targets
    assert [t for t in targets if not (NOTEBOOK.parent / t).exists()] == []
    assert "](docs/companion.ipynb)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](companion.ipynb)" in (ROOT / "docs" / "math.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_companion_runs_top_to_bottom_and_shows_what_it_showed():
    """Runs every cell (an assert that fails is a failed claim), then compares what each cell shows with
    the committed file: a cell changed without running the notebook again shows up here."""
    committed = _read()
    nb = execute(_read())
    ran, kept = _code(nb), _code(committed)
    for i, (a, b) in enumerate(zip(ran, kept), start=1):
        assert _kinds(a) == _kinds(b), f"code cell {i} shows {_kinds(a)} when run, the committed file {_kinds(b)}"


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    nbformat.write(execute(_read()), NOTEBOOK)
    print(f"{NOTEBOOK.relative_to(ROOT)}: run and written in {time.perf_counter() - start:.1f} s")
