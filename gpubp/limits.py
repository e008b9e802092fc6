"""Values a run can hold: every feature and regression target, as read and as scaled, within the
network's dtype, checked once before training; a value past it named by file, line and column.

1e39 is past float32's largest value (3.4e38): left to the network, it became inf in the test rows
after every epoch had trained and the model was written. 1e300 fits float64 but its square does not,
so standard scaling of its column overflows. Both are refused here, before any work, naming the cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .loaders import DataError
from .rows import chunk_rows, chunks


def extremes(X: Any, column: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each column's (smallest, largest) value of ``X`` (n, d) as float64, read in chunks of rows
    (a memory-mapped file is never read whole); ``column``: that column's alone, each of shape (1,)."""
    d = int(X.shape[1])
    low, high = np.full(d if column is None else 1, np.inf), np.full(d if column is None else 1, -np.inf)
    for part in chunks(len(X), chunk_rows(d, 8)):
        block = np.asarray(X[part], dtype=np.float64)
        block = block if column is None else block[:, column : column + 1]
        low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
    return low, high


def first_row(X: Any, column: int, test: Any) -> int:
    """The first row of ``X`` whose value in ``column`` passes ``test`` (a vectorised predicate)."""
    for part in chunks(len(X), chunk_rows(int(X.shape[1]), 8)):
        hits = np.flatnonzero(test(np.asarray(X[part], dtype=np.float64)[:, column]))
        if len(hits):
            return part.start + int(hits[0])
    raise ValueError(f"no row of column {column} passes the test")


@dataclass(frozen=True)
class Places:
    """Where a CSV's values are, as the user finds them: ``lines`` (n,) the file's line of each row
    of X (rows left out for an empty label skipped, the header counted), ``columns`` (d,) the file
    column each column of X was made from (a one-hot or missing-indicator column named for its
    column; by name, or by position from 1 without a header), ``label`` the label's column so shown."""

    lines: np.ndarray
    columns: list[str]
    label: str

    @classmethod
    def of(cls, index: Any, first_line: int, sources: list[str], header: bool, label: str | int | None,
           label_index: int | None) -> Places:  # fmt: skip
        """From the file's row numbers ``index`` (n,) (the frame's index: 0 for the first data row),
        ``first_line`` (that row's line), ``sources`` (d,) the name of X's columns' file columns (without
        a header, the file's column number from 0, as pandas names it), and the label column."""

        def shown(name: str | int | None) -> str:
            if name is None:
                return "'the target'"
            if header:
                return repr(str(name))
            return str(int(name) + 1) if str(name).isdigit() else repr(str(name))

        lines = np.asarray(index, dtype=np.int64) + first_line
        return cls(lines, [shown(name) for name in sources], shown(label if header else label_index))

    def cell(self, source: str, row: int, column: int | None) -> str:
        """``source``, X's ``row`` as its line and X's ``column`` (None: the label's) by its file column."""
        name = self.label if column is None else self.columns[column]
        return f"{source}: line {int(self.lines[row])}, column {name}"


def cell(source: str, row: int, column: int | str | None, places: Places | None) -> str:
    """Where X's ``row`` and ``column`` are (``column`` None or a name: the label's): a CSV's line and
    column by :class:`Places`, else the row and feature index (from 0)."""
    if places is not None:
        return places.cell(source, row, column if isinstance(column, int) else None)
    if isinstance(column, int):
        return f"{source}: row {row}, feature {column} (both from 0)"
    return f"{source}: row {row} (from 0), column {column or 'the target'!r}"


def check_dtype(ds: Any, dtype: Any) -> None:
    """Refuse (DataError) a feature or regression target of ``ds`` (a Dataset) that ``dtype`` cannot
    hold, as read or once scaled; the message names the first such cell and what would hold it."""
    dtype = np.dtype(dtype)
    big = float(np.finfo(dtype).max)
    advice = "give --dtype float64, or divide the column by a constant" if dtype.itemsize < 8 else (
        "divide the column by a constant")  # fmt: skip
    parts = [(ds.X, False)] + ([(ds.X_test, True)] if ds.X_test is not None else [])
    shift, scale = np.asarray(ds.scaler.shift, np.float64), np.asarray(ds.scaler.scale, np.float64)
    for X, own_test in parts:
        low, high = extremes(X)
        with np.errstate(over="ignore", invalid="ignore"):
            raw = np.maximum(np.abs(low), np.abs(high))
            scaled = np.maximum(np.abs(low - shift), np.abs(high - shift)) / scale
        bad = np.flatnonzero(~((raw <= big) & (scaled <= big)))
        if len(bad):
            j = int(bad[0])
            row = first_row(X, j, lambda v, j=j: ~((np.abs(v) <= big) & (np.abs((v - shift[j]) / scale[j]) <= big)))
            value = float(np.asarray(X[row : row + 1], dtype=np.float64)[0, j])
            where = cell(ds.source + (" (its test files)" if own_test else ""), row, j,
                         None if own_test else ds.places)  # fmt: skip
            raise DataError(_too_large(where, value, (value - shift[j]) / scale[j], big, dtype, ds.scaler.kind, advice))
    if ds.task != "regress" or ds.target is None:
        return
    for y, own_test in ((ds.y, False), (ds.y_test, True)):
        if y is None:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            raw = ds.target.inverse(np.asarray(y, np.float64).reshape(-1, 1))[:, 0]
            bad = np.flatnonzero(~((np.abs(raw) <= big) & (np.abs(y) <= big)))
        if len(bad):
            row = int(bad[0])
            label = ds.label_column if isinstance(ds.label_column, str) else None
            where = cell(ds.source + (" (its test files)" if own_test else ""), row, label,
                         None if own_test else ds.places)  # fmt: skip
            raise DataError(_too_large(where, float(raw[row]), float(y[row]), big, dtype, "standard", advice))


def _too_large(where: str, value: float, scaled: float, big: float, dtype: np.dtype, kind: str, advice: str) -> str:
    if np.isinf(value):  # no dtype holds it and no constant divides it: the cell itself is wrong
        return f"{where}: {value:g} is an infinite value: write the number it stands for, or leave the cell empty"
    if abs(value) > big or not np.isfinite(value):
        return f"{where}: {value:g} is too large for {dtype} (at most {big:.4g}): {advice}"
    return (f"{where}: {value:g} becomes {scaled:g} once scaled ({kind} scaling, fitted on the training rows), "
            f"too large for {dtype} (at most {big:.4g}): {advice}")  # fmt: skip


def scale_overflow(source: str, X: Any, rows: np.ndarray, column: int, places: Places | None, what: str,
                   kind: str, label: str | None = None) -> DataError:  # fmt: skip
    """The refusal of a column whose scaling overflows float64 (its mean or spread is infinite): its
    largest value among the training ``rows`` named by line and column (``what``: "feature", X's
    ``column``, or "target", ``X`` the targets (n,) and ``label`` their column's name)."""
    target = what == "target"
    values = np.asarray(X[rows] if not target else np.asarray(X)[rows].reshape(-1, 1), dtype=np.float64)
    k = 0 if target else column
    i = int(np.argmax(np.abs(values[:, k])))
    where = cell(source, int(rows[i]), label if target else column, places)
    return DataError(f"{where}: {values[i, k]:g} is too large to scale (the column's {kind} scaling overflows "
                     f"float64); divide the {what} by a constant")  # fmt: skip
