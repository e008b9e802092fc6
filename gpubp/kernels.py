"""Hand-written elementwise kernels: one CUDA C body and one NumPy twin per formula.

Every kernel is declared once, here, as a :class:`Kernel`: CuPy-style parameter lists templated on
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
tests check them there.

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

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_PARAM = re.compile(r"^\s*T\s+([A-Za-z_]\w*)\s*$")


def _names(params: str) -> tuple[str, ...]:
    names = []
    for part in params.split(","):
        match = _PARAM.match(part)
        if match is None:
            raise ValueError(f"kernel parameter must read 'T name', got {part!r}")
        names.append(match.group(1))
    return tuple(names)


@dataclass
class Kernel:
    """An elementwise formula with a CUDA C body and a NumPy twin.

    Call ``kernel.numpy(*inputs, *outputs)`` on NumPy arrays or ``kernel.cuda(*inputs, *outputs)``
    on CuPy arrays; both update the outputs in place and return None.
    """

    name: str
    in_params: str
    out_params: str
    body: str
    numpy: Callable[..., None]
    loop: Callable[..., None] | None = None  # the formula as a loop over elements, compiled by Numba
    _compiled: Any = field(default=None, init=False, repr=False)
    _host: Any = field(default=None, init=False, repr=False)
    _sums: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        return _names(self.in_params)

    @property
    def outputs(self) -> tuple[str, ...]:
        return _names(self.out_params)

    def cuda(self, *args: Any) -> None:
        """Run the CUDA kernel on CuPy arrays (compiled by CuPy on the first call per dtype and device)."""
        import cupy  # only reached on the GPU path

        self.gpu(cupy)(*args)

    def gpu(self, xp: Any) -> Any:
        """The ``ElementwiseKernel`` of array module ``xp`` (CuPy), declared once: CuPy compiles it (NVRTC,
        or its disk cache) on the first call per dtype and device; see :meth:`compile`."""
        if self._compiled is None or self._compiled[0] is not xp:
            kernel = xp.ElementwiseKernel(self.in_params, self.out_params, self.body, self.name, no_return=True)
            self._compiled = (xp, kernel)
        return self._compiled[1]

    def compile(self, xp: Any) -> Any:
        """:meth:`gpu`, compiled now for float32 and float64 on the current device by one launch over one
        element each (the values are scratch), so that no epoch's time includes NVRTC."""
        kernel = self.gpu(xp)
        for dtype in (np.float32, np.float64):
            kernel(*(dtype(0) if n in _SCALARS else xp.empty(1, dtype) for n in self.inputs + self.outputs))
        return kernel

    def gpu_sum(self, xp: Any) -> Any:
        """For a loss kernel (one output ``t``): f(*inputs, w) = Σ t·w over all elements as a 0-d array, one
        ``ReductionKernel`` launch whose map is this body (instead of the terms, the weighting and a sum).
        Every argument is an array (0-d for the scalars; w broadcasts, e.g. (B, 1) row weights or a (1, 1) one).
        Compiled on the first call per dtype and device, as :meth:`compile` does for the plain kernel."""
        (out,) = self.outputs
        key = ("sum", xp)
        if key not in self._sums:
            term = f"{self.name}_term"
            preamble = (f"template <typename T> __device__ T {term}({', '.join(f'T {n}' for n in self.inputs)}) "
                        f"{{ T {out}; {self.body}; return {out}; }}")  # fmt: skip
            kernel = xp.ReductionKernel(
                ", ".join(f"T {n}_" for n in self.inputs) + ", T w_", "T s_",
                f"{term}({', '.join(n + '_' for n in self.inputs)}) * w_", "a + b", "s_ = a", "0",
                f"{self.name}_sum", preamble=preamble,
            )  # fmt: skip
            self._sums[key] = kernel
        return self._sums[key]

    def host(self) -> Callable[..., None]:
        """The loop compiled for this CPU by Numba, for float32 and float64 (cached on disk)."""
        if self._host is None:
            # scalars by name; the updates run over flat slices, the others over (B, n) batches with a (n,) bias
            dims = tuple(0 if n in _SCALARS else 1 if n == "b" or self.name.endswith("_update") else 2
                         for n in self.inputs + self.outputs)  # fmt: skip
            self._host = jit(self.loop, dims)
        return self._host


def _compile(dispatcher: Any, dims: tuple[int, ...]) -> Any:
    """Compile (or load from the cache) ``dispatcher`` for float32 and float64 by calling it on ones."""
    for dtype in (np.float32, np.float64):
        dispatcher(*(dtype(1) if d == 0 else np.ones((1,) * d, dtype) for d in dims))
    return dispatcher


_SCALARS = {"lr", "wd", "mu", "inv_b", "tiny", "step_size", "beta1", "beta2", "eps", "sqrt_bc2"}
_jitted: dict[Callable, Any] = {}


def jit(loop: Callable[..., Any], dims: tuple[int, ...]) -> Any:
    """``loop`` compiled by Numba, one dispatcher per function: it releases the GIL (networks train in
    parallel threads) and keeps the IEEE semantics (no fastmath: NaN must reach the divergence check).
    ``dims`` gives each argument's ndim (0: a scalar): the loop is compiled (or loaded from the cache) for
    both dtypes here, when a network is built, so that no epoch's time includes it."""
    compiled = _jitted.get(loop)
    if compiled is None:
        import numba  # only reached when the CPU runs the compiled loops (gpubp.backend decides)

        try:
            compiled = _compile(numba.njit(nogil=True, cache=True)(loop), dims)
        except RuntimeError:  # no writable cache folder (a read-only install, no HOME): compile per process
            compiled = _compile(numba.njit(nogil=True)(loop), dims)
        compiled = _jitted.setdefault(loop, compiled)
    return compiled


# Reusable scratch buffers for the NumPy twins that need a temporary, keyed by shape and dtype,
# so that a steady-state training step allocates nothing. One set per thread: networks trained in
# parallel threads must not share a temporary.
_local = threading.local()


def scratch(shape: tuple[int, ...], dtype: Any, tag: str = "") -> np.ndarray:
    """A reusable NumPy buffer of this thread (contents undefined). Users that may hold one at
    the same time pass different tags."""
    try:
        buffers = _local.buffers
    except AttributeError:
        buffers = _local.buffers = {}
    key = (shape, dtype, tag)  # dtype as given (a type or a dtype: at worst two buffers); .str costs 0.25 µs a call
    buf = buffers.get(key)
    if buf is None:
        buf = buffers[key] = np.empty(shape, dtype)
    return buf


def scratch_like(x: np.ndarray) -> np.ndarray:
    """The kernel twins' own scratch buffer with the shape and dtype of ``x``."""
    return scratch(x.shape, x.dtype, "kernel")


def zeros_like(x: np.ndarray) -> np.ndarray:
    """A read-only array of zeros with the shape and dtype of ``x``, kept per shape (shared by all threads)."""
    return full_like(x, 0)


def full_like(x: np.ndarray, value: Any) -> np.ndarray:
    """A read-only array filled with ``value`` with the shape and dtype of ``x``, kept per shape, dtype and
    value (shared by all threads): NumPy 2's ufuncs take ~0.2 µs longer with a scalar operand than with an array."""
    key = (x.shape, x.dtype, value)  # the dtype object itself: .str costs 0.25 µs a call
    z = _full.get(key)
    if z is None:
        z = np.full(x.shape, value, x.dtype)
        z.flags.writeable = False
        z = _full.setdefault(key, z)
    return z


_full: dict[tuple, np.ndarray] = {}


def ones_column(n: int, dtype: Any) -> np.ndarray:
    """A read-only (n, 1) array of ones (Σ over a row as a matrix-vector product), kept per n and dtype."""
    key = (n, dtype)
    ones = _ones.get(key)
    if ones is None:
        ones = np.ones((n, 1), dtype)
        ones.flags.writeable = False
        ones = _ones.setdefault(key, ones)
    return ones


_ones: dict[tuple, np.ndarray] = {}


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


@dataclass
class RowKernel:
    """A formula over each row with a CUDA C body and a NumPy twin: the body sees ``r`` (``T*``, the row,
    read and written), ``b`` (``const T*``, a vector of n) and ``n`` (``long long``), and compiles as CUDA
    and as host C++ (the tests build it for the host and compare it with the twin). ``twin(b, a)`` works in
    place on a NumPy (rows, n) array. On a GPU: ``kernel.gpu(xp)(b, a)``, compiled by :meth:`compile`."""

    name: str
    body: str
    numpy: Callable[..., None]
    _compiled: Any = field(default=None, init=False, repr=False)

    def source(self, prefix: str = 'extern "C" __global__') -> str:
        """The CUDA source: ``{name}_float`` and ``{name}_double``, one thread a row."""
        parts = [f"template <typename T> __device__ void {self.name}_row(T* r, const T* b, long long n) "
                 f"{{ {self.body} }}"]  # fmt: skip
        for T in ("float", "double"):
            parts.append(
                f"{prefix} void {self.name}_{T}(const {T}* b, {T}* a, long long rows, long long n) {{\n"
                f"  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"  if (i < rows) {self.name}_row<{T}>(a + i * n, b, n);\n}}"
            )
        return "\n".join(parts) + "\n"

    def gpu(self, xp: Any) -> Any:
        """f(b, a) on CuPy arrays of this kernel's dtypes (``a`` C-contiguous), one launch."""
        if self._compiled is None or self._compiled[0] is not xp:
            module = xp.RawModule(code=self.source())
            self._compiled = (xp, module, {})
        _, module, functions = self._compiled

        def run(b: Any, a: Any) -> None:
            T = "float" if a.dtype == np.float32 else "double"
            fn = functions.get(T)
            if fn is None:
                fn = functions[T] = module.get_function(f"{self.name}_{T}")
            rows, n = a.shape
            threads = 128
            fn(((rows + threads - 1) // threads,), (threads,), (b, a, np.int64(rows), np.int64(n)))

        return run

    def compile(self, xp: Any) -> Any:
        """:meth:`gpu`, compiled now (NVRTC) for both dtypes on the current device by one launch over a 1×1 array."""
        run = self.gpu(xp)
        for dtype in (np.float32, np.float64):
            run(xp.zeros(1, dtype), xp.zeros((1, 1), dtype))
        return run


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
