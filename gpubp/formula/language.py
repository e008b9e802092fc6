"""The formulas' expression language: symbols, the operations on them, and tracing a formula function into
statements (see :mod:`gpubp.formula`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..kernelkit import _SCALARS, _names

_UFUNC = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
_CMP = {">": "greater", "<": "less", ">=": "greater_equal", "<=": "less_equal", "!=": "not_equal"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_FUNCS = ("exp", "log", "tanh", "sqrt")  # and "neg"
_NO_LOOP = {"exp", "log", "tanh", "sqrt", "/"}  # where NumPy's vectorised passes beat a scalar loop


class Node:
    """One operation of a formula: ``op`` and its arguments (names and constants at the leaves)."""

    __slots__ = ("args", "op")

    def __init__(self, op: str, *args: Any) -> None:
        self.op, self.args = op, args

    def __add__(self, other: Any) -> Node:
        return Node("+", self, _node(other))

    def __radd__(self, other: Any) -> Node:
        return Node("+", _node(other), self)

    def __sub__(self, other: Any) -> Node:
        return Node("-", self, _node(other))

    def __rsub__(self, other: Any) -> Node:
        return Node("-", _node(other), self)

    def __mul__(self, other: Any) -> Node:
        return Node("*", self, _node(other))

    def __rmul__(self, other: Any) -> Node:
        return Node("*", _node(other), self)

    def __truediv__(self, other: Any) -> Node:
        return Node("/", self, _node(other))

    def __rtruediv__(self, other: Any) -> Node:
        return Node("/", _node(other), self)

    def __neg__(self) -> Node:
        return Node("neg", self)

    def __gt__(self, other: Any) -> Node:
        return Node(">", self, _node(other))

    def __lt__(self, other: Any) -> Node:
        return Node("<", self, _node(other))

    def __ge__(self, other: Any) -> Node:
        return Node(">=", self, _node(other))

    def __le__(self, other: Any) -> Node:
        return Node("<=", self, _node(other))

    def __bool__(self) -> bool:
        raise TypeError("a formula's comparison has no truth value: write where(cond, x, y)")

    def __repr__(self) -> str:
        from .loops import python_expr  # (the renderers import this module)

        return python_expr(self, lambda n: n, repr)


def _node(x: Any) -> Node:
    if isinstance(x, Node):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"a formula takes numbers and symbols, got {x!r}")
    return Node("const", float(x))


def var(name: str) -> Node:
    return Node("var", name)


def exp(x: Any) -> Node:
    return Node("exp", _node(x))


def log(x: Any) -> Node:
    return Node("log", _node(x))


def tanh(x: Any) -> Node:
    return Node("tanh", _node(x))


def sqrt(x: Any) -> Node:
    return Node("sqrt", _node(x))


def maximum(x: Any, y: Any) -> Node:
    """max(x, y) with NaN propagated (as ``np.maximum``); max(−0, +0) is +0 as the C form gives."""
    return Node("max", _node(x), _node(y))


def nonzero(x: Any) -> Node:
    return Node("!=", _node(x), _node(0))


def where(cond: Node, x: Any, y: Any) -> Node:
    """x where ``cond`` holds, else y (a NaN compares false). On scalars alone, one branch is chosen once."""
    if cond.op not in _CMP:
        raise TypeError(f"where() takes a comparison, got {cond!r}")
    return Node("where", cond, _node(x), _node(y))


# -- tracing a formula function into statements --------------------------------------------------------

_statements: list[list[tuple[str, Node, bool]]] = []  # the formula being traced (innermost last)


def _record(target: str, value: Any, local: bool) -> None:
    if not _statements:
        raise RuntimeError("assign() and let() belong inside a formula function that kernel() or trace() traces")
    _statements[-1].append((target, _node(value), local))


def assign(target: Node, value: Any) -> Node:
    """Output ``target`` ← ``value``; returns ``target``, which from here on reads the new value."""
    if target.op != "var":
        raise TypeError(f"assign() takes an output's symbol, got {target!r}")
    _record(target.args[0], value, False)
    return target


def let(name: str, value: Any) -> Node:
    """A named intermediate (``T name = value;`` in C): read it as the returned symbol."""
    _record(name, value, True)
    return var(name)


class Formula:
    """A traced formula: parameters (CuPy-style lists of ``T name``), and statements (target, tree, local)."""

    def __init__(self, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...],
                 statements: list[tuple[str, Node, bool]], scratch: tuple[str, ...]) -> None:  # fmt: skip
        self.name, self.inputs, self.outputs = name, inputs, outputs
        self.statements, self.scratch = statements, scratch
        assigned = [t for t, _, local in statements if not local]
        for out in outputs:
            if out not in assigned and out not in scratch:
                raise ValueError(f"formula {name}: output {out!r} is never assigned")
        for t in assigned:
            if t not in outputs:
                raise ValueError(f"formula {name}: assigns {t!r}, which is not an output")
        for t, _, local in statements:
            if local and (t in inputs + outputs or t in ("i", "j", "math") or t.startswith("_")):
                raise ValueError(f"formula {name}: let({t!r}) would hide a parameter or a name the renderers use")

    @property
    def scalars(self) -> set[str]:
        return {n for n in self.inputs if n in _SCALARS}

    def ops(self) -> set[str]:
        found: set[str] = set()
        for _, tree, _ in self.statements:
            _walk(tree, lambda n: found.add(n.op))
        return found


def _walk(n: Node, visit: Callable[[Node], Any]) -> None:
    visit(n)
    for a in n.args:
        if isinstance(a, Node):
            _walk(a, visit)


def _reads(n: Node) -> set[str]:
    names: set[str] = set()
    _walk(n, lambda m: names.add(m.args[0]) if m.op == "var" else None)
    return names


def trace(fn: Callable[..., Any], in_params: str, out_params: str, scratch: Sequence[str] = (),
          name: str | None = None) -> Formula:  # fmt: skip
    """Call ``fn`` once with one symbol per parameter and record what it assigns (as kernel ``name``)."""
    inputs, outputs = _names(in_params), _names(out_params)
    _statements.append([])
    try:
        fn(*(var(n) for n in inputs + outputs))
        statements = _statements[-1]
    finally:
        _statements.pop()
    return Formula(name or fn.__name__, inputs, outputs, statements, tuple(scratch))


# -- plain NumPy evaluation -------------------------------------------------------------------------------


def evaluate(n: Node, env: dict[str, Any]) -> Any:
    """Tree ``n`` on NumPy values ``env`` (new arrays; Python constants keep the arrays' dtype)."""
    op = n.op
    if op == "var":
        return env[n.args[0]]
    if op == "const":
        return n.args[0]
    args = [evaluate(a, env) for a in n.args]
    if op in _PREC:
        return getattr(np, _UFUNC[op])(*args)
    if op in _CMP:
        return getattr(np, _CMP[op])(*args)
    if op == "neg":
        return np.negative(args[0])
    if op in _FUNCS:
        return getattr(np, op)(args[0])
    if op == "max":
        return np.maximum(*args)
    if op == "where":
        return np.where(*args)
    raise ValueError(f"no NumPy form for {op!r}")
