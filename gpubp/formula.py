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

The renderers are the only code that knows a backend; a formula knows none. A compiled CPU step can render
the same trees into its own loops (:func:`python_expr` gives the Numba-ready text of one tree).
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .kernelkit import _SCALARS, Kernel, _names, full_like, scratch

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

    def __gt__(self, other: Any) -> Node:  # type: ignore[override]
        return Node(">", self, _node(other))

    def __lt__(self, other: Any) -> Node:  # type: ignore[override]
        return Node("<", self, _node(other))

    def __ge__(self, other: Any) -> Node:  # type: ignore[override]
        return Node(">=", self, _node(other))

    def __le__(self, other: Any) -> Node:  # type: ignore[override]
        return Node("<=", self, _node(other))

    def __bool__(self) -> bool:
        raise TypeError("a formula's comparison has no truth value: write where(cond, x, y)")

    def __repr__(self) -> str:
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


# -- C ------------------------------------------------------------------------------------------------


def _c_const(v: float) -> str:
    text = repr(v)
    return f"(T){text.removesuffix('.0')}"


def c_body(f: Formula) -> str:
    """The CUDA C body: one statement per assignment; outputs are the kernel's references, lets are locals."""
    lines: list[str] = []
    temps = iter(range(1 << 30))

    def expr(n: Node, parent: int = 0, right: bool = False) -> str:
        op = n.op
        if op == "var":
            return n.args[0]
        if op == "const":
            return _c_const(n.args[0])
        if op in _PREC:
            p = _PREC[op]
            text = f"{expr(n.args[0], p)} {op} {expr(n.args[1], p, right=True)}"
            # a right operand of equal precedence keeps its parentheses: a * (b * c) is not (a * b) * c in floats
            return f"({text})" if p < parent or (right and p == parent) else text
        if op == "neg":  # -(…) unless a name: "--a" would be C's decrement
            x = n.args[0]
            return f"-{x.args[0]}" if x.op == "var" else f"-({expr(x)})"
        if op in _FUNCS:
            return f"{op}({expr(n.args[0])})"
        if op in _CMP:
            return f"{expr(n.args[0], 1)} {op} {expr(n.args[1], 1)}"
        if op == "max":
            x, y = (atom(a) for a in n.args)
            return f"(({x} > {y} || {x} != {x}) ? {x} : {y})"
        if op == "where":
            return f"({expr(n.args[0])} ? {expr(n.args[1])} : {expr(n.args[2])})"
        raise ValueError(f"no C form for {op!r}")

    def atom(n: Node) -> str:  # an operand that is written more than once: a local unless a name or number
        if n.op in ("var", "const"):
            return expr(n)
        name = f"tmp{next(temps)}"  # CuPy's generated code names its own with a leading _
        lines.append(f"T {name} = {expr(n)};")
        return name

    for target, tree, local in f.statements:
        text = expr(tree)
        lines.append(f"T {target} = {text};" if local else f"{target} = {text};")
    return " ".join(lines).removesuffix(";")


# -- Python (the loop Numba compiles, and the text a compiled step reuses) ------------------------------


def python_expr(n: Node, name: Callable[[str], str], const: Callable[[float], str]) -> str:
    """Python text of tree ``n`` (fully parenthesised), names through ``name`` and constants through ``const``."""

    def expr(m: Node) -> str:
        op = m.op
        if op == "var":
            return name(m.args[0])
        if op == "const":
            return const(m.args[0])
        if op in _PREC or op in _CMP:
            return f"({expr(m.args[0])} {op} {expr(m.args[1])})"
        if op == "neg":
            return f"(-{expr(m.args[0])})"
        if op in _FUNCS:
            return f"math.{op}({expr(m.args[0])})"
        if op == "max":
            x, y = expr(m.args[0]), expr(m.args[1])
            return f"({x} if ({x} > {y} or {x} != {x}) else {y})"
        if op == "where":
            return f"({expr(m.args[1])} if {expr(m.args[0])} else {expr(m.args[2])})"
        raise ValueError(f"no Python form for {op!r}")

    return expr(n)


def loop_source(f: Formula) -> str:
    """The loop's source: a 2-D loop over (rows, n) with a bias row ``b``, else a flat one."""
    arrays = [n for n in f.inputs + f.outputs if n not in f.scalars]
    rows = "b" in f.inputs
    if "m" in f.inputs:
        raise ValueError(f"formula {f.name}: a (rows, 1) operand has no loop form")
    first = next(n for n in f.outputs if n not in f.scalars)
    consts: dict[float, str] = {}

    def const(v: float) -> str:
        return consts.setdefault(v, f"_c{len(consts)}")

    body: list[str] = []
    locals_: set[str] = set()
    for target, tree, local in f.statements:

        def name(n: str) -> str:
            if n in f.scalars or n in locals_:
                return n
            return f"{n}[j]" if n == "b" else f"{n}[i, j]" if rows else f"_{n}[i]"

        text = python_expr(tree, name, const)
        if local:
            locals_.add(target)
        body.append(f"{target if local else name(target)} = {text}")
    head = [f"def {f.name}_loop({', '.join(f.inputs + f.outputs)}):"]
    head += [f"    {c} = {first}.dtype.type({v!r})" for v, c in consts.items()]
    if rows:
        head += [f"    for i in range({first}.shape[0]):", f"        for j in range({first}.shape[1]):"]
        indent = " " * 12
    else:
        head += [f"    _{n} = {n}.flat" for n in arrays]
        head += [f"    for i in range({first}.size):"]
        indent = " " * 8
    return "\n".join(head + [indent + line for line in body]) + "\n"


def _cache_folder() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "gpubp" / "loops"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def loop(f: Formula) -> Callable[..., None]:
    """The loop as a Python function (Numba compiles it on the CPU's compiled path; it also runs as is)."""
    import hashlib  # here: `import gpubp.kernels` renders nothing and need not load these
    import tempfile

    source = "import math\n\n\n" + loop_source(f)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    filename = f"<gpubp formula {f.name}>"
    folder = _cache_folder()
    if folder is not None:  # a real file, named by its content and never rewritten, so that Numba caches the loop
        path = folder / f"{f.name}_{digest}.py"
        try:
            if not path.exists():
                with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as tmp:
                    tmp.write(source)
                os.replace(tmp.name, path)
            filename = str(path)
        except OSError:
            pass  # Numba then compiles the loop per process (kernelkit.jit)
    # a module of its own in sys.modules: Numba's cache, loading the compiled loop, imports it by name
    module = sys.modules.get(f"_gpubp_loop_{f.name}_{digest}")
    if module is None:
        module = types.ModuleType(f"_gpubp_loop_{f.name}_{digest}")
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)
        module = sys.modules.setdefault(module.__name__, module)
    fn = getattr(module, f"{f.name}_loop")
    fn.source = source
    return fn


# -- NumPy twin -----------------------------------------------------------------------------------------


class _Twin:
    """Renders a formula as in-place ufunc calls; see the module docstring."""

    def __init__(self, f: Formula) -> None:
        self.f = f
        self.lines: list[str] = []
        self.alias: dict[str, str] = {}  # a let's name → the buffer or parameter holding it
        self.temps: list[str] = []  # scratch buffers made (_s0, _s1, ...)
        self.busy: set[str] = set()
        self.fetched: set[str] = set()
        self.first = next(n for n in f.outputs if n not in f.scalars)

    def resolve(self, names: set[str]) -> set[str]:
        return {self.alias.get(n, n) for n in names}

    def scalar(self, n: Node) -> bool:
        return _reads(n) <= self.f.scalars and n.op not in ("max", "where")

    def compound(self, n: Node) -> bool:
        return not (n.op == "var" or self.scalar(n))

    def operand(self, n: Node) -> str:
        """A leaf's text: a parameter's (or let's) name, or a scalar expression evaluated by NumPy scalars."""
        if n.op == "var":
            return self.alias.get(n.args[0], n.args[0])
        return python_expr(n, lambda s: s, repr)

    def array_operand(self, n: Node) -> str:
        """As operand(), but scalars as a cached constant array (NumPy 2's ufuncs are slower with a scalar)."""
        if n.op == "var" and n.args[0] not in self.f.scalars:
            return self.operand(n)
        return f"_full_like({self.first}, {self.operand(n)})"

    def temp(self, protect: set[str], prefer: str | None = None) -> str:
        """A buffer that holds nothing still to be read: ``prefer``, a clobberable output, or scratch."""
        if prefer is not None and prefer not in protect:  # the caller's own destination
            return prefer
        for cand in [*self.clobberable, *self.temps]:
            if cand not in protect and cand not in self.busy:
                return self.fetch(cand) if cand in self.temps else cand
        name = f"_s{len(self.temps)}"
        self.temps.append(name)
        return self.fetch(name)

    def fetch(self, name: str) -> str:
        """Scratch buffer ``name``, fetched where first used in this branch (so an untaken branch costs nothing)."""
        if name not in self.fetched:
            tag = "kernel" + (name[2:] if name != "_s0" else "")
            self.lines.append(f"{name} = _scratch({self.first}.shape, {self.first}.dtype, {tag!r})")
            self.fetched.add(name)
        return name

    def into(self, n: Node, protect: set[str], prefer: str | None = None) -> str:
        """The buffer (or parameter) holding ``n``'s value after the emitted code; a temp is marked busy."""
        if not self.compound(n):
            return self.operand(n)
        dst = self.temp(protect, prefer)
        self.gen(n, dst, protect)
        return dst

    def release(self, *names: str) -> None:
        for n in names:
            self.busy.discard(n)

    def emit_op(self, ufunc: str, x: str, y: str, dst: str) -> None:
        if x == dst and ufunc in ("add", "subtract", "multiply", "divide"):
            self.lines.append(f"{dst} {'+-*/'[list(_UFUNC.values()).index(ufunc)]}= {y}")
        elif y == dst and ufunc in ("add", "multiply"):
            self.lines.append(f"{dst} {'+' if ufunc == 'add' else '*'}= {x}")
        else:
            self.lines.append(f"_np.{ufunc}({x}, {y}, out={dst})")

    def gen(self, n: Node, dst: str, protect: set[str]) -> None:
        """Code computing ``n`` into buffer ``dst`` (which holds nothing in ``protect``, the names read later)."""
        op = n.op
        self.busy.add(dst)
        if not self.compound(n):
            src = self.operand(n)
            if src != dst:
                self.lines.append(f"_np.copyto({dst}, {self.array_operand(n) if self.scalar(n) else src})")
        elif op in _PREC or op == "max":
            left, right = n.args
            x = self.into(left, protect | self.resolve(_reads(right)), dst)
            x_reads = {x} if self.compound(left) else self.resolve(_reads(left))
            y = self.into(right, protect | x_reads, dst if x != dst else None)
            if op == "max":
                xs = x if self.compound(left) else self.array_operand(left)
                ys = y if self.compound(right) else self.array_operand(right)
                self.lines.append(f"_np.maximum({xs}, {ys}, out={dst})")
            else:
                self.emit_op(_UFUNC[op], x, y, dst)
            self.release(*(b for b in (x, y) if b != dst))
        elif op in _FUNCS or op == "neg":
            x = self.into(n.args[0], protect, dst)
            self.lines.append(f"_np.{'negative' if op == 'neg' else op}({x}, out={dst})")
            self.release(x) if x != dst else None
        elif op == "where":
            self.gen_where(n, dst, protect)
        else:
            raise ValueError(f"no NumPy form for {op!r}")

    def gen_where(self, n: Node, dst: str, protect: set[str]) -> None:
        cond, x, y = n.args
        if self.scalar(cond):  # chosen once per call, in Python
            self.lines.append(f"if {self.operand(cond)}:")
            for branch in (x, y):
                mark, fetched = len(self.lines), set(self.fetched)
                self.gen(branch, dst, protect)
                self.indent(mark)
                self.fetched = fetched  # a buffer fetched in a branch is fetched again where next used
                self.lines.append("else:")
            self.lines.pop()
            if self.lines[-1] == "else:":
                self.lines.pop()
            if self.lines[-1].endswith(":"):
                self.lines.append("    pass")
            return
        a, b = cond.args
        if any(self.compound(s) for s in (a, b)):
            raise ValueError(f"formula {self.f.name}: compare names or numbers in where(), not {cond!r}")
        test = f"_np.{_CMP[cond.op]}({self.array_operand(a)}, {self.array_operand(b)}"
        if x.op == "const" and y.op == "const" and (x.args[0], y.args[0]) == (1.0, 0.0):
            self.lines.append(f'{test}, out={dst}, casting="unsafe")')  # [cond] as 0/1 of the dtype
            return
        mask = f"_scratch({self.first}.shape, _np.bool_, 'kernel_mask')"
        self.lines.append(f"_mask = {mask}")
        self.lines.append(f"{test}, out=_mask)")
        # x first, outside dst (y may read dst's present value); then y, into dst where it can be
        xb = self.into(x, protect | self.resolve(_reads(y)) | {dst, "_mask"})
        yb = self.into(y, protect | {xb, "_mask"}, dst)
        if yb != dst:
            self.lines.append(f"_np.copyto({dst}, {self.array_operand(y) if self.scalar(y) else yb})")
        self.lines.append(f"_np.copyto({dst}, {self.array_operand(x) if self.scalar(x) else xb}, where=_mask)")
        self.release(xb, yb)

    def indent(self, mark: int) -> None:
        self.lines[mark:] = ["    " + line for line in self.lines[mark:]]

    def render(self) -> str:
        f = self.f
        for i, (target, tree, local) in enumerate(f.statements):
            later: set[str] = set()
            for _, t, _ in f.statements[i + 1 :]:
                later |= _reads(t)
            # reads of the target after this statement read what it writes; lets keep their buffers
            protect = self.resolve(later - {target}) if not local else self.resolve(later)
            if not local and target in protect:
                raise AssertionError(f"formula {f.name}: a let still to be read lives in {target}")
            # an output may hold intermediates if it is scratch, or is assigned at or after the last read of
            # what it would hold (this statement's value; a let's, up to its last reader)
            last = max([j for j, (_, t, _) in enumerate(f.statements) if target in _reads(t)] + [i]) if local else i
            assigned = {t: j for j, (t, _, loc) in enumerate(f.statements) if not loc}
            self.clobberable = [
                o for o in f.outputs if o not in f.scalars and (o in f.scratch or assigned.get(o, -1) >= last)
            ]
            self.busy = set()
            if local:
                if self.compound(tree):
                    self.alias[target] = self.into(tree, protect | {target})
                else:
                    self.alias[target] = self.operand(tree)
            else:
                if self.compound(tree) or tree.op == "where":
                    self.gen(tree, target, protect)
                elif self.operand(tree) != target:
                    self.gen(tree, target, protect)
        head = [f"def {f.name}_twin({', '.join(f.inputs + f.outputs)}):"]
        return "\n".join(head + ["    " + line for line in self.lines or ["pass"]]) + "\n"


def twin_source(f: Formula) -> str:
    return _Twin(f).render()


def twin(f: Formula) -> Callable[..., None]:
    """The NumPy twin of ``f``: ``twin(*inputs, *outputs)`` updates the outputs in place, allocating nothing."""
    source = twin_source(f)
    namespace: dict[str, Any] = {"_np": np, "_scratch": scratch, "_full_like": full_like}
    exec(compile(source, f"<gpubp twin {f.name}>", "exec"), namespace)
    fn = namespace[f"{f.name}_twin"]
    fn.source = source
    return fn


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
