"""The ``gpubp`` command: train, evaluate, predict, gradcheck, info, bench.

One module per subcommand group (parsing and printing only; the work is done by the library).
Every user mistake ends in one line on stderr and exit status 2; Ctrl-C during training stops at
the end of the current batch, writes the checkpoint (with ``--save``) and exits with 130; a closed
pipe (``gpubp train | head``) ends quietly.
"""

from __future__ import annotations

import logging
import os
import sys

from .. import __version__
from ..data import DataError
from ..training import TrainingDivergedError
from . import evaluate, gradcheck, info, train
from ._common import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, one_line

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "build_parser", "main"]

EXIT_PIPE = 128 + 13  # as a Unix tool killed by SIGPIPE


def build_parser() -> Parser:
    parser = Parser(prog="gpubp", description="Train feed-forward networks by hand-written batched backprop "
                    "on a CUDA GPU (CuPy) or the CPU (NumPy).")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"gpubp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_parser(sub)
    evaluate.add_parsers(sub)
    gradcheck.add_parser(sub)
    info.add_parsers(sub)
    return parser


def _log_to_stderr(quiet: bool) -> None:
    """The library's notices (the CPU-fallback line) as one plain stderr line; none with --quiet."""
    log = logging.getLogger("gpubp")
    if not any(getattr(h, "_gpubp_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._gpubp_cli = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # info prints the GPU status itself; --quiet means quiet
    _log_to_stderr(quiet=getattr(args, "quiet", False) or args.command == "info")
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (gpubp train | head): no message, and no second error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except (UsageError, DataError, ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"gpubp {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as exc:
        print(f"gpubp {args.command}: {one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gpubp {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gpubp {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
