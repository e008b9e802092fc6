"""Activation functions g and their derivatives, by name, bound to a device.

The registry is :data:`gpubp.kernels.ACTIVATIONS`, where each activation's formulas are written once: its
``forward`` kernel computes A ← g(A + b) in place (bias add fused in), and ``derivative`` turns an upstream
gradient into δ in place, δ ← δ ⊙ g'(Z), with g' written from the output A (σ' = a(1 − a), tanh' = 1 − a²,
relu' = [a > 0]). Identity has no derivative kernel (g' = 1). Softmax is row-wise, not elementwise: it is written
here over ``xp`` and only allowed as an output layer, and its "derivative" is the product with its
Jacobian, δ ← J_softmaxᵀ δ, not δ ⊙ g'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels as K
from .backend import CPU, Device
from .kernelkit import jit, ones_column, scratch
from .kernels import ACTIVATIONS as ACTIVATIONS
from .kernels import HIDDEN as HIDDEN
from .kernels import OUTPUTS as OUTPUTS
from .kernels import Activation as Activation

_SHORT_ROWS = 32  # softmax rows up to this long (classes) take the CPU's faster reductions below
# up to this many elements the compiled row pass wins (one call for four); beyond, its serial row max loses
# to NumPy's vectorised reduction (measured with a compiled row sum too: 256×100 17 µs faster, 64×1000 90 µs
# slower)
_JIT_SOFTMAX = 32768


def softmax_forward(device: Device, b: Any, a: Any) -> None:
    """A ← softmax(A + b) row by row, with the row max subtracted so exp never overflows."""
    if device.is_gpu:  # one launch (the fused row kernel) instead of five
        return device.row_kernel(K.softmax_rows)(b, a)
    if a.shape[1] <= _SHORT_ROWS:
        return _softmax_short_rows(b, a)
    xp = device.xp
    a += b
    row = device.scratch((a.shape[0], 1), a.dtype, "softmax_row")
    xp.max(a, axis=1, keepdims=True, out=row)
    device.kernel(K.exp_shift)(row, a)
    _divide_by_row_sums(device, a)


def _divide_by_row_sums(device: Device, a: Any) -> None:
    """A ← A / Σ_row A. NumPy's rows up to _SHORT_ROWS long are summed as one matrix-vector product (faster
    there than np.sum; rounding may differ): the twins and the compiled path share this, so they agree."""
    row = device.scratch((a.shape[0], 1), a.dtype, "softmax_row")
    if not device.is_gpu and a.shape[1] <= _SHORT_ROWS:
        np.matmul(a, ones_column(a.shape[1], a.dtype), out=row)
    else:
        device.xp.sum(a, axis=1, keepdims=True, out=row)
    a /= row


def _softmax_short_rows(b: np.ndarray, a: np.ndarray) -> None:
    """softmax_forward on NumPy for rows up to _SHORT_ROWS long, where NumPy's own row reductions
    (one row at a time) cost more than the arithmetic."""
    a += b
    row = scratch((a.shape[0], 1), a.dtype, "softmax_row")
    aT = scratch(a.shape[::-1], a.dtype, "softmax_t")
    np.copyto(aT, a.T)  # over a transposed copy the same row max is ~5× faster
    np.maximum.reduce(aT, axis=0, out=row[:, 0])
    K.exp_shift.numpy(row, a)
    _divide_by_row_sums(CPU, a)


def _shift_rows_loop(b, a):
    """A ← (A + b) − max_row(A + b), row by row (the part of softmax that NumPy does in four calls)."""
    for i in range(a.shape[0]):
        m = a[i, 0] + b[0]
        for j in range(a.shape[1]):
            z = a[i, j] + b[j]
            a[i, j] = z
            m = z if z > m else m
        for j in range(a.shape[1]):
            a[i, j] = a[i, j] - m


def _softmax_jit(b: np.ndarray, a: np.ndarray) -> None:
    """softmax_forward with the bias add, row max and shift as one compiled loop, then NumPy's vectorised
    exp (a loop's exp is scalar, several times slower on long rows) and the twins' row sums: four calls
    instead of seven, the twins' numbers bit for bit (max is exact in any order; a sum is not)."""
    jit(_shift_rows_loop, (1, 2))(b, a)
    np.exp(a, out=a)
    _divide_by_row_sums(CPU, a)


def softmax_backward(device: Device, a: Any, delta: Any) -> None:
    """δ ← J_softmax(z)ᵀ δ = a ⊙ (δ − Σ_j δ_j a_j), row by row (only needed with mse)."""
    xp = device.xp
    s = device.scratch(a.shape, a.dtype, "softmax_jvp")
    xp.multiply(delta, a, out=s)
    row = device.scratch((a.shape[0], 1), a.dtype, "softmax_row")
    xp.sum(s, axis=1, keepdims=True, out=row)
    delta -= row
    delta *= a


def forward_runner(device: Device, name: str, dtype: Any = None):
    """f(b, A): A ← g(A + b) in place on ``device`` (on a GPU compiled now for ``dtype``; None: both)."""
    act = ACTIVATIONS[name]
    if act.forward is None:
        if device.jit:
            jit(_shift_rows_loop, (1, 2))  # compiled now, not in epoch 1
            return lambda b, a: _softmax_jit(b, a) if a.size <= _JIT_SOFTMAX else softmax_forward(device, b, a)
        if device.is_gpu:
            return device.row_kernel(K.softmax_rows, dtype)  # compiled now, when the network binds
        return lambda b, a: softmax_forward(device, b, a)
    return device.kernel(act.forward, dtype)


def derivative_runner(device: Device, name: str, dtype: Any = None):
    """f(A, δ): δ ← δ ⊙ g'(Z) in place (softmax: δ ← J_softmaxᵀ δ, see softmax_backward), or None when g' = 1."""
    act = ACTIVATIONS[name]
    if name == "softmax":
        return lambda a, delta: softmax_backward(device, a, delta)
    if act.derivative is None:
        return None
    return device.kernel(act.derivative, dtype)
