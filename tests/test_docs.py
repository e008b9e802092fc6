"""Every code block in README.md and docs/*.md runs as written; links and the command's options table hold.

The convention (docs/contributing.md says it for writers):
- ```python blocks run in order in one namespace per page, the working directory a fresh temp dir;
- ```console blocks: each line starting with ``$ `` is a command, run by the shell in that same directory
  (a line ending in ``\\`` continues on the next); exit status 0 is required unless the block is preceded
  by ``<!-- exit N -->``; the other lines are the command's output (stdout, then stderr) and are checked:
  each must be a line of it, in order, spaces as any run of spaces, a line ``...`` standing for any lines;
  what varies from run to run is left out of the comparison (an epoch row's samples/s and seconds, a
  duration ``N s``), and so are blocks whose commands include ``mpiexec`` (the ranks' order of output);
- ```text blocks and plain ``` blocks are not run;
- ``<!-- needs: EXTRA, ... -->`` anywhere in a page: the page is skipped, naming the extra, where one of
  the extra's packages (from pyproject.toml) is not installed; ``gpu`` skips it where no GPU answers.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BIN = Path(sys.executable).parent  # gpubp and python of the environment the tests run in

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
EXIT = re.compile(r"<!--\s*exit\s+(\d+)\s*-->\s*$")
NEEDS = re.compile(r"<!--\s*needs:\s*([\w\-, ]+?)\s*-->")
# pages other changes add in parallel: a link to one of these may point nowhere until they are merged
PENDING = {"docs/data-formats.md", "docs/testing.md"}


@dataclass
class Block:
    kind: str  # python, console, text or ""
    code: str
    line: int  # of the opening fence
    exit: int = 0


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip()
        status = EXIT.search(before.splitlines()[-1]) if before else None
        found.append(Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1,
                           int(status.group(1)) if status else 0))  # fmt: skip
    return found


def commands(block: Block) -> list[str]:
    """The ``$ `` lines of a console block, continuation lines joined."""
    out: list[str] = []
    lines = iter(block.code.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        cmd = line[2:]
        while cmd.endswith("\\"):
            cmd = cmd[:-1] + " " + next(lines).strip()
        out.append(cmd)
    return out


def shown_output(block: Block) -> list[list[str]]:
    """Per command of a console block, the output lines the page shows after it."""
    shown: list[list[str]] = []
    lines = iter(block.code.splitlines())
    for line in lines:
        if line.startswith("$ "):
            while line.endswith("\\"):
                line = next(lines)
            shown.append([])
        elif shown and line.strip():
            shown[-1].append(line)
    return shown


# an epoch row of the training table: its samples/s and seconds vary from run to run
EPOCH_ROW = re.compile(r"^(\s*\d+(?:\s+\S+)+?)\s+[\d,]+\s+[\d.]+(\s+\S+)$")


def line_pattern(line: str) -> re.Pattern[str]:
    """A shown output line as a pattern: spaces as any run of spaces, speeds and durations as any number."""
    row = EPOCH_ROW.match(line)
    if row:
        parts = [re.escape(row.group(1)), r"\s+[\d,]+\s+[\d.]+", re.escape(row.group(2))]
    else:
        parts = [r"[\d.]+\s+s\b".join(re.escape(p) for p in re.split(r"\b\d+(?:\.\d+)? s\b", line))]
    text = re.sub(r"(?:\\ )+", r"\\s+", "".join(parts).strip())
    return re.compile(rf"^\s*{text}\s*$")


def check_output(shown: list[str], got: str, where: str) -> None:
    """Each shown line matches a line of ``got``, in order; ``...`` skips any lines."""
    actual = got.splitlines()
    i = 0
    for line in shown:
        if line.strip() == "...":
            continue
        pattern = line_pattern(line)
        while i < len(actual) and not pattern.match(actual[i]):
            i += 1
        assert i < len(actual), f"{where}: the output has no line matching\n  {line}\nafter the lines before it:\n{got}"
        i += 1


def _extras() -> dict[str, list[str]]:
    """pyproject.toml's extras (one line each there; tomllib is not in Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return {m.group(1): re.findall(r'"([^"]+)"', m.group(2))
            for m in re.finditer(r"^([\w\-]+)\s*=\s*\[(.*)\]\s*$", section, flags=re.M)}  # fmt: skip


def _extra_missing(extra: str) -> str | None:
    """Why the extra is not usable here, or None."""
    if extra == "gpu":
        from gpubp.backend import gpu_unavailable_reason

        reason = gpu_unavailable_reason()
        return None if reason is None else f"needs a GPU: {reason}"
    requirements = _extras().get(extra)
    if requirements is None:
        raise AssertionError(f"<!-- needs: {extra} --> names no extra of pyproject.toml")
    for req in requirements:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)
        if ";" in req:
            marker = req.split(";", 1)[1]
            try:
                from packaging.markers import Marker
            except ImportError:
                continue
            if not Marker(marker).evaluate():
                continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return f"needs the {extra} extra (pip install 'gpubp[{extra}]'): {name} is not installed"
    return None


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_block_of_the_page_runs(page, tmp_path, monkeypatch, capsys):
    needs = [e.strip() for m in NEEDS.finditer(page.read_text(encoding="utf-8")) for e in m.group(1).split(",")]
    for extra in filter(None, needs):
        reason = _extra_missing(extra)
        if reason is not None:
            pytest.skip(f"{_page_id(page)} {reason}")
    todo = [b for b in blocks(page) if b.kind in ("python", "console")]
    if not todo:
        pytest.skip(f"{_page_id(page)} has no python or console blocks")
    monkeypatch.chdir(tmp_path)
    # the pages show the command's output on the CPU (device='cpu', the device column): compared as shown on a
    # GPU machine too; the python blocks keep device="auto" (the estimators' examples on a GPU there)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GPUBP_DEVICE": "cpu"}
    namespace: dict = {"__name__": "__docs__"}
    for block in todo:
        where = f"{_page_id(page)}, the block at line {block.line}"
        if block.kind == "python":
            exec(compile(block.code, where, "exec"), namespace)
            continue
        for cmd, shown in zip(commands(block), shown_output(block)):
            done = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            assert done.returncode == block.exit, (
                f"{where}: `{cmd}` exited {done.returncode}, expected {block.exit}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
            if "mpiexec" not in cmd:
                check_output(shown, done.stdout + done.stderr, f"{where}: `{cmd}`")
    capsys.readouterr()


def test_the_block_reader_sees_what_the_convention_says(tmp_path):
    # the reader can fail: a page with every kind of block, an exit comment and a continued command
    page = tmp_path / "p.md"
    page.write_text("# p\n\n```python\nx = 1\n```\n\n<!-- exit 2 -->\n```console\n$ gpubp \\\n  --nope\n"
                    "gpubp: error\n```\n\n```text\n$ not run\n```\n\n```\nplain\n```\n")  # fmt: skip
    found = blocks(page)
    assert [(b.kind, b.exit) for b in found] == [("python", 0), ("console", 2), ("text", 0), ("", 0)]
    assert commands(found[1]) == ["gpubp  --nope"]
    assert found[0].line == 3


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_links_between_pages_lead_somewhere(page):
    missing = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path = (page.parent / target).resolve()
        if not path.exists():
            missing.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else target)
    pending = [m for m in missing if m in PENDING]
    assert [m for m in missing if m not in PENDING] == []
    if pending:
        pytest.skip(f"links to pages not merged yet: {pending}")


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    opening = "\n".join(lines[:12])
    assert "make train" in opening
    assert "make test" in opening
    assert len(lines) <= 160
    targets = re.findall(r"^(\w+):", (ROOT / "Makefile").read_text(), flags=re.M)
    assert {"train", "test"} <= set(targets)


def _options() -> dict[str, set[str]]:
    """Every subcommand's long options, as --help lists them."""
    from gpubp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
            for name, p in sub.choices.items()}  # fmt: skip


def test_the_command_page_covers_every_option_of_every_subcommand():
    text = (ROOT / "docs" / "command.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    missing = []
    for command, options in _options().items():
        section = next((s for s in sections if s.startswith(f"`gpubp {command}")), None)
        if section is None:
            missing.append(f"a section '## `gpubp {command}`'")
            continue
        missing += [f"{command} {o}" for o in sorted(options) if f"`{o}" not in section]
    assert missing == [], "docs/command.md lacks: " + ", ".join(missing)


def test_every_option_has_help_text():
    from gpubp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {a.option_strings[0] if a.option_strings else a.dest}"
            for name, p in sub.choices.items() for a in p._actions
            if not a.help and not isinstance(a, argparse._HelpAction)]  # fmt: skip
    assert bare == []


@pytest.mark.parametrize("name", ["install.md", "contributing.md"])
def test_the_extras_make_test_installs_are_the_ones_listed(name):
    makefile = (ROOT / "Makefile").read_text()
    cuda = re.search(r"^CUDA_EXTRA \?= (\S+)", makefile, flags=re.M).group(1)
    extras = re.search(r"^EXTRAS := (\S+)", makefile, flags=re.M).group(1).replace("$(CUDA_EXTRA)", cuda)
    text = " ".join((ROOT / "docs" / name).read_text(encoding="utf-8").split())
    sentence = re.search(r"installs (?:the package with its |the )?(`[^.]*?) extras", text)
    assert sentence is not None, f"docs/{name} does not say which extras `make test` installs"
    assert set(re.findall(r"`([\w\-]+)`", sentence.group(1))) == set(extras.split(","))


def test_the_output_a_page_shows_is_checked():
    """The comparison can fail: a changed figure, a missing line, lines out of order; speeds, seconds and
    ``...`` do not count."""
    code = ("$ gpubp train\nepoch  train loss\n    1      0.7059     93.30%     154,391    0.008  cpu\n...\n"
            "test accuracy: 97.49%, after 30 epochs, 0.4 s\n")  # fmt: skip
    (shown,) = shown_output(Block("console", code, 1))
    ran = ("epoch  train loss\n    1      0.7059     93.30%     999,999    1.5  cpu\n    2 ...\n"
           "test accuracy: 97.49%, after 30 epochs, 2.1 s\n")  # fmt: skip
    check_output(shown, ran, "p")
    for wrong in (ran.replace("0.7059", "0.7060"), ran.replace("97.49%", "97.50%"),
                  "\n".join(ran.splitlines()[::-1]), ran.replace("epoch  train loss\n", "")):  # fmt: skip
        with pytest.raises(AssertionError, match="the output has no line matching"):
            check_output(shown, wrong, "p")
