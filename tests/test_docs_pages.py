"""The examples of docs pages run as written: ```python blocks in order, in one namespace, in a temporary
folder; in ```console blocks each line starting with ``$ `` is a command run there (the venv's own
``gpubp`` first on the PATH); ```text blocks are not run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
# pages whose examples need an extra: run where it is installed
PAGES = {"export.md": ("onnxruntime", "skl2onnx"), "tensorboard.md": ("tensorboardX",)}


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def run_page(page: Path, folder: Path) -> None:
    env = {**os.environ, "GPUBP_DEVICE": "cpu",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    namespace: dict = {"__name__": "__docs__"}
    for lang, body in blocks(page):
        if lang == "python":
            exec(compile(body, str(page), "exec"), namespace)
        elif lang == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    proc = subprocess.run(shlex.split(line[2:]), capture_output=True, text=True, env=env,
                                          cwd=folder, timeout=600)  # fmt: skip
                    assert proc.returncode == 0, f"{page.name}: {line}\n{proc.stdout}\n{proc.stderr}"
        elif lang not in ("text", ""):
            raise AssertionError(f"{page.name}: a ```{lang} block: use python, console or text")


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_pages_examples_run(name, tmp_path, monkeypatch, capsys):
    for module in PAGES[name]:
        pytest.importorskip(module, reason=f"{name} needs it")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    run_page(DOCS / name, tmp_path)


def test_a_failing_example_fails_the_page(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```console\n$ gpubp train --epochs 0\n```\n")
    with pytest.raises(AssertionError, match="--epochs 0"):
        run_page(page, tmp_path)
    page.write_text("```text\n$ gpubp train --epochs 0\n```\n```python\nx = 1\n```\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError):
        run_page(page, tmp_path)
