"""Hand-written elementwise kernels: one CUDA C body and one NumPy twin per formula.

Every kernel is declared once, here, as a :class:`~gpubp.kernelkit.Kernel`: CuPy-style parameter lists templated on
``T`` (float32 or float64), a CUDA C body, and a NumPy function with the same arguments that works
in place on preallocated buffers (no new arrays in steady state). On the GPU the body becomes a
``cupy.ElementwiseKernel``, built on first use and never at import; on the CPU the twin runs.

Ten kernels also have a *loop*: the same formula as one plain Python loop over the elements, which
Numba compiles for the host (the ``numba`` extra), so that the kernel is one call on the CPU too, as
on the GPU, instead of the twin's two to five NumPy calls at ~0.5 µs each; that is what makes small
networks faster on the CPU. A loop does the twin's operations in the twin's order with constants of
the array dtype, so it gives the twin's numbers bit for bit. Kernels whose time goes into exp, log or
tanh, or into Adam's √ and ÷, have no loop: there NumPy's vectorised passes beat a compiled scalar
loop (measured). Loops are plain Python, so they also run (slowly) without Numba, which is how the
tests check them there. How a kernel is declared, compiled and given scratch buffers is
:mod:`gpubp.kernelkit`; this module holds the formulas.

Conventions
-----------
- Output parameters are read *and* written: ``delta_sigmoid(a, delta)`` turns the upstream gradient
  held in ``delta`` into δ in place. Kernels that are in-place on a buffer take it as an output.
- Derivatives are taken from the activation output ``a``, so Z need not be kept:
  σ'(z) = a(1 − a), tanh'(z) = 1 − a², relu'(z) = [a > 0].
- Scalars (``lr``, ``inv_b``, ...) are passed as NumPy scalars of the array dtype, so float32 stays
  float32 on both devices.
- The bodies use only C that compiles both as CUDA and as host C++ (the tests compile them with
  nvcc and with g++ and compare the host build with the NumPy twin, on NaN, ±inf, ±0 and subnormal
  inputs too). A body does its twin's operations in the twin's order, and its comparisons let NaN
  through as NumPy's do (``z > 0 || z != z``): a plain ``z > 0 ? z : 0`` maps NaN to 0, and a diverging
  run on the GPU would then never reach the epoch's finiteness check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernelkit import Kernel, RowKernel, full_like, scratch_like, zeros_like

# ---------------------------------------------------------------------------------------------
# Forward: A ← g(A + b), the bias add fused with the activation (A holds A_{l-1} W_lᵀ on entry).
# ---------------------------------------------------------------------------------------------


def _bias_sigmoid(b, a):
    # σ(z) = ½ tanh(z/2) + ½: exact in form, never overflows and never warns, even at |z| = 1e4.
    a += b
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


bias_sigmoid = Kernel(
    "bias_sigmoid", "T b", "T a",
    "a = (T)0.5 * tanh((T)0.5 * (a + b)) + (T)0.5",
    _bias_sigmoid,
)  # fmt: skip


def _bias_tanh(b, a):
    a += b
    np.tanh(a, out=a)


bias_tanh = Kernel("bias_tanh", "T b", "T a", "a = tanh(a + b)", _bias_tanh)


def _bias_relu(b, a):
    a += b
    np.maximum(a, zeros_like(a), out=a)  # against an array of zeros: NumPy 2's max with a scalar is ~5× slower


def _bias_relu_loop(b, a):
    zero = a.dtype.type(0)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            z = a[i, j] + b[j]
            a[i, j] = z if (z > zero or z != z) else zero  # as np.maximum(z, +0): NaN stays NaN, −0 becomes +0


bias_relu = Kernel(
    "bias_relu", "T b", "T a",
    "T z = a + b; a = (z > (T)0 || z != z) ? z : (T)0",  # as np.maximum(z, +0): NaN stays NaN, −0 becomes +0
    _bias_relu, _bias_relu_loop,
)  # fmt: skip


def _bias_identity(b, a):
    a += b


def _bias_identity_loop(b, a):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = a[i, j] + b[j]


bias_identity = Kernel("bias_identity", "T b", "T a", "a = a + b", _bias_identity, _bias_identity_loop)


def _exp_shift(m, a):
    a -= m
    np.exp(a, out=a)


# Softmax numerator: exp(z − max_row z); the row max is broadcast from shape (B, 1).
exp_shift = Kernel("exp_shift", "T m", "T a", "a = exp(a - m)", _exp_shift)


# ---------------------------------------------------------------------------------------------
# Backward: δ ← upstream ⊙ g'(z), with g' written from the activation output a.
# ---------------------------------------------------------------------------------------------


def _delta_sigmoid(a, delta):
    s = scratch_like(a)
    np.subtract(1, a, out=s)
    s *= a
    delta *= s


def _delta_sigmoid_loop(a, delta):
    one, af, df = a.dtype.type(1), a.flat, delta.flat
    for i in range(a.size):
        df[i] = df[i] * ((one - af[i]) * af[i])


delta_sigmoid = Kernel("delta_sigmoid", "T a", "T delta", "delta = delta * (((T)1 - a) * a)",
                       _delta_sigmoid, _delta_sigmoid_loop)  # fmt: skip


def _delta_tanh(a, delta):
    s = scratch_like(a)
    np.multiply(a, a, out=s)
    np.subtract(1, s, out=s)
    delta *= s


def _delta_tanh_loop(a, delta):
    one, af, df = a.dtype.type(1), a.flat, delta.flat
    for i in range(a.size):
        df[i] = df[i] * (one - af[i] * af[i])


delta_tanh = Kernel("delta_tanh", "T a", "T delta", "delta = delta * ((T)1 - a * a)", _delta_tanh, _delta_tanh_loop)


def _delta_relu(a, delta):
    # [a > 0] written as 0/1 of a's dtype (twice as fast as np.sign(a) in NumPy 2); at z = 0 the gradient is 0,
    # as in PyTorch
    s = scratch_like(a)
    np.greater(a, zeros_like(a), out=s, casting="unsafe")
    delta *= s


def _delta_relu_loop(a, delta):
    one, zero, af, df = a.dtype.type(1), a.dtype.type(0), a.flat, delta.flat
    for i in range(a.size):
        df[i] = df[i] * (one if af[i] > zero else zero)  # times 0/1 as the twin: an infinite δ gives NaN


delta_relu = Kernel(
    "delta_relu", "T a", "T delta", "delta = delta * (a > (T)0 ? (T)1 : (T)0)", _delta_relu, _delta_relu_loop
)


# ---------------------------------------------------------------------------------------------
# Output layer: Δ_L for the matched pairs, and the per-example loss terms.
# ---------------------------------------------------------------------------------------------


def _delta_output(a, y, inv_b, delta):
    np.subtract(a, y, out=delta)
    delta *= inv_b


# ∇_{A_L} L / B for squared error; Δ_L itself for softmax + cross-entropy, sigmoid + bce and
# identity + mse, where g'(Z_L) cancels against the loss derivative.
def _delta_output_loop(a, y, inv_b, delta):
    af, yf, df = a.flat, y.flat, delta.flat
    for i in range(a.size):
        df[i] = (af[i] - yf[i]) * inv_b


delta_output = Kernel("delta_output", "T a, T y, T inv_b", "T delta", "delta = (a - y) * inv_b",
                      _delta_output, _delta_output_loop)  # fmt: skip


def _loss_cross_entropy(a, y, tiny, t):
    np.maximum(a, full_like(a, tiny), out=t)
    np.log(t, out=t)
    t *= y
    np.negative(t, out=t)


loss_cross_entropy = Kernel(
    "loss_cross_entropy", "T a, T y, T tiny", "T t",
    "t = -(log((a > tiny || a != a) ? a : tiny) * y)",
    _loss_cross_entropy,
)  # fmt: skip


def _loss_bce(a, y, tiny, t):
    # y log a + (1 − y) log(1 − a) = y (log a − log(1 − a)) + log(1 − a): one scratch buffer
    s = scratch_like(a)
    np.subtract(1, a, out=s)
    np.maximum(s, tiny, out=s)
    np.log(s, out=s)
    np.maximum(a, tiny, out=t)
    np.log(t, out=t)
    t -= s
    t *= y
    t += s
    np.negative(t, out=t)


loss_bce = Kernel(
    "loss_bce", "T a, T y, T tiny", "T t",
    "T s = (T)1 - a; s = log((s > tiny || s != s) ? s : tiny); "
    "t = -((log((a > tiny || a != a) ? a : tiny) - s) * y + s)",
    _loss_bce,
)  # fmt: skip


def _loss_mse(a, y, tiny, t):
    np.subtract(a, y, out=t)
    np.square(t, out=t)
    t *= 0.5


def _loss_mse_loop(a, y, tiny, t):
    half, af, yf, tf = a.dtype.type(0.5), a.flat, y.flat, t.flat
    for i in range(a.size):
        d = af[i] - yf[i]
        tf[i] = d * d * half


loss_mse = Kernel(
    "loss_mse", "T a, T y, T tiny", "T t",
    "T d = a - y; t = d * d * (T)0.5",
    _loss_mse, _loss_mse_loop,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Parameter updates (PyTorch's conventions). The gradient g is an output because the NumPy twins
# reuse it as scratch: after an update it holds no meaningful value.
# ---------------------------------------------------------------------------------------------


def add_decay(g: np.ndarray, w: np.ndarray, wd: Any) -> None:
    """g += λw, in place (the weight-decay term every update's twin starts with); nothing for λ = 0."""
    if wd:
        s = scratch_like(w)
        np.multiply(w, wd, out=s)
        g += s


def _sgd(lr, wd, g, w):
    add_decay(g, w, wd)
    g *= lr
    w -= g


# W ← W − η (g + λW)
def _sgd_loop(lr, wd, g, w):
    gf, wf = g.flat, w.flat
    for i in range(w.size):
        d = gf[i] + wf[i] * wd if wd else gf[i]
        wf[i] = wf[i] - d * lr


sgd_update = Kernel(
    "sgd_update", "T lr, T wd", "T g, T w", "T d = wd != (T)0 ? g + w * wd : g; w = w - d * lr", _sgd, _sgd_loop
)


def _momentum(lr, wd, mu, g, w, v):
    add_decay(g, w, wd)
    v *= mu
    v += g
    np.multiply(v, lr, out=g)
    w -= g


# v ← μv + (g + λW); W ← W − ηv
def _momentum_loop(lr, wd, mu, g, w, v):
    gf, wf, vf = g.flat, w.flat, v.flat
    for i in range(w.size):
        d = gf[i] + wf[i] * wd if wd else gf[i]
        vf[i] = vf[i] * mu + d
        wf[i] = wf[i] - vf[i] * lr


momentum_update = Kernel(
    "momentum_update", "T lr, T wd, T mu", "T g, T w, T v",
    "T d = wd != (T)0 ? g + w * wd : g; v = v * mu + d; w = w - v * lr",
    _momentum, _momentum_loop,
)  # fmt: skip


def _nesterov(lr, wd, mu, g, w, v):
    add_decay(g, w, wd)
    v *= mu
    v += g
    s = scratch_like(w)
    np.multiply(v, mu, out=s)
    g += s
    g *= lr
    w -= g


# d = g + λW; v ← μv + d; W ← W − η (d + μv)   (torch.optim.SGD with nesterov=True)
def _nesterov_loop(lr, wd, mu, g, w, v):
    gf, wf, vf = g.flat, w.flat, v.flat
    for i in range(w.size):
        d = gf[i] + wf[i] * wd if wd else gf[i]
        vf[i] = vf[i] * mu + d
        wf[i] = wf[i] - (d + vf[i] * mu) * lr


nesterov_update = Kernel(
    "nesterov_update", "T lr, T wd, T mu", "T g, T w, T v",
    "T d = wd != (T)0 ? g + w * wd : g; v = v * mu + d; w = w - (d + v * mu) * lr",
    _nesterov, _nesterov_loop,
)  # fmt: skip


def _adam(step_size, wd, beta1, beta2, eps, sqrt_bc2, g, w, m, v):
    add_decay(g, w, wd)
    s = scratch_like(w)
    m *= beta1
    np.multiply(g, 1 - beta1, out=s)
    m += s
    v *= beta2
    np.multiply(g, g, out=s)
    s *= 1 - beta2
    v += s
    # step_size · m / (√v / c + ε) = (step_size · c) · m / (√v + ε c): one pass fewer
    np.sqrt(v, out=s)
    s += eps * sqrt_bc2
    np.divide(m, s, out=s)
    s *= step_size * sqrt_bc2
    w -= s


# d = g + λW; m ← β1 m + (1−β1) d; v ← β2 v + (1−β2) d²;
# W ← W − (η / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)          (torch.optim.Adam, L2 weight decay)
adam_update = Kernel(
    "adam_update", "T step_size, T wd, T beta1, T beta2, T eps, T sqrt_bc2", "T g, T w, T m, T v",
    "T d = wd != (T)0 ? g + w * wd : g; "
    "m = m * beta1 + d * ((T)1 - beta1); "
    "v = v * beta2 + d * d * ((T)1 - beta2); "
    "w = w - m / (sqrt(v) + eps * sqrt_bc2) * (step_size * sqrt_bc2)",
    _adam,
)  # fmt: skip


ALL: tuple[Kernel, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Kernel))


# ---------------------------------------------------------------------------------------------
# Row kernels: one formula over each row of a C-contiguous (rows, n) array, one CUDA thread a row. What
# an elementwise kernel cannot do in one launch (a row's max and sum) without three more launches.
# ---------------------------------------------------------------------------------------------


def _softmax_rows(b, a):
    # the GPU's former five launches in NumPy: bias add, row max, exp(z − max), row sum, divide
    a += b
    m = np.max(a, axis=1, keepdims=True)
    a -= m
    np.exp(a, out=a)
    a /= np.sum(a, axis=1, keepdims=True)


# softmax(A + b) row by row with the row max subtracted (exp never overflows); NaN propagates as np.max does
softmax_rows = RowKernel(
    "softmax_rows",
    "T m = r[0] + b[0]; "
    "for (long long j = 0; j < n; ++j) { T z = r[j] + b[j]; r[j] = z; m = (z > m || z != z) ? z : m; } "
    "T s = (T)0; "
    "for (long long j = 0; j < n; ++j) { T e = exp(r[j] - m); r[j] = e; s += e; } "
    "for (long long j = 0; j < n; ++j) r[j] = r[j] / s;",
    _softmax_rows,
)

ROWS: tuple[RowKernel, ...] = (softmax_rows,)
