"""The formula language (gpubp.formula): each rendered form against the plain evaluation of the same tree, on
formulas whose in-place forms could overwrite a value still to be read; and the registry the library reads."""

from __future__ import annotations

import inspect
import uuid

import numpy as np
import pytest
from cpu_kernels import need_numba

from gpubp import formula, kernelkit, reference
from gpubp import kernels as K
from gpubp.formula import assign, let, maximum, nonzero, tanh, where


def sequential(f: formula.Formula, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The statements in order on whole arrays, allocating: what every rendered form must compute."""
    env = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in args.items()}
    for target, tree, local in f.statements:
        value = formula.evaluate(tree, env)
        if local:
            env[target] = value
        else:
            env[target] = np.broadcast_to(value, env[target].shape).astype(env[target].dtype)
    return {n: env[n] for n in f.outputs if n not in f.scratch}


def rendered(fn, args: dict[str, np.ndarray], f: formula.Formula) -> dict[str, np.ndarray]:
    work = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in args.items()}
    fn(*(work[n] for n in f.inputs + f.outputs))
    return {n: work[n] for n in f.outputs if n not in f.scratch}


def _reread(b, c, a):  # a read twice, on both sides of the tree
    assign(a, (a + b) * (b - a) + maximum(a * b, c - a))


def _sequence(b, x, y):  # y reads the new x; x's old value is gone by then
    x = assign(x, x * b + y)
    assign(y, y - x * x)


def _branches(lr, wd, g, w):  # a scalar choice, and a choice per element between computed values
    d = let("d", where(nonzero(wd), g + w * wd, g))
    assign(w, where(w > 0, w - d * lr, w * 0.5 + d))


def _local_over_output(b, a, t):  # a let that can live in an output assigned later
    z = let("z", a + b)
    assign(t, z * z - a)
    assign(a, maximum(z, 0.25 * z))


FORMULAS = [
    formula.trace(_reread, "T b, T c", "T a"),
    formula.trace(_sequence, "T b", "T x, T y"),
    formula.trace(_branches, "T lr, T wd", "T g, T w", scratch=("g",)),
    formula.trace(_local_over_output, "T b", "T a, T t"),
]


def _args(f: formula.Formula, rng, dtype, wd: float = 1e-2) -> dict[str, object]:
    out: dict[str, object] = {}
    for n in f.inputs + f.outputs:
        if n in kernelkit._SCALARS:
            out[n] = np.dtype(dtype).type({"wd": wd}.get(n, 0.1))
        else:  # b is a bias row, broadcast over the rows (the loops index it so)
            out[n] = rng.normal(size=(5,) if n == "b" else (7, 5)).astype(dtype)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("f", FORMULAS, ids=[f.name for f in FORMULAS])
def test_twin_and_loop_compute_the_statements_in_order(f, dtype, rng):
    """Bit for bit: the twin's buffers never overwrite a value that is still to be read (a formula reading an
    output twice, a statement reading another's new value, lets, branches), and the loop is the same operations."""
    for wd in (1e-2, 0.0):
        args = _args(f, rng, dtype, wd)
        want = sequential(f, args)
        twin = rendered(formula.twin(f), args, f)
        loop = rendered(formula.loop(f), args, f)
        for name in want:
            assert twin[name].dtype == dtype
            assert np.array_equal(twin[name], want[name]), f"{f.name}: the twin's {name}\n{formula.twin_source(f)}"
            assert np.array_equal(loop[name], want[name]), f"{f.name}: the loop's {name}\n{formula.loop_source(f)}"


def _traced_peak(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("f", FORMULAS, ids=[f.name for f in FORMULAS])
def test_twin_allocates_nothing_once_its_scratch_is_made(f, rng):
    """Against NumPy's own floor for a broadcast bias add (its iterator), plus a quarter of one output."""
    args = {n: (np.resize(v, (64, 50) if v.ndim == 2 else (50,)) if isinstance(v, np.ndarray) else v)
            for n, v in _args(f, rng, np.float64).items()}  # fmt: skip
    twin = formula.twin(f)
    work = [(v.copy() if isinstance(v, np.ndarray) else v) for v in args.values()]
    twin(*work)
    A, b = np.zeros((64, 50)), np.zeros(50)
    floor = _traced_peak(lambda: A.__iadd__(b))
    grown = _traced_peak(lambda: twin(*work))
    assert grown <= floor + A.nbytes // 4, f"{f.name}'s twin made an array per call ({grown} bytes)"


def test_loops_are_compiled_from_a_cached_file_or_without_a_cache(monkeypatch, tmp_path):
    """The loop's source goes to a file named by its hash (Numba caches beside it); with no writable folder it
    still compiles, per process."""
    need_numba()
    f = formula.trace(_sequence, "T b", "T x, T y", name=f"probe_{uuid.uuid4().hex[:8]}")  # a source never seen
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    loop = formula.loop(f)
    assert inspect.getfile(loop).startswith(str(tmp_path / "gpubp" / "loops"))
    monkeypatch.setattr(formula.loops, "_cache_folder", lambda: None)
    g = formula.trace(_reread, "T b, T c", "T a", name=f"probe_{uuid.uuid4().hex[:8]}")
    uncached = formula.loop(g)
    assert inspect.getfile(uncached).startswith("<gpubp formula")
    args = _args(g, np.random.default_rng(0), np.float64)
    compiled = kernelkit.jit(uncached, (1, 2, 2))
    a = args["a"].copy()
    compiled(args["b"], args["c"], a)
    assert np.array_equal(a, sequential(g, args)["a"])


def test_a_formula_that_assigns_no_output_or_a_stranger_is_refused():
    with pytest.raises(ValueError, match=r"formula f: output 'a' is never assigned"):
        formula.trace(lambda b, a: let("z", a + b), "T b", "T a", name="f")
    with pytest.raises(ValueError, match=r"formula f: assigns 'b', which is not an output"):
        formula.trace(lambda b, a: (assign(a, b), assign(b, a)), "T b", "T a", name="f")
    with pytest.raises(TypeError, match="no truth value"):
        formula.trace(lambda b, a: assign(a, b if b > 0 else a), "T b", "T a", name="f")
    with pytest.raises(ValueError, match=r"formula f: let\('i'\) would hide a parameter or a name the renderers use"):
        formula.trace(lambda b, a: assign(a, let("i", b)), "T b", "T a", name="f")
    with pytest.raises(RuntimeError, match=r"assign\(\) and let\(\) belong inside a formula function"):
        assign(formula.var("a"), 1)
    # C's "--a" is a decrement: a negated negation keeps its parentheses
    negated = formula.trace(lambda b, a: assign(a, formula.Node("neg", -a) - -b), "T b", "T a", name="f")
    assert formula.c_body(negated) == "a = -(-a) - -b"


def test_each_formula_is_written_once_in_kernels():
    """The weight-decay term was written nine times; now once, and the C bodies are rendered, not written."""
    source = inspect.getsource(K)
    assert source.count("g + w * wd") == 1
    assert "(T)" not in source.split("ROWS")[0].split("# Row kernels")[0]  # no C text above the row kernels
    for k in K.ALL:
        assert k.formula is not None, f"{k.name} was not rendered from a formula"


def test_loops_where_they_pay_and_twins_elsewhere():
    """No loop where exp, log, tanh, √ or ÷ dominate (NumPy's vectorised passes win, measured); ten loops today."""
    looped = {k.name for k in K.ALL if k.loop is not None}
    assert {"bias_relu", "delta_sigmoid", "delta_output", "loss_mse", "sgd_update", "adam_update"} & looped == {
        "bias_relu", "delta_sigmoid", "delta_output", "loss_mse", "sgd_update"}  # fmt: skip
    assert not {"bias_sigmoid", "bias_tanh", "exp_shift", "loss_cross_entropy", "loss_bce"} & looped


def test_the_registry_names_each_activation_everywhere():
    """The command's choices, the estimators' names, the export's operators and the reference come from one table."""
    from gpubp import activations
    from gpubp.sklearn import _ACTIVATIONS

    assert activations.HIDDEN == tuple(n for n, a in K.ACTIVATIONS.items() if a.hidden)
    assert set(_ACTIVATIONS.values()) == set(activations.HIDDEN)
    assert _ACTIVATIONS["logistic"] == "sigmoid"
    for name, act in K.ACTIVATIONS.items():
        assert act.hidden == (act.g is not None)
        assert (act.forward is None) == (act.g is None)
        if name != "identity":
            assert act.onnx is not None, name
    Z = np.linspace(-5, 5, 12).reshape(3, 4)
    np.testing.assert_allclose(reference.g("sigmoid", Z), 1 / (1 + np.exp(-Z)), rtol=1e-14)
    np.testing.assert_allclose(reference.g_prime("tanh", Z), 1 - np.tanh(Z) ** 2, rtol=1e-14)
    with pytest.raises(ValueError, match=r"unknown activation 'swish': expected one of sigmoid, tanh"):
        reference.g("swish", Z)


def test_a_formula_renders_its_c_body_with_typed_constants():
    f = formula.trace(lambda b, a: assign(a, 0.5 * tanh(0.5 * (a + b)) + 0.5), "T b", "T a", name="s")
    assert formula.c_body(f) == "a = (T)0.5 * tanh((T)0.5 * (a + b)) + (T)0.5"
    # a right operand of the same precedence keeps its parentheses: floats do not reassociate
    g = formula.trace(lambda b, a: assign(a, a * (b * b) - (a - b)), "T b", "T a", name="p")
    assert formula.c_body(g) == "a = a * (b * b) - (a - b)"
