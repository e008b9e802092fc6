"""Checks on what users pass in, with messages that say what was wrong and what was expected."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from .backend import Device, is_cupy_array, to_numpy
from .rows import chunk_rows, chunks, is_row_source, read, row_of, to_device, where


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = True,
                maximum: float | None = None, maximum_inclusive: bool = False) -> float:  # fmt: skip
    """``value`` as a finite float in [minimum (or > with ``inclusive=False``), maximum) (or ≤ maximum with
    ``maximum_inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (not maximum_inclusive and value == maximum)):
        raise ValueError(f"{name} must be {'<=' if maximum_inclusive else '<'} {maximum}, got {value}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")
    return value


def check_X(device: Device, X: Any, n_features: int, dtype: np.dtype, name: str = "X", *,
            host: bool = False) -> Any:  # fmt: skip
    """X as a (samples, n_features) array of ``dtype`` on ``device``; finite, non-empty.

    The values are checked in chunks of rows (bounded temporaries; errors name the row and, for a
    memory-mapped array, the file). A row source (see :mod:`gpubp.rows`) is returned as it is, never
    converted whole; with ``host=True`` an in-memory array is returned unconverted too.
    """
    _refuse_path(X, name)
    source = X if is_row_source(X) else device.adopt(X, name)
    at = where(source)
    kind = np.dtype(source.dtype).kind
    if kind not in "biuf":
        raise TypeError(f"{name}{at} must be numeric (bool, int or float), got dtype {source.dtype}")
    if source.ndim != 2:
        raise ValueError(f"{name}{at} must be 2-D (samples, features), got shape {source.shape}")
    if source.shape[0] == 0:
        raise ValueError(f"{name}{at} is empty: expected at least one sample")
    if source.shape[1] != n_features:
        raise ValueError(f"{name}{at} has {source.shape[1]} features per sample, the network expects {n_features}")
    if kind == "f":
        _scan(device, source, lambda xp, block, start: _check_floats(xp, block, start, name, dtype, at, source))
    return source if host or is_row_source(source) else to_device(device, source, dtype)


def check_Y(device: Device, Y: Any, n_samples: int, n_outputs: int, loss: str, dtype: np.dtype,
            name: str = "Y", *, host: bool = False) -> Any:  # fmt: skip
    """Targets as a (samples, n_outputs) array of ``dtype`` on ``device``.

    cross_entropy accepts integer labels of shape (samples,) in [0, n_outputs) and turns them
    into one-hot rows; a single-output network accepts shape (samples,) for bce and mse.
    Checked in chunks like :func:`check_X`; a row source (and with ``host=True`` an in-memory
    array) is returned unconverted: :func:`label_width` then says whether it holds labels.
    """
    _refuse_path(Y, name)
    source = Y if is_row_source(Y) else device.adopt(Y, name)
    at = where(source)
    if np.dtype(source.dtype).kind not in "biuf":
        raise TypeError(f"{name}{at} must be numeric, got dtype {source.dtype}")
    if source.ndim == 0 or source.shape[0] != n_samples:
        got = "a scalar" if source.ndim == 0 else f"{source.shape[0]} rows"
        raise ValueError(f"{name}{at} has {got} but X has {n_samples} samples")
    labels = source.ndim == 1 and loss == "cross_entropy"
    if not labels and not (source.ndim == 1 and n_outputs == 1) and (
            source.ndim != 2 or source.shape[1] != n_outputs):  # fmt: skip
        hint = " or integer labels of shape (samples,)" if loss == "cross_entropy" else ""
        raise ValueError(f"{name}{at} must have shape ({n_samples}, {n_outputs}){hint}, got {source.shape}")
    span = [np.inf, -np.inf]  # smallest and largest label seen
    first_bad: list[str] = []  # the first label out of range, with its row

    def check(xp: Any, block: Any, start: int) -> None:
        if block.dtype.kind == "f":  # NaN/Inf, and for targets values too large for dtype
            _check_floats(xp, block, start, name, None if labels else dtype, at, source)
        if labels:
            if block.dtype.kind == "f" and not bool((block == xp.floor(block)).all()):
                row = start + int(xp.argmax(block != xp.floor(block)))
                where_ = row_of(source, name, row)
                raise ValueError(f"{name}{at} holds class labels, which must be whole numbers ({where_})")
            span[0], span[1] = min(span[0], int(block.min())), max(span[1], int(block.max()))
            bad = (block < 0) | (block >= n_outputs)
            if not first_bad and bool(bad.any()):
                i = int(xp.argmax(bad))
                first_bad.append(f"label {block[i].item():g} at {row_of(source, name, start + i)}")
            return
        if loss in ("bce", "cross_entropy") and not bool(((block >= 0) & (block <= 1)).all()):
            bad = ~((block >= 0) & (block <= 1)).reshape(block.shape[0], -1).all(axis=1)
            row = start + int(xp.argmax(bad))
            raise ValueError(f"{name}{at} for {loss} must hold targets in [0, 1] ({row_of(source, name, row)})")

    _scan(device, source, check)
    if labels and (span[0] < 0 or span[1] >= n_outputs):
        raise ValueError(
            f"{name}{at} has labels in [{span[0]}, {span[1]}] but the network has {n_outputs} outputs: "
            f"expected labels 0..{n_outputs - 1} ({first_bad[0]})"
        )
    if host or is_row_source(source):
        return source
    return to_device(device, source, dtype, label_width(source, loss, n_outputs))


def _refuse_path(x: Any, name: str) -> None:
    """A file name given for data: say how to pass the file (np.asarray would make it a string array)."""
    if isinstance(x, (str, os.PathLike)):
        raise TypeError(f"{name} is a path ({os.fspath(x)!r}), not an array: pass gpubp.rows.open_npy(path) "
                        f"to train from a .npy file without loading it")  # fmt: skip


def label_width(Y: Any, loss: str, n_outputs: int) -> int | None:
    """n_outputs when checked targets ``Y`` are class labels (to become one-hot rows), else None."""
    return n_outputs if Y.ndim == 1 and loss == "cross_entropy" else None


def _scan(device: Device, source: Any, check: Any) -> None:
    """check(xp, block, first_row) over chunks of rows; temporaries stay near rows.CHUNK_BYTES."""
    xp = device.xp if is_cupy_array(source) else np
    width = int(np.prod(source.shape[1:], dtype=np.int64))
    step = chunk_rows(width, max(8, np.dtype(source.dtype).itemsize))
    for part in chunks(source.shape[0], step):
        check(xp, read(source, part) if xp is np else source[part], part.start)


def _check_floats(xp: Any, block: Any, start: int, name: str, dtype: np.dtype | None, at: str, source: Any) -> None:
    """Refuse NaN/Inf, and with ``dtype`` values that become infinite in it; name the first bad row."""
    narrowing = dtype is not None and block.dtype.itemsize > dtype.itemsize
    with np.errstate(over="ignore"):
        finite = xp.isfinite(block.astype(dtype) if narrowing else block)
    if bool(finite.all()):
        return
    i = int(xp.argmin(finite.reshape(block.shape[0], -1).all(axis=1)))
    row, where_ = block[i], row_of(source, name, start + i)
    if bool(xp.isnan(row).any()):
        raise ValueError(f"{name}{at} contains NaN or infinite values: NaN at {where_}")
    if bool(xp.isinf(row).any()):
        raise ValueError(f"{name}{at} contains NaN or infinite values: an infinite value at {where_}")
    raise ValueError(f"{name}{at} has values too large for {dtype}: {float(abs(row).max()):g} at {where_}")


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """``sample_weight`` as n float64 weights on the host (a CuPy array too): finite, >= 0 (a negative
    weight would make the weighted mean loss unbounded below), with a positive sum."""
    w = to_numpy(sample_weight, np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must be {n} weights, one a row, got shape {w.shape}")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"sample_weight must be finite and >= 0, got sample_weight[{i}] = {w[i]} "
                         f"({bad.size} such weights)")  # fmt: skip
    if not w.sum() > 0:
        raise ValueError("sample_weight must have a positive sum: all weights are 0, nothing would be learnt")
    return w
