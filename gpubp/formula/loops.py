"""A formula as a loop over the elements that Numba compiles (and the Python text a compiled step reuses)."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

from .language import _CMP, _FUNCS, _PREC, Formula, Node


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
