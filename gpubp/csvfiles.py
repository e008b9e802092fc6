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
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .tables import MISSING

LABEL_NAMES = ("label", "labels", "target", "class", "y")  # in order of preference
DELIMITERS = (",", ";", "\t")
SAMPLE_LINES = 50
SAMPLE_BYTES = 64 << 20  # the sample reads at most this much: a longer line (a bomb of one line) is refused
# a number written with a decimal comma (1,5) and one with thousands separators (1,250,000)
DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")
THOUSANDS = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_INTEGER = re.compile(r"^[-+]?\d+$")
MARKS = (".", ",")  # the decimal marks; each is the other's thousands separator where both are used
# per mark m: a whole number in groups of three separated by m (1,250 or 1.250.000) ...
GROUPS = {m: re.compile(rf"^[-+]?[1-9]\d{{0,2}}(?:{re.escape(m)}\d{{3}})+$") for m in MARKS}
# ... a fraction written with m as the decimal mark (7.4, 0,076) ...
FRACTION = {m: re.compile(rf"^[-+]?\d*{re.escape(m)}\d+(?:[eE][-+]?\d+)?$") for m in MARKS}
# ... and a number with both marks, m the decimal one (1.022,64 for ',', 1,022.64 for '.')
BOTH = {m: re.compile(rf"^[-+]?[1-9]\d{{0,2}}(?:{re.escape(o)}\d{{3}})+{re.escape(m)}\d+$")
        for m, o in zip(MARKS, MARKS[::-1], strict=True)}  # fmt: skip


@dataclass
class CsvLayout:
    """What :func:`csv_layout` found in a CSV's first lines: the ``delimiter``, the ``decimal``
    mark, the ``thousands`` separator (None, ',' or '.'), the ``header`` (its cells, or None when the
    first row is data) and whether the first column is a pandas ``index``."""

    delimiter: str
    decimal: str
    header: list[str] | None
    index: bool = False
    thousands: str | None = None


def sample_lines(path: str, gzipped: bool, encoding: str | None = None) -> str:
    """The first SAMPLE_LINES + 1 non-blank lines, whole (decoded as ``encoding``, default UTF-8, a BOM
    removed), if they take at most SAMPLE_BYTES."""
    opener = gzip.open if gzipped else open
    lines: list[str] = []
    taken = 0
    try:
        with opener(path, "rb") as fh:
            while len(lines) <= SAMPLE_LINES:
                raw = fh.readline(SAMPLE_BYTES + 1 - taken)
                taken += len(raw)
                if taken > SAMPLE_BYTES:
                    raise ValueError(f"{path}: its first {SAMPLE_LINES + 1} lines take more than "
                                     f"{SAMPLE_BYTES >> 20} MiB: not a CSV file gpubp reads")  # fmt: skip
                if not raw:
                    break
                if b"\x00" in raw:
                    raise ValueError(f"{path}: not a text CSV file (binary content)")
                text = raw.decode(encoding or ("utf-8-sig" if not lines else "utf-8"))
                if text.strip():
                    lines.append(text.rstrip("\r\n"))
    except UnicodeDecodeError as exc:
        raise ValueError(undecodable(path, encoding, exc, len(lines) + 1)) from None
    except LookupError:
        raise ValueError(f"{path}: unknown encoding {encoding!r} (--encoding): give one Python knows, such as "
                         "utf-8, latin-1 or cp1252") from None  # fmt: skip
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a damaged gzip stream
        raise ValueError(f"{path}: cannot read: {exc}") from None
    return "\n".join(lines)


def undecodable(path: str, encoding: str | None, exc: UnicodeDecodeError, line: int | None = None) -> str:
    """The refusal of a file that is not text in ``encoding`` (None: UTF-8), with the option that reads it."""
    at = f" (line {line}: byte 0x{exc.object[exc.start]:02x})" if line else ""
    if encoding:
        return f"{path}: cannot decode as {encoding}{at}: give the file's encoding with --encoding"
    return (f"{path}: not a text CSV file in UTF-8{at}: if it is text, give its encoding with --encoding (a "
            "spreadsheet's export is often cp1252 or latin-1)")  # fmt: skip


def rows_of(sample: str, delimiter: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]


def number_text(cell: str, decimal: str = ".", thousands: str | None = None) -> str | None:
    """``cell`` as Python's float() reads it (the thousands separators taken out, the decimal mark a
    point), or None when it is no number written with this ``decimal`` mark and ``thousands``
    separator: separators only between groups of three digits before the decimal mark, never two marks
    read loosely (pandas' own thousands= reads '3.2.49' as 3249)."""
    if thousands and thousands in cell:
        whole, _, fraction = cell.partition(decimal) if decimal in cell else (cell, "", "")
        if not GROUPS[thousands].match(whole) or not (fraction == "" or fraction.isdigit()):
            return None
        cell = cell.replace(thousands, "")
    other = "," if decimal == "." else "."
    if other in cell:
        return None
    if decimal == ",":
        cell = cell.replace(",", ".")
    try:
        float(cell)
    except ValueError:
        return None
    return cell


def is_number(cell: str, decimal: str = ".", thousands: str | None = None) -> bool:
    return number_text(cell, decimal, thousands) is not None


def _shown(name: str) -> str:
    return "tab" if name == "\t" else repr(name)


def csv_layout(path: str, sample: str, delimiter: str | None = None, header: bool | None = None,
               names: Sequence[str] = (), label: str | None = None, decimal: str | None = None,
               thousands: str | None = None) -> CsvLayout:  # fmt: skip
    """The delimiter, decimal mark, thousands separator, header and index column of a CSV from its
    first lines (see docs/data-formats.md). ``delimiter``/``header``/``decimal``/``thousands`` given:
    used as they are (``thousands`` "" for none). ``names`` and ``label``: a model's feature names and
    label column name, which recognise a header of numbers (pandas' integer column names, reordered
    or a subset). Raises ValueError where the file can be read two ways, naming the option that decides."""
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
    decimal, thousands = _marks(path, rows, delimiter, decimal, thousands)
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
    notations = [(".", None)] if delimiter == "," else [(".", None), (",", None), (",", "."), (".", ",")]

    def number(c: str) -> bool:
        return c == "" or any(is_number(c, d, t) for d, t in notations)

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


def _marks(path: str, rows: list[list[str]], delimiter: str, decimal: str | None,
           thousands: str | None) -> tuple[str, str | None]:  # fmt: skip
    """(decimal mark, thousands separator or None) of the sampled cells, or of the options given
    (docs/data-formats.md, "Numbers"). A file has one decimal mark: a fraction (7.4, 0,076) or a
    number with both marks (1.022,64) shows which; a thousands separator is the other mark. A whole
    number in groups of three with one separator (3.249, 130,285) is never read as a fraction on a
    guess: in a ';' or tab file with nothing else to tell, it is refused naming --decimal and
    --thousands; between ',' (where decimal commas are not written bare) the comma is read as
    thousands and the point as the decimal mark."""
    if thousands == "":
        thousands = None
        if decimal is None:  # no separators: a mark between digits is the decimal one
            decimal = next((m for m in MARKS if _cells(rows, lambda c, m=m: FRACTION[m].match(c))), ".")
    if decimal is not None and thousands is not None:
        if decimal == thousands:
            raise ValueError(f"--decimal {decimal!r} and --thousands {thousands!r} are the same mark: give two")
        return decimal, thousands
    if decimal is None and thousands is not None:
        return ("," if thousands == "." else "."), thousands
    found = {m: _cells(rows, lambda c, m=m: _decimal_evidence(c, m)) for m in MARKS}
    if delimiter == ",":
        found[","] = None  # bare decimal commas would split the cells: a quoted '1,5' is named by the number check
    if decimal is None:
        if found["."] and found[","]:
            comma, point = found[","], found["."]
            assert comma is not None  # narrowed for mypy: both tested just above
            assert point is not None
            raise ValueError(f"{path}: numbers are written both as {comma[0]!r} (a decimal comma) on "
                             f"{_at(rows, comma)} and {point[0]!r} on {_at(rows, point)}: write the file with one "
                             "decimal mark")  # fmt: skip
        decimal = "," if found[","] else "." if found["."] else None
    if decimal is None:  # nothing tells: only whole numbers, some perhaps in groups of three
        grouped = {m: _cells(rows, lambda c, m=m: GROUPS[m].match(c)) for m in MARKS}
        if delimiter == "," or not (grouped["."] or grouped[","]):
            return ".", ("," if grouped[","] else None)
        m = "," if grouped[","] else "."
        cell = grouped[m]
        assert cell is not None  # narrowed for mypy: one of the two was found just above
        reads = f"{cell[0].replace(m, '.')} or {cell[0].replace(m, '')}"
        name = "a decimal comma" if m == "," else "a decimal point"
        raise ValueError(f"{path}: {cell[0]!r} may be {name} or a thousands separator ({reads}; {_at(rows, cell)}): "
                         f"say which with --decimal '{m}' or --thousands '{m}'")  # fmt: skip
    other = "," if decimal == "." else "."
    either = _cells(rows, lambda c: GROUPS[other].match(c) or BOTH[decimal].match(c))
    return decimal, (other if either else None)


def _decimal_evidence(cell: str, m: str) -> bool:
    """Whether ``cell`` shows ``m`` as the decimal mark: a fraction with it (not three digits in
    a group after a first group: 3.249 may be thousands), both marks with ``m`` last, or the other
    mark between several groups (1,250,000)."""
    other = "," if m == "." else "."
    return bool(
        (FRACTION[m].match(cell) and not GROUPS[m].match(cell))
        or BOTH[m].match(cell)
        or (GROUPS[other].match(cell) and cell.count(other) > 1)
    )


def _cells(rows: list[list[str]], test: Any) -> tuple[str, int, int] | None:
    """The first cell below the first row (or in it, for a file of one row) that passes ``test``:
    (cell, row, column), or None."""
    for i, r in enumerate(rows[1:] or rows, start=1 if len(rows) > 1 else 0):
        for j, c in enumerate(r):
            if test(c):
                return c, i, j
    return None


def _at(rows: list[list[str]], found: tuple[str, int, int]) -> str:
    """Where a sampled cell is: its line (blank lines not counted) and its column, by the first row's
    name when that is text."""
    _, i, j = found
    name = rows[0][j] if j < len(rows[0]) and i > 0 and not is_number(rows[0][j], ",", ".") and not is_number(
        rows[0][j]) else None  # fmt: skip
    return f"line {i + 1}, column {name!r}" if name else f"line {i + 1}, column {j + 1}"


def _is_header(path: str, first: list[str], below: list[list[str]], decimal: str, thousands: str | None,
               names: Sequence[str], label: str | None) -> bool:  # fmt: skip
    """Whether the first row is a header (docs/data-formats.md, "The header"); refuses when unsure."""

    def number(c: str) -> bool:
        return is_number(c, decimal, thousands)

    def column(j: int) -> list[str]:  # the cells below, missing ones (empty, NA, ?, …) left out
        return [r[j] for r in below if j < len(r) and r[j].lower() not in MISSING]

    def whole(c: str) -> bool:
        text = number_text(c, decimal, thousands)
        return text is not None and float(text).is_integer()

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
