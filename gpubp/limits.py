"""Values a run can hold: every feature and regression target, as read and as scaled, within the
network's dtype, checked once before training; a value past it named by file, line and column.

1e39 is past float32's largest value (3.4e38): left to the network, it became inf in the test rows
after every epoch had trained and the model was written. 1e300 fits float64 but its square does not,
so standard scaling of its column overflows. Both are refused here, before any work, naming the cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .loaders import DataError, is_csv
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


def cell(source: str, row: int, column: int | str, names: list[str] | None, label_index: int | None,
         header: bool | None = None) -> str:  # fmt: skip
    """Where a value is, as the user finds it: a CSV's line (the ``header`` counted; default: when
    there are ``names``) and column name (or its position among the file's columns, from 1), else the
    row and feature index (from 0)."""
    header = names is not None if header is None else header
    if isinstance(column, str):
        name = repr(column)
    elif names is not None:
        name = repr(names[column])
    elif is_csv(source):  # no header: the file's own column, the label's column counted where it sits
        name = str(column + 1 + (label_index is not None and label_index <= column))
    else:
        return f"{source}: row {row}, feature {column} (both from 0)"
    if is_csv(source):
        return f"{source}: line {row + 1 + header}, column {name}"
    return f"{source}: row {row} (from 0), column {name}"


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
            where = cell(ds.source + (" (its test files)" if own_test else ""), row, j, ds.feature_names,
                         ds.label_index)  # fmt: skip
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
            label = ds.label_column if ds.label_column is not None else "the target"
            column = label if isinstance(label, str) else int(label)
            where = cell(ds.source + (" (its test files)" if own_test else ""), row, column, None, None,
                         ds.feature_names is not None)  # fmt: skip
            raise DataError(_too_large(where, float(raw[row]), float(y[row]), big, dtype, "standard", advice))


def _too_large(where: str, value: float, scaled: float, big: float, dtype: np.dtype, kind: str, advice: str) -> str:
    if abs(value) > big or not np.isfinite(value):
        return f"{where}: {value:g} is too large for {dtype} (at most {big:.4g}): {advice}"
    return (f"{where}: {value:g} becomes {scaled:g} once scaled ({kind} scaling, fitted on the training rows), "
            f"too large for {dtype} (at most {big:.4g}): {advice}")  # fmt: skip


def scale_overflow(source: str, X: Any, rows: np.ndarray, column: int, names: list[str] | None,
                   label_index: int | None, what: str, kind: str,
                   label: str | int | None = None) -> DataError:  # fmt: skip
    """The refusal of a column whose scaling overflows float64 (its mean or spread is infinite): its
    largest value among the training ``rows`` named by line and column (``what``: "feature" or
    "target"; a target's column is ``label``)."""
    values = np.asarray(X[rows] if X.ndim > 1 else X[rows].reshape(-1, 1), dtype=np.float64)
    k = column if values.shape[1] > column else 0
    i = int(np.argmax(np.abs(values[:, k])))
    row = int(rows[i])
    target = what == "target"
    col = (label if isinstance(label, str) else int(label or 0)) if target else column
    where = cell(source, row, col, None if target else names, None if target else label_index,
                 names is not None)  # fmt: skip
    return DataError(f"{where}: {values[i, k]:g} is too large to scale (the column's {kind} scaling overflows "
                     f"float64); divide the {what} by a constant")  # fmt: skip
