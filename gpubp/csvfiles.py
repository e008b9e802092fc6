"""How a CSV's first lines are read: the delimiter, the decimal mark, the header and the index column.

Pure rules over the sampled lines (no pandas, no files beyond the sample): :func:`sample_lines`
reads the first lines, :func:`csv_layout` decides. Each rule is docs/data-formats.md's, with a test
in tests/test_csv.py. Where a file can honestly be read two ways, the rules refuse with a
``ValueError`` naming the option that decides (``--delimiter``, ``--header``/``--no-header``)
rather than guess: a wrong guess gives plausible numbers from the wrong cells.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .tables import MISSING

LABEL_NAMES = ("label", "labels", "target", "class", "y")  # in order of preference
DELIMITERS = (",", ";", "\t")
SAMPLE_LINES = 50
# a number written with a decimal comma (1,5) and one with thousands separators (1,250,000)
DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")
THOUSANDS = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_INTEGER = re.compile(r"^[-+]?\d+$")


@dataclass
class CsvLayout:
    """What :func:`csv_layout` found in a CSV's first lines: the ``delimiter``, the ``decimal``
    mark, the ``thousands`` separator (None or ','), the ``header`` (its cells, or None when the
    first row is data) and whether the first column is a pandas ``index``."""

    delimiter: str
    decimal: str
    header: list[str] | None
    index: bool = False
    thousands: str | None = None


def sample_lines(path: str, gzipped: bool) -> str:
    """The first SAMPLE_LINES + 1 non-blank lines, whole however long (decoded, a BOM removed)."""
    opener = gzip.open if gzipped else open
    lines: list[str] = []
    try:
        with opener(path, "rb") as fh:
            while len(lines) <= SAMPLE_LINES:
                raw = fh.readline()
                if not raw:
                    break
                if b"\x00" in raw:
                    raise ValueError(f"{path}: not a text CSV file (binary content)")
                text = raw.decode("utf-8-sig" if not lines else "utf-8")
                if text.strip():
                    lines.append(text.rstrip("\r\n"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text CSV file (cannot decode as UTF-8)") from None
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    return "\n".join(lines)


def rows_of(sample: str, delimiter: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]


def is_number(cell: str, decimal: str = ".", thousands: str | None = None) -> bool:
    if thousands == "," and THOUSANDS.match(cell):
        return True
    if decimal == ",":
        if "." in cell:
            return False
        cell = cell.replace(",", ".")
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _shown(name: str) -> str:
    return "tab" if name == "\t" else repr(name)


def csv_layout(path: str, sample: str, delimiter: str | None = None, header: bool | None = None,
               names: Sequence[str] = (), label: str | None = None) -> CsvLayout:  # fmt: skip
    """The delimiter, decimal mark, header and index column of a CSV from its first lines (see
    docs/data-formats.md). ``delimiter``/``header`` given: used as they are. ``names`` and
    ``label``: a model's feature names and label column name, which recognise a header of numbers
    (pandas' integer column names, reordered or a subset). Raises ValueError where the file can
    be read two ways, naming the option that decides."""
    if delimiter is None:
        delimiter = _delimiter(path, sample)
    rows = rows_of(sample, delimiter)
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    widths = [len(r) for r in rows]
    if len(rows) > 1 and widths[0] < widths[1]:
        # pandas would make the extra cells of every row a hidden index
        raise ValueError(f"{path}: the first line has {widths[0]} cells, the second {widths[1]} (delimiter "
                         f"{_shown(delimiter)}): choose the delimiter with --delimiter")  # fmt: skip
    decimal, thousands = _decimal(path, rows[1:] or rows, delimiter)
    first, below = rows[0], rows[1:]
    if header is None:
        try:
            header = _is_header(path, first, below, decimal, thousands, names, label)
        except ValueError:
            if not any(d in c for c in first for d in DELIMITERS if d != delimiter):
                raise
            header = False  # cells holding another delimiter: the numbers' error names --delimiter instead
    index = False
    if header and first[0] == "" and len(first) > 1 and below:
        index = True  # an unnamed first column: read_csv drops it as an index or refuses it, by its values
    return CsvLayout(delimiter, decimal, first if header else None, index, thousands)


def _delimiter(path: str, sample: str) -> str:
    """The one of , ; tab that splits every sampled line alike and gives a plausible reading."""
    split = {d: rows_of(sample, d) for d in DELIMITERS}
    consistent = {d: len(r[0]) for d, r in split.items() if r and len({len(x) for x in r}) == 1}
    if not sample.strip():
        raise ValueError(f"{path}: empty CSV file")
    best = max(DELIMITERS, key=lambda d: len(split[d][0]))
    if len(split[best][0]) > 1 and best not in consistent:
        return best  # ragged lines: the first line's delimiter, and pandas names the line that differs
    if not consistent:
        raise ValueError(f"{path}: none of ',', ';', tab splits the first lines into the same number of cells: "
                         "choose the delimiter with --delimiter")  # fmt: skip
    if max(consistent.values()) == 1:  # one column: no delimiter in any line, or only in some (decimal commas)
        return "," if "," in consistent else ";"
    plausible = [d for d in consistent if _plausible(split[d], d, set(consistent) - {d})]
    if len(plausible) == 1:
        return plausible[0]
    if len(plausible) > 1:
        if ";" in plausible and "\t" in plausible and consistent[";"] == consistent["\t"] == 1:
            plausible.remove("\t")  # one column either way
        readings = " or ".join(f"{_shown(d)} ({consistent[d]} column{'s' * (consistent[d] > 1)}"
                               f"{', decimal commas' if d != ',' and consistent[d] >= 1 and _commas(split[d]) else ''})"
                               for d in plausible)  # fmt: skip
        raise ValueError(f"{path}: the cells can be split by {readings}: choose with --delimiter")
    wide = sorted(consistent, key=lambda d: -consistent[d])
    if len(wide) > 1 and consistent[wide[0]] == consistent[wide[1]]:
        raise ValueError(f"{path}: both {_shown(wide[0])} and {_shown(wide[1])} split every line into "
                         f"{consistent[wide[0]]} cells: choose with --delimiter")  # fmt: skip
    return wide[0]


def _commas(rows: list[list[str]]) -> bool:
    return any("," in c for r in rows for c in r)


def _plausible(rows: list[list[str]], delimiter: str, others: set[str]) -> bool:
    """A reading is plausible when every column but at most one (the labels) holds numbers and no
    text cell holds another delimiter that splits the lines alike ('5;2' read with ',')."""
    decimal = "," if delimiter != "," else "."

    def number(c: str) -> bool:
        return c == "" or is_number(c) or (decimal == "," and bool(DECIMAL_COMMA.match(c) or THOUSANDS.match(c)))

    text_columns = set()
    for i, r in enumerate(rows):
        for j, c in enumerate(r):
            if number(c):
                continue
            if any(o in c for o in others):
                return False
            if i > 0 or len(rows) == 1:  # the first row may be a header
                text_columns.add(j)
    return len(text_columns) <= 1


def _decimal(path: str, rows: list[list[str]], delimiter: str) -> tuple[str, str | None]:
    """(decimal mark, thousands separator) of the cells: ',' decimals only between ';' or tabs, and
    only when every cell written with a comma reads one way (docs/data-formats.md)."""
    if delimiter == ",":
        return ".", None
    cells = [c for r in rows for c in r]
    commas = [c for c in cells if "," in c and (DECIMAL_COMMA.match(c) or THOUSANDS.match(c))]
    if not commas:
        return ".", None
    dots = [c for c in cells if "." in c and "," not in c and is_number(c)]
    decimal = [c for c in commas if DECIMAL_COMMA.match(c) and not THOUSANDS.match(c)]
    grouped = [c for c in commas if THOUSANDS.match(c) and not DECIMAL_COMMA.match(c)]
    if decimal and (grouped or dots):
        other = grouped[0] if grouped else dots[0]
        raise ValueError(f"{path}: numbers are written both as {decimal[0]!r} (a decimal comma) and {other!r}: "
                         "write the file with one decimal mark")  # fmt: skip
    if decimal:
        return ",", None
    if grouped or dots:  # '.' is the decimal mark, so a comma between digit groups separates thousands
        return ".", ","
    raise ValueError(f"{path}: {commas[0]!r} may be a decimal comma or a thousands separator: write the numbers "
                     "without thousands separators, or with '.' as the decimal mark")  # fmt: skip


def _is_header(path: str, first: list[str], below: list[list[str]], decimal: str, thousands: str | None,
               names: Sequence[str], label: str | None) -> bool:  # fmt: skip
    """Whether the first row is a header (docs/data-formats.md, "The header"); refuses when unsure."""

    def number(c: str) -> bool:
        return is_number(c, decimal, thousands)

    def column(j: int) -> list[str]:  # the cells below, missing ones (empty, NA, ?, …) left out
        return [r[j] for r in below if j < len(r) and r[j].lower() not in MISSING]

    def whole(c: str) -> bool:
        return number(c) and float(c.replace(",", "") if thousands else c.replace(",", ".")).is_integer()

    unsure = (f"{path}: cannot tell whether the first line ({','.join(first)[:60]}) is a header or data: "
              "say which with --header or --no-header")  # fmt: skip
    cells = first[1:] if len(first) > 1 and first[0] == "" else first  # after an index's empty cell
    if names and cells and len(set(cells)) == len(cells) and set(cells) <= {*names, label} - {None}:
        # a model's own column names (pandas' integers too), in any order: unless the rows below
        # are whole numbers as well, when the row may equally be a sample
        if all(number(c) for c in cells) and all(whole(c) for j in range(len(first)) for c in column(j)):
            raise ValueError(unsure)
        return True
    numeric = [number(c) for c in first]
    if first[0] == "" and len(first) > 1 and below and _r_row_names(first, below, number):
        return True  # R's write.csv: "" above the row names 1, 2, 3, … and a name above every other column
    if all(n or c == "" for n, c in zip(numeric, first)):
        if cells != [str(j) for j in range(len(cells))] or not below:
            return False  # numbers are data unless they are pandas' names for unnamed columns
        if all(whole(c) for j in range(len(first)) for c in column(j)):
            raise ValueError(unsure)  # 0,1,2 above whole numbers: a sample just as well
        return True
    if not below:
        return True
    for j, cell in enumerate(first):  # a text cell above a column of numbers: a header
        values = column(j)
        if cell.lower() not in MISSING and not numeric[j] and values and all(number(c) for c in values):
            return True
    if (
        all(c.lower() not in MISSING and not n for c, n in zip(first, numeric))
        and len(set(first)) == len(first)
        and all(first[j] not in column(j) for j in range(len(first)))
    ):
        return True  # distinct names, none of them a value below it: a table of text (categories) has a header
    # every text cell sits above text: names of numbers above fractions (wavelengths 400,500,…), and
    # a text cell found nowhere below (the label's name, not a class), make a header
    ints = [j for j, n in enumerate(numeric) if n and first[j] != ""]
    if not ints or not all(_INTEGER.match(first[j]) for j in ints):
        return False
    over_fractions = len({first[j] for j in ints}) == len(ints) and all(
        any(not whole(c) for c in column(j)) for j in ints
    )
    texts = [j for j, n in enumerate(numeric) if not n and first[j] != ""]
    new_text = all(first[j] not in column(j) for j in texts)
    named = any(first[j].lower() in LABEL_NAMES or first[j] == label for j in texts)
    if new_text and (over_fractions or named):
        return True
    if new_text and not over_fractions:
        raise ValueError(unsure)  # names or a sample above whole numbers: nothing tells them apart
    return False  # a text cell seen below is a class: the row is a sample


def _r_row_names(first: list[str], below: list[list[str]], number: Any) -> bool:
    """Whether the first line is the header R's ``write.csv`` writes: an empty first cell above the
    whole numbers 1, 2, 3, … (row names) and distinct names that are not numbers above the rest."""
    rest = first[1:]
    if not all(c and not number(c) for c in rest) or len(set(rest)) != len(rest):
        return False
    cells = [r[0] for r in below if r]
    if not all(_INTEGER.match(c) for c in cells):
        return False
    values = [int(c) for c in cells]
    return all(b > a for a, b in pairwise(values))
