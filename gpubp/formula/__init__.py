"""A small expression language for elementwise formulas, and the renderers that turn one formula into
each form gpubp runs: a CUDA C body, a NumPy twin, a loop for Numba, and a plain NumPy evaluation.

A formula is written once, as ordinary Python arithmetic on symbols (``delta * a * (1 - a)``), inside a
function that :func:`kernel` calls once at import with one :class:`Node` per parameter. The function
states its results in order with :func:`assign` (an output) and :func:`let` (a named intermediate); a
name read after its assignment reads the new value, as in the C body. The few operations are those the
kernels need: ``+ - * /``, unary minus, :func:`exp`, :func:`log`, :func:`tanh`, :func:`sqrt`,
:func:`maximum` (NaN-propagating, as ``np.maximum``), comparisons and :func:`where`.

From that one tree:

- :func:`c_body`: the CUDA C body, which also compiles as host C++ (the tests do). Constants are cast to
  ``T``; ``maximum(x, y)`` is ``(x > y || x != x) ? x : y``, which lets NaN through as NumPy does.
- :func:`twin`: a NumPy function writing in place into the outputs, one ufunc call per operation, in the
  tree's order, with ``out=`` into an output or a scratch buffer (:mod:`gpubp.kernelkit`'s, so a step
  allocates nothing). Buffers are chosen so that no value is overwritten while it is still to be read; an
  output listed as ``scratch`` (an update's gradient) may hold intermediates.
- :func:`loop`: the same operations in the same order as one Python loop over the elements, with constants
  of the array dtype, which Numba compiles: it gives the twin's numbers bit for bit. The source is written
  to a file of the user's cache folder (named by its hash) so that Numba can cache the compiled loop on
  disk; where no folder is writable the loop is compiled per process. A formula that calls ``exp``,
  ``log``, ``tanh``, ``sqrt`` or divides gets no loop: there NumPy's vectorised passes beat a compiled
  scalar loop (measured), so the twin runs.
- :func:`evaluate`: the tree on NumPy arrays, allocating (``gpubp.reference`` and the tests).

The language and tracing are :mod:`~gpubp.formula.language`, the renderers :mod:`~gpubp.formula.cuda`,
:mod:`~gpubp.formula.twins` and :mod:`~gpubp.formula.loops`; this module makes kernels of formulas. The
renderers are the only code that knows a backend; a formula knows none. A compiled CPU step can render
the same trees into its own loops (:func:`python_expr` gives the Numba-ready text of one tree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

from ..kernelkit import Kernel
from .cuda import c_body
from .language import (
    _NO_LOOP,
    Formula,
    Node,
    assign,
    evaluate,
    exp,
    let,
    log,
    maximum,
    nonzero,
    sqrt,
    tanh,
    trace,
    var,
    where,
)
from .loops import loop, loop_source, python_expr
from .twins import twin, twin_source

__all__ = ["Formula", "FormulaKernel", "Node", "assign", "build", "c_body", "evaluate", "exp", "kernel", "let", "log",
           "loop", "loop_source", "maximum", "nonzero", "python_expr", "sqrt", "tanh", "trace", "twin", "twin_source",
           "var", "where"]  # fmt: skip


def kernel(in_params: str, out_params: str, scratch: Sequence[str] = ()) -> Callable[[Callable], Kernel]:
    """Decorator: the formula function as a :class:`~gpubp.kernelkit.Kernel` with its CUDA body, NumPy twin
    and (where it pays) loop, all rendered from the one formula. ``scratch``: outputs whose final value does
    not matter (the twin may keep intermediates there)."""

    def make(fn: Callable) -> Kernel:
        return build(trace(fn, in_params, out_params, scratch), in_params, out_params)

    return make


class FormulaKernel(Kernel):
    """A :class:`~gpubp.kernelkit.Kernel` whose body, twin and loop are rendered from its formula when first
    used (rendering and compiling every kernel's forms at import cost ~25 ms a process)."""

    def __init__(self, f: Formula, in_params: str, out_params: str) -> None:  # not the dataclass's: lazy forms
        self.name, self.in_params, self.out_params, self.formula = f.name, in_params, out_params, f
        self._compiled, self._host, self._sums = None, None, {}

    @cached_property
    def body(self) -> str:  # type: ignore[override]
        return c_body(self.formula)

    @cached_property
    def numpy(self) -> Callable[..., None]:  # type: ignore[override]
        return twin(self.formula)

    @cached_property
    def loop(self) -> Callable[..., None] | None:  # type: ignore[override]
        return None if self.formula.ops() & _NO_LOOP else loop(self.formula)


def build(f: Formula, in_params: str, out_params: str) -> Kernel:
    """The :class:`~gpubp.kernelkit.Kernel` of formula ``f`` (its forms rendered on first use)."""
    return FormulaKernel(f, in_params, out_params)
