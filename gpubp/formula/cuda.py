"""A formula as the CUDA C body of a ``cupy.ElementwiseKernel`` (which also compiles as host C++)."""

from __future__ import annotations

from .language import _CMP, _FUNCS, _PREC, Formula, Node


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
