"""The formulas of gpubp's elementwise kernels, each written once, and the activations by name.

Each kernel is a small Python function of symbols, the formula as the lecture writes it
(``delta * a * (1 - a)`` for σ'): :func:`~gpubp.formula.kernel` traces it once at import, and
:mod:`gpubp.formula` renders the one tree into every form that runs, so that no formula is written twice:

- the CUDA C body, a ``cupy.ElementwiseKernel`` on the GPU (built on first use, never at import);
- the NumPy twin, one in-place ufunc call per operation into preallocated buffers (the CPU without Numba, or
  where it pays better than a loop; no new arrays in steady state);
- the loop, one pass over the elements that Numba compiles (the ``numba`` extra), so that a kernel is one
  call on the CPU too, instead of the twin's two to five NumPy calls at ~0.5 µs each: that is what makes
  small networks faster on the CPU. It does the twin's operations in the twin's order with constants of the
  array dtype, so it gives the twin's numbers bit for bit. Formulas with exp, log, tanh, √ or ÷ get no
  loop (NumPy's vectorised passes beat a compiled scalar loop there, measured) and run the twin.

Why a traced expression rather than one scalar Python function compiled three ways (``numba.vectorize``,
``cupy.fuse``): a scalar function cannot say which buffer an intermediate may live in, so its NumPy form
allocates (or runs as a ufunc loop slower than the twins), and Numba types ``1 - a`` on float32 as float64.
From a tree the renderers choose the buffers, cast the constants to the array dtype in each form, and write the
C text (see docs/architecture.md for the measurements). The same trees are ``kernel.formula``, for a compiled
step to render into its own loops.

Conventions
-----------
- Output parameters are read *and* written: ``delta_sigmoid(a, delta)`` turns the upstream gradient held
  in ``delta`` into δ in place. An update's gradient ``g`` is an output too, scratch for the twins.
- Derivatives are written from the activation output ``a``, so Z need not be kept.
- Scalars (``lr``, ``inv_b``, ...; :data:`gpubp.kernelkit._SCALARS`) are NumPy scalars of the array dtype,
  so float32 stays float32 on both devices.
- :func:`~gpubp.formula.maximum` lets NaN through as NumPy does: a plain ``z > 0 ? z : 0`` maps NaN to 0,
  and a diverging run on the GPU would then never reach the epoch's finiteness check. The tests build the
  C bodies for the host and compare them with the twins on NaN, ±inf, ±0 and subnormal inputs.

Adding a hidden activation is one :class:`Activation` entry in :data:`ACTIVATIONS`: its g, its derivative
from the output, its ONNX operator and its scikit-learn name. Training, :mod:`gpubp.reference`, the export,
the command's ``--activation`` and the estimators read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import formula
from .formula import Node, assign, exp, kernel, let, log, maximum, nonzero, sqrt, tanh, where
from .kernelkit import Kernel, RowKernel

# ---------------------------------------------------------------------------------------------
# Activations: A ← g(A + b) forward (the bias add fused in; A holds A_{l-1} W_lᵀ on entry), and
# δ ← δ ⊙ g'(z) backward, with g' written from the output a.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """One activation: its formulas, and its names elsewhere. ``g(z)`` and ``backward(delta, a)`` take
    and return :mod:`gpubp.formula` symbols; ``forward`` and ``derivative`` are their kernels."""

    name: str
    g: Callable[[Any], Any] | None  # A = g(Z), elementwise; None: softmax (row by row, see gpubp.activations)
    backward: Callable[[Any, Any], Any] | None  # δ ⊙ g'(z) from a = g(z); None: g' = 1, or softmax's Jacobian
    onnx: tuple[str, dict[str, float]] | None  # the ONNX operator computing g, and its attributes; None: none
    sklearn: str | None = None  # scikit-learn's MLP name; None: scikit-learn has no such activation
    init: str = "xavier"  # the default initialisation of a network with this hidden activation
    hidden: bool = True  # allowed in hidden layers (softmax is an output only)
    forward: Kernel | None = field(init=False, default=None)
    derivative: Kernel | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.g is not None:
            g = self.g

            def fwd(b: Any, a: Any) -> None:
                assign(a, g(let("z", a + b)))

            object.__setattr__(self, "forward", formula.build(
                formula.trace(fwd, "T b", "T a", name=f"bias_{self.name}"), "T b", "T a"))  # fmt: skip
        if self.backward is not None:
            dg = self.backward

            def bwd(a: Any, delta: Any) -> None:
                assign(delta, dg(delta, a))

            object.__setattr__(self, "derivative", formula.build(
                formula.trace(bwd, "T a", "T delta", name=f"delta_{self.name}"), "T a", "T delta"))  # fmt: skip


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    # σ(z) = 1/(1 + e^−z), written ½ tanh(z/2) + ½: the same function, and it never overflows, even at |z| = 1e4
    Activation("sigmoid", lambda z: 0.5 * tanh(0.5 * z) + 0.5, lambda delta, a: delta * a * (1 - a),
               ("Sigmoid", {}), sklearn="logistic"),
    Activation("tanh", lambda z: tanh(z), lambda delta, a: delta * (1 - a * a), ("Tanh", {}), sklearn="tanh"),
    # relu'(0) = 0, as in PyTorch; max(−0, 0) is +0 and NaN stays NaN (np.maximum's rules)
    Activation("relu", lambda z: maximum(z, 0), lambda delta, a: delta * where(a > 0, 1, 0), ("Relu", {}),
               sklearn="relu", init="he"),
    Activation("identity", lambda z: z, None, None, sklearn="identity"),
    # leaky relu: z for z > 0, else αz with α = 0.01 (PyTorch's default slope), i.e. max(z, αz) as α < 1;
    # g'(z) = 1 for a > 0, else α (at 0 too, as PyTorch). Not in scikit-learn: its estimators take gpubp's name.
    Activation("leaky_relu", lambda z: maximum(z, 0.01 * z), lambda delta, a: delta * where(a > 0, 1, 0.01),
               ("LeakyRelu", {"alpha": 0.01}), init="he"),
    Activation("softmax", None, None, ("Softmax", {"axis": 1}), hidden=False),
)}  # fmt: skip
HIDDEN = tuple(name for name, act in ACTIVATIONS.items() if act.hidden)
OUTPUTS = tuple(ACTIVATIONS)


def __getattr__(name: str) -> Kernel:
    """The activations' kernels by name (``bias_relu``, ``delta_tanh``), as the other kernels."""
    for act in ACTIVATIONS.values():
        for k in (act.forward, act.derivative):
            if k is not None and k.name == name:
                return k
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Softmax's numerator exp(z − max_row z); the row max m is broadcast from shape (B, 1).
@kernel("T m", "T a")
def exp_shift(m: Node, a: Node) -> None:
    assign(a, exp(a - m))


# ---------------------------------------------------------------------------------------------
# Output layer: Δ_L for the matched pairs, and the per-example loss terms (logs clipped at tiny, the
# dtype's smallest normal number, so that a loss is never NaN; the gradient does not go through the clip).
# ---------------------------------------------------------------------------------------------


# ∇_{A_L} L / B for squared error; Δ_L itself for softmax + cross-entropy, sigmoid + bce and identity + mse,
# where g'(Z_L) cancels against the loss derivative.
@kernel("T a, T y, T inv_b", "T delta")
def delta_output(a: Node, y: Node, inv_b: Node, delta: Node) -> None:
    assign(delta, (a - y) * inv_b)


@kernel("T a, T y, T tiny", "T t")
def loss_cross_entropy(a: Node, y: Node, tiny: Node, t: Node) -> None:
    assign(t, -(log(maximum(a, tiny)) * y))


# −[y log a + (1 − y) log(1 − a)], as −[y (log a − log(1 − a)) + log(1 − a)]: two logs, one buffer
@kernel("T a, T y, T tiny", "T t")
def loss_bce(a: Node, y: Node, tiny: Node, t: Node) -> None:
    s = let("s", log(maximum(1 - a, tiny)))
    assign(t, -((log(maximum(a, tiny)) - s) * y + s))


@kernel("T a, T y, T tiny", "T t")
def loss_mse(a: Node, y: Node, tiny: Node, t: Node) -> None:
    d = let("d", a - y)
    assign(t, d * d * 0.5)


# ---------------------------------------------------------------------------------------------
# Parameter updates (PyTorch's conventions). The gradient g is an output because the NumPy twins
# reuse it as scratch: after an update it holds no meaningful value.
# ---------------------------------------------------------------------------------------------


def decayed(g: Node, w: Node, wd: Node) -> Node:
    """g + λW, the gradient with L2 weight decay; g itself for λ = 0 (the biases: 0 · inf must not make NaN)."""
    return where(nonzero(wd), g + w * wd, g)


# W ← W − η (g + λW)
@kernel("T lr, T wd", "T g, T w", scratch=("g",))
def sgd_update(lr: Node, wd: Node, g: Node, w: Node) -> None:
    d = let("d", decayed(g, w, wd))
    assign(w, w - d * lr)


# v ← μv + (g + λW); W ← W − ηv
@kernel("T lr, T wd, T mu", "T g, T w, T v", scratch=("g",))
def momentum_update(lr: Node, wd: Node, mu: Node, g: Node, w: Node, v: Node) -> None:
    d = let("d", decayed(g, w, wd))
    v = assign(v, v * mu + d)
    assign(w, w - v * lr)


# d = g + λW; v ← μv + d; W ← W − η (d + μv)   (torch.optim.SGD with nesterov=True)
@kernel("T lr, T wd, T mu", "T g, T w, T v", scratch=("g",))
def nesterov_update(lr: Node, wd: Node, mu: Node, g: Node, w: Node, v: Node) -> None:
    d = let("d", decayed(g, w, wd))
    v = assign(v, v * mu + d)
    assign(w, w - (d + v * mu) * lr)


# d = g + λW; m ← β1 m + (1−β1) d; v ← β2 v + (1−β2) d²;
# W ← W − (η / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)          (torch.optim.Adam, L2 weight decay),
# computed as (step_size · c) · m / (√v + ε c) with c = √(1−β2ᵗ): one pass fewer
@kernel("T step_size, T wd, T beta1, T beta2, T eps, T sqrt_bc2", "T g, T w, T m, T v", scratch=("g",))
def adam_update(step_size: Node, wd: Node, beta1: Node, beta2: Node, eps: Node, sqrt_bc2: Node,
                g: Node, w: Node, m: Node, v: Node) -> None:  # fmt: skip
    d = let("d", decayed(g, w, wd))
    m = assign(m, m * beta1 + d * (1 - beta1))
    v = assign(v, v * beta2 + d * d * (1 - beta2))
    assign(w, w - m / (sqrt(v) + eps * sqrt_bc2) * (step_size * sqrt_bc2))


# The weights' decay alone, g ← g + λW in place: the optimiser's NumPy path decays the weights, then runs one
# update over all of θ with λ = 0 (the same numbers, half the calls).
_decay = formula.build(formula.trace(lambda wd, w, g: assign(g, decayed(g, w, wd)), "T wd, T w", "T g",
                                     name="add_decay"), "T wd, T w", "T g")  # fmt: skip


def add_decay(g: np.ndarray, w: np.ndarray, wd: Any) -> None:
    """g += λw, in place (NumPy); nothing for λ = 0."""
    _decay.numpy(wd, w, g)


ALL: tuple[Kernel, ...] = tuple(
    [k for act in ACTIVATIONS.values() for k in (act.forward, act.derivative) if k is not None]
    + [v for k, v in list(globals().items()) if isinstance(v, Kernel) and not k.startswith("_")]
)


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
