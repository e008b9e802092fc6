"""The machinery of gpubp's kernels: how one is declared, compiled and given scratch space.

A :class:`Kernel` is an elementwise formula: CuPy-style parameter lists templated on ``T`` (float32 or
float64), a CUDA C body, a NumPy twin with the same arguments that works in place on preallocated buffers,
and optionally a *loop*, the formula as a plain Python loop that Numba compiles for the host (:func:`jit`).
On the GPU the body becomes a ``cupy.ElementwiseKernel``, built on first use and never at import. A
:class:`RowKernel` is a formula over each row of a (rows, n) array, one CUDA thread a row.

The twins' temporaries come from here too: :func:`scratch` buffers (one set per thread) and read-only
constant arrays (:func:`zeros_like`, :func:`full_like`, :func:`ones_column`), so that a steady-state
training step allocates nothing. The kernels themselves are declared in :mod:`gpubp.kernels`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_PARAM = re.compile(r"^\s*T\s+([A-Za-z_]\w*)\s*$")

# What every kernel is compiled with, beside CuPy's own -ftz=true (float32 subnormals flush to zero on the GPU:
# the rule tests/test_gpu_arithmetic.py states). No multiply-add contraction: NVRTC fuses a·b + c into one
# rounding by default, which moves a result's last bit and a zero's sign away from the twin's; a body does
# its twin's operations in its twin's order, each rounded (the library's exp, log and tanh keep their own fmas).
CUDA_OPTIONS = ("--fmad=false",)


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
    formula: Any = None  # the one formula all the above were rendered from (gpubp.formula.Formula)
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
            kernel = xp.ElementwiseKernel(self.in_params, self.out_params, self.body, self.name, no_return=True,
                                          options=CUDA_OPTIONS)  # fmt: skip
            self._compiled = (xp, kernel)
        return self._compiled[1]

    def compile(self, xp: Any, dtypes: tuple = (np.float32, np.float64)) -> Any:
        """:meth:`gpu`, compiled now for ``dtypes`` on the current device by one launch over two elements each
        (the values are scratch), so that no epoch's time includes NVRTC. Two: CuPy builds a kernel per shape
        class, and one element is a 0-axis launch where an update's flat slices are 1-axis ones."""
        kernel = self.gpu(xp)
        for dtype in dtypes:
            kernel(*(dtype(0) if n in _SCALARS else xp.empty(2, dtype) for n in self.inputs + self.outputs))
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
                f"{self.name}_sum", preamble=preamble, options=CUDA_OPTIONS,
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
            module = xp.RawModule(code=self.source(), options=CUDA_OPTIONS)
            self._compiled = (xp, module, {})
        _, module, functions = self._compiled

        def run(b: Any, a: Any) -> None:
            # the kernel reads raw pointers: a (rows, n) row-major, b n values, both of one float dtype
            if a.dtype not in (np.float32, np.float64) or b.dtype != a.dtype:
                raise TypeError(f"{self.name}: expected float32 or float64 arrays of one dtype, got a {a.dtype} "
                                f"and b {b.dtype}")  # fmt: skip
            if a.ndim != 2 or b.shape != (a.shape[1],):
                raise ValueError(f"{self.name}: expected a (rows, n) and b (n,), got {a.shape} and {b.shape}")
            if not (a.flags.c_contiguous and b.flags.c_contiguous):
                raise ValueError(f"{self.name}: a and b must be C-contiguous (the kernel walks raw rows)")
            rows, n = a.shape
            if rows == 0:  # a rank's empty share: nothing to do, and a grid of 0 blocks is a launch error
                return
            T = "float" if a.dtype == np.float32 else "double"
            fn = functions.get(T)
            if fn is None:
                fn = functions[T] = module.get_function(f"{self.name}_{T}")
            threads = 128
            fn(((rows + threads - 1) // threads,), (threads,), (b, a, np.int64(rows), np.int64(n)))

        return run

    def compile(self, xp: Any, dtypes: tuple = (np.float32, np.float64)) -> Any:
        """:meth:`gpu`, compiled now (NVRTC) for ``dtypes`` on the current device by one launch over a 1×1 array."""
        run = self.gpu(xp)
        for dtype in dtypes:
            run(xp.zeros(1, dtype), xp.zeros((1, 1), dtype))
        return run
