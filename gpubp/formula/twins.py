"""A formula as a NumPy twin: one in-place ufunc call per operation, into buffers that hold nothing still to
be read (outputs, an update's scratch gradient, :mod:`gpubp.kernelkit`'s scratch buffers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernelkit import full_like, scratch
from .language import _CMP, _FUNCS, _PREC, _UFUNC, Formula, Node, _reads
from .loops import python_expr


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
