"""What the subcommands share: the parser class, option types and groups, errors, output helpers."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .._io import check_writable
from ..activations import HIDDEN, OUTPUTS
from ..data import TASKS, Scaler
from ..initializers import INITS
from ..loaders import READ_OPTIONS, read_options  # noqa: F401  (the commands' import of them)
from ..losses import LOSSES
from ..parallel import launched_rank
from ..settings import LIMITS, check_limit

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    commands: dict[str, Parser]  # the subcommands' parsers (gpubp.cli.build_parser sets it)

    def error(self, message: str) -> NoReturn:  # one line, not usage + message; under mpiexec, rank 0's alone
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n" if launched_rank() == 0 else None
        )


class Renamed(argparse.Action):
    """An option's old spelling: refused, naming the new one (``new``) and why it changed (``why``)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, why: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.new, self.why = new, why

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        raise argparse.ArgumentError(self, f"is now {self.new} ({self.why})")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def printer(quiet: bool, to_stderr: bool) -> Callable[..., None]:
    """``say(...)``: print progress lines (to stderr when stdout carries JSON), or nothing."""
    if quiet:
        return lambda *a: None
    out = sys.stderr if to_stderr else sys.stdout
    return lambda *a: print(*a, file=out, flush=True)


# -- option types -------------------------------------------------------------------------------


def hidden_sizes(text: str) -> list[int]:
    if text.strip() == "none":
        return []
    if not text.strip():
        raise argparse.ArgumentTypeError("expected widths like 128,64, or 'none' for no hidden layer, got ''")
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 128,64, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be >= 1, got {text!r}")
    return sizes


_KINDS = {int: "a whole number", float: "a number"}


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {_KINDS[kind]} > 0, got {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def non_negative(text: str) -> float:
    """A finite number >= 0 (a penalty such as the weight decay λ)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def seed(text: str) -> int:
    """A seed: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def limited(setting: str) -> Callable[[str], float]:
    """The option type of training setting ``setting``: a number within the library's limits
    (gpubp.settings.LIMITS, which the estimators read too)."""
    low, high, closed = LIMITS[setting]
    opening = "[" if closed in ("left", "both") else "("
    closing = "]" if closed in ("right", "both") else ")"
    shown = f"{opening}{low:g}, {'inf' if high is None else f'{high:g}'}{closing}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check_limit(setting, value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be in {shown}, got {text!r}") from None
        return value

    return parse


def delimiter(text: str) -> str:
    """A CSV delimiter: one character, or ``tab``."""
    value = "\t" if text in ("tab", "\\t", "\t") else text
    if len(value) != 1 or value in ('"', "\n", "\r") or value.isalnum():
        raise argparse.ArgumentTypeError(f"expected one character such as ',' ';' or 'tab', got {text!r}")
    return value


def encoding(text: str) -> str:
    """A text encoding Python knows (utf-8, latin-1, cp1252, ...)."""
    import codecs

    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r}: expected e.g. utf-8, latin-1, cp1252") from None


def thousands(text: str) -> str:
    """A thousands separator: ',' or '.', or 'none' (returned as "")."""
    if text not in (",", ".", "none"):
        raise argparse.ArgumentTypeError(f"expected ',' or '.' or 'none', got {text!r}")
    return "" if text == "none" else text


# -- option groups (every default is None: "not given" is detected, defaults resolved in one place)


def add_data_options(p: argparse.ArgumentParser, default: str | None = "digits") -> None:
    p.add_argument("--data", default=None, metavar="PATH",
                   help="'digits' (embedded), a folder of MNIST IDX files, IMAGES,LABELS, X.npy,y.npy, .npz (X, y) "
                        f"or .csv (default: {default or 'the data the model was trained on'})")  # fmt: skip
    p.add_argument(
        "--label-column",
        default=None,
        metavar="NAME|INDEX",
        help="CSV label column (default: a column named label/class/target/y, else the last)",
    )
    p.add_argument("--delimiter", type=delimiter, default=None, metavar="CHAR",
                   help="CSV cell delimiter: ',', ';' or 'tab' (default: detected from the first lines)")  # fmt: skip
    p.add_argument(
        "--header",
        dest="header",
        action="store_true",
        default=None,
        help="the CSV's first line is a header (default: detected; asked for when it cannot be told)",
    )
    p.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the CSV's first line is data, a sample like the lines below",
    )
    p.add_argument("--decimal", choices=(".", ","), default=None,
                   help="the CSV's decimal mark (default: detected; ',' only between ';' or tabs)")  # fmt: skip
    p.add_argument("--thousands", type=thousands, default=None, metavar="{',','.',none}",
                   help="the CSV's thousands separator (default: detected from numbers such as 1,250,000 or "
                        "1.022,64; a number such as 3.249 that may be either is asked about)")  # fmt: skip
    p.add_argument("--encoding", type=encoding, default=None, metavar="NAME",
                   help="the CSV's text encoding, e.g. latin-1 or cp1252 (default: UTF-8)")  # fmt: skip


def names(text: str) -> list[str]:
    """Column names separated by commas (surrounding spaces dropped)."""
    chosen = [n.strip() for n in text.split(",")]
    if not all(chosen):
        raise argparse.ArgumentTypeError(f"expected column names like age,sex, got {text!r}")
    return chosen


TABLE_DEFAULTS: dict[str, Any] = {"drop": None, "features": None, "missing": "impute"}


def add_table_options(p: argparse.ArgumentParser) -> None:
    """How a CSV's columns become features (gpubp.tables; docs/data-formats.md)."""
    p.add_argument("--drop", type=names, default=None, metavar="COL,...", help="CSV columns to leave out")
    p.add_argument("--features", type=names, default=None, metavar="COL,...",
                   help="the only CSV columns to use as features (never left out as identifiers or "
                        "free text)")  # fmt: skip
    p.add_argument("--missing", choices=("impute", "refuse"), default=None,
                   help="a missing feature cell (empty, NA, NaN, NULL, ?): filled (the training median, or "
                        "a level of its own) and marked in a column of its own, or refused (default: "
                        "impute)")  # fmt: skip


def add_network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        choices=TASKS,
        default=None,
        help="regress: one numeric target, loss mse, target standardised (default: classify)",
    )
    p.add_argument(
        "--hidden",
        type=hidden_sizes,
        default=None,
        metavar="N,N",
        help="hidden layer widths, 'none' for none (default: 256)",
    )
    p.add_argument("--activation", choices=HIDDEN, default=None, help="hidden activation (default: relu)")
    p.add_argument("--output", choices=OUTPUTS, default=None, help="output activation (default: the loss's match)")
    p.add_argument(
        "--loss", choices=tuple(LOSSES), default=None, help="(default: cross_entropy; mse with --task regress)"
    )
    p.add_argument("--init", choices=INITS, default=None, help="(default: he for relu, xavier otherwise)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="(default: float32)")
    p.add_argument("--seed", type=seed, default=None, help="seeds weights and shuffling (default: 0)")
    p.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N (default: $GPUBP_DEVICE or auto)")
    p.add_argument(
        "--scale",
        choices=Scaler.KINDS,
        default=None,
        help="feature scaling fitted on the training split (default: standard)",
    )


NETWORK_DEFAULTS: dict[str, Any] = {"data": "digits", "label_column": None, "delimiter": None, "header": None,
                                    "decimal": None, "thousands": None, "encoding": None, "task": "classify",
                                    "hidden": [256], "activation": "relu", "output": None, "loss": None, "init": None,
                                    "dtype": "float32", "seed": 0, "scale": "standard"}  # fmt: skip


def resolve_network(given: dict[str, Any]) -> dict[str, Any]:
    """Network settings from the options given (None: not given): defaults filled in, the task's
    loss chosen, contradictions refused."""
    s = {k: (given.get(k) if given.get(k) is not None else v) for k, v in NETWORK_DEFAULTS.items()}
    if s["task"] == "regress":
        if s["loss"] not in (None, "mse"):
            raise UsageError(f"--task regress trains with --loss mse, not --loss {s['loss']}")
        if s["output"] not in (None, "identity"):
            raise UsageError(f"--task regress needs an identity output (unbounded values), not --output {s['output']}")
        s["loss"], s["output"] = "mse", "identity"
    elif s["loss"] is None:
        s["loss"] = "cross_entropy"
    if s["loss"] == "mse" and s["output"] is None:
        s["output"] = "identity"
    return s


def data_files(spec: str | None) -> list[str]:
    """The files a data spec names (``A,B`` two; ``digits`` none)."""
    if not spec or spec == "digits":
        return []
    return [part.strip() for part in spec.split(",")]


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file (not the same spelling: links, ./ and .. resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(option: str, path: str | None, png: bool = False,
                 inputs: Sequence[tuple[str, str | None]] = ()) -> None:  # fmt: skip
    """Refuse, before any work, an output path that cannot be written or that is one of the
    ``inputs`` (what, path) being read: an output never replaces an input."""
    if not path:
        return
    for what, source in inputs:
        if source and same_file(path, source):
            raise UsageError(f"{option} {path} is {what} being read ({source}): give another file name")
    try:
        check_writable(path, option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if png:
        if not path.lower().endswith(".png"):
            raise UsageError(f"{option} {path}: the picture is written as PNG, give a file name ending in .png")
        from ..plots import require_matplotlib

        require_matplotlib()


def absolute(spec: str) -> str:
    """A data spec with its paths made absolute (``digits`` stays), so a checkpoint finds its data
    from any folder."""
    if spec == "digits":
        return spec
    return ",".join(os.path.abspath(part.strip()) for part in spec.split(","))
