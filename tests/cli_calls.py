"""Calling the command in-process, as the tests of a user's own files do."""

from __future__ import annotations

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
