"""Calling the command in-process, as the tests of a user's own files do: ``cli``/``refused`` with pytest's
capsys, ``run`` with a folder and environment of its own and a result shaped like subprocess.run's."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from gpubp.cli import main


def cli(capsys, *args: object) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``gpubp ARGS``; argparse's refusals end in SystemExit."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args: object) -> str:
    """The one line of a refusal (exit status 2) of ``gpubp ARGS``."""
    code, out, err = cli(capsys, *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@dataclass
class Done:
    """What a run of the command left: as ``subprocess.CompletedProcess`` has it."""

    returncode: int
    stdout: str
    stderr: str


def run(*args: str, cwd: Path | None = None, check: int | None = 0, env: dict[str, str] | None = None) -> Done:
    """``gpubp ARGS`` in this process, in folder ``cwd``, with ``env`` added to the environment (and
    GPUBP_DEVICE=cpu); its exit status is checked against ``check`` unless None."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update({"GPUBP_DEVICE": "cpu", **(env or {})})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's refusals and --help
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    done = Done(code, out.getvalue(), err.getvalue())
    if check is not None:
        assert done.returncode == check, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done
