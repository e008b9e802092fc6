"""The ``gpubp`` command: train, evaluate, predict, export, gradcheck, info, bench.

One module per subcommand group (parsing and printing only; the work is done by the library).
Every user mistake ends in one line on stderr and exit status 2; Ctrl-C during training stops at
the end of the current batch, writes the checkpoint (unless ``--no-save``) and exits with 130; a closed
pipe (``gpubp train | head``) ends quietly.
"""

from __future__ import annotations

import logging
import os
import sys

from .. import __version__
from ..data import DataError
from ..parallel import launched_rank, launched_size
from ..training import TrainingDivergedError
from . import evaluate, export, gradcheck, info, train
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
    export.add_parser(sub)
    gradcheck.add_parser(sub)
    info.add_parsers(sub)
    parser.commands = sub.choices
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
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand's parser, so that the message names it (gpubp evaluate: error: ...)
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # info prints the GPU status itself; --quiet means quiet
    # (and under mpiexec, rank 0 speaks for all)
    _log_to_stderr(quiet=getattr(args, "quiet", False) or args.command == "info" or launched_rank() != 0)
    if args.command != "train" and launched_size() > 1:
        # only training is distributed: the other commands run once, on rank 0 (not R times, R files)
        if launched_rank() != 0:
            return 0
        print(f"gpubp {args.command}: not distributed, runs on rank 0 alone", file=sys.stderr, flush=True)
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (gpubp train | head): no message, and no second error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except (UsageError, DataError, ValueError, TypeError, FileNotFoundError, RuntimeError, OSError, MemoryError) as exc:
        return _fail(args.command, exc, EXIT_USAGE, "error: ")
    except TrainingDivergedError as exc:
        return _fail(args.command, exc, 1)
    except KeyboardInterrupt as exc:
        return _fail(args.command, exc, EXIT_INTERRUPTED, "", "interrupted")


def _fail(command: str, exc: BaseException, status: int, kind: str = "", text: str | None = None) -> int:
    """One line on stderr and the exit status. Under mpiexec, an error every rank raised together is
    printed by rank 0 alone; an error of one rank alone is printed by it and ends the whole job
    (MPI_Abort), since the other ranks may be waiting for it in a collective."""
    together = getattr(exc, "on_every_rank", False)
    if launched_size() == 1 or not together or launched_rank() == 0:
        print(f"gpubp {command}: {kind}{one_line(exc) if text is None else text}", file=sys.stderr, flush=True)
    mpi = sys.modules.get("mpi4py.MPI")  # only if this run started MPI
    if launched_size() > 1 and not together and mpi is not None and mpi.COMM_WORLD.Get_size() > 1:
        mpi.COMM_WORLD.Abort(status)
    return status
