"""Checks on what users pass in, with messages that say what was wrong and what was expected."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .backend import Device


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = True,
                maximum: float | None = None) -> float:  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {minimum}, got {value}")
    if maximum is not None and value >= maximum:
        raise ValueError(f"{name} must be < {maximum}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")
    return value


def check_X(device: Device, X: Any, n_features: int, dtype: np.dtype, name: str = "X") -> Any:
    """X as a (samples, n_features) array of ``dtype`` on ``device``; finite, non-empty."""
    arr = device.adopt(X, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric (bool, int or float), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected at least one sample")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample, the network expects {n_features}")
    with np.errstate(over="ignore"):  # values too large for dtype become inf, refused just below
        out = device.asarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" or out.dtype != arr.dtype:
        finite = device.xp.isfinite(out).all()
        if not bool(finite):
            raise ValueError(f"{name} contains NaN or infinite values (or values too large for {dtype})")
    return out


def check_Y(device: Device, Y: Any, n_samples: int, n_outputs: int, loss: str, dtype: np.dtype,
            name: str = "Y") -> Any:  # fmt: skip
    """Targets as a (samples, n_outputs) array of ``dtype`` on ``device``.

    cross_entropy accepts integer labels of shape (samples,) in [0, n_outputs) and turns them
    into one-hot rows; a single-output network accepts shape (samples,) for bce and mse.
    """
    arr = device.adopt(Y, name)
    xp = device.xp
    axp = np if isinstance(arr, np.ndarray) else xp  # checks run where Y is, before any copy
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] != n_samples:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} rows"
        raise ValueError(f"{name} has {got} but X has {n_samples} samples")
    if arr.dtype.kind == "f" and not bool(axp.isfinite(arr).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.ndim == 1 and loss == "cross_entropy":
        labels = arr
        if labels.dtype.kind == "f":
            if not bool((labels == axp.floor(labels)).all()):
                raise ValueError(f"{name} holds class labels, which must be whole numbers")
        labels = labels.astype(np.int64)
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n_outputs:
            raise ValueError(
                f"{name} has labels in [{lo}, {hi}] but the network has {n_outputs} outputs: "
                f"expected labels 0..{n_outputs - 1}"
            )
        labels = device.asarray(labels)
        onehot = xp.zeros((n_samples, n_outputs), dtype=dtype)
        onehot[xp.arange(n_samples), labels] = 1
        return onehot
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        hint = " or integer labels of shape (samples,)" if loss == "cross_entropy" else ""
        raise ValueError(f"{name} must have shape ({n_samples}, {n_outputs}){hint}, got {arr.shape}")
    if loss in ("bce", "cross_entropy") and not bool(((arr >= 0) & (arr <= 1)).all()):
        raise ValueError(f"{name} for {loss} must hold targets in [0, 1]")
    with np.errstate(over="ignore"):
        out = device.asarray(arr, dtype=dtype)
    if not bool(xp.isfinite(out).all()):
        raise ValueError(f"{name} has values too large for {dtype}")
    return out
