"""The kernels: NumPy twins against the formulas, CUDA sources through nvcc, and the same bodies
compiled as host C++ against the NumPy twins, on random and extreme inputs."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from cpu_kernels import need_numba
from kernel_sources import cuda_source, host_source

import gpubp
from gpubp import kernelkit
from gpubp import kernels as K
from gpubp.backend import Device

DTYPES = [np.float32, np.float64]
_SCALAR_NAMES = kernelkit._SCALARS
SHAPE = (37, 23)  # odd sizes: no accidental alignment
# every kernel on random inputs; activations and losses also on extreme ones (saturation, log 0)
CASES = [(k, False) for k in K.ALL] + [(k, True) for k in K.ALL if k.name.startswith(("bias_", "loss_"))]
CASE_IDS = [f"{k.name}-{'extreme' if e else 'random'}" for k, e in CASES]
EXTREMES = np.array([-1e4, -100.0, -88.0, -20.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 20.0, 88.0, 100.0, 1e4])


def inputs(k: K.Kernel, rng: np.random.Generator, dtype, extreme: bool = False) -> dict[str, object]:
    """Arguments for kernel ``k``: arrays of SHAPE, or scalars of ``dtype`` for the scalar params."""
    dt = np.dtype(dtype).type

    def normal(scale=1.0):
        return (rng.normal(size=SHAPE) * scale).astype(dtype)

    def unit():  # in (0, 1)
        return rng.uniform(0.01, 0.99, size=SHAPE).astype(dtype)

    def pre_activation():
        if extreme:
            return np.resize(EXTREMES, SHAPE).astype(dtype)
        return normal(3.0)

    scalars = {"lr": 0.05, "wd": 1e-3, "mu": 0.9, "inv_b": 1 / 23, "tiny": np.finfo(dtype).tiny,
               "step_size": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "sqrt_bc2": 0.3}  # fmt: skip
    out: dict[str, object] = {}
    for name in k.inputs + k.outputs:
        if name in scalars:
            out[name] = dt(scalars[name])
        elif name == "a" and k.name.startswith("bias_"):
            out[name] = pre_activation()
        elif (name == "a" and k.name == "delta_sigmoid") or (name == "y" and k.name != "delta_output"):
            out[name] = unit()
        elif name == "a" and k.name.startswith("loss_"):
            out[name] = unit() if not extreme else np.resize([0.0, 1.0, 1e-45, 0.5], SHAPE).astype(dtype)
        elif name == "a" and k.name == "delta_relu":
            out[name] = np.maximum(normal(), 0)
        elif name == "a" and k.name == "delta_tanh":
            out[name] = np.tanh(normal())
        elif name == "v" and k.name == "adam_update":
            out[name] = np.abs(normal(0.1))  # a second moment is never negative
        elif name == "m":
            out[name] = normal(0.1)
        elif name == "b":
            out[name] = normal()[0]  # a bias row, broadcast over the batch
        else:
            out[name] = normal()
    return out


def reference(k: K.Kernel, args: dict[str, object]) -> dict[str, np.ndarray]:
    """The formula each kernel implements, in float64 NumPy, written independently of the twins."""
    a64 = {n: np.asarray(v, dtype=np.float64) for n, v in args.items()}
    g = a64
    with np.errstate(over="ignore"):
        if k.name == "bias_sigmoid":
            return {"a": 1 / (1 + np.exp(-(g["a"] + g["b"])))}
        if k.name == "bias_tanh":
            return {"a": np.tanh(g["a"] + g["b"])}
        if k.name == "bias_relu":
            return {"a": np.maximum(g["a"] + g["b"], 0)}
        if k.name == "bias_identity":
            return {"a": g["a"] + g["b"]}
        if k.name == "bias_leaky_relu":
            z = g["a"] + g["b"]
            return {"a": np.where(z > 0, z, 0.01 * z)}
        if k.name == "exp_shift":
            return {"a": np.exp(g["a"] - g["m"])}
    if k.name == "delta_sigmoid":
        return {"delta": g["delta"] * g["a"] * (1 - g["a"])}
    if k.name == "delta_tanh":
        return {"delta": g["delta"] * (1 - g["a"] ** 2)}
    if k.name == "delta_relu":
        return {"delta": np.where(g["a"] > 0, g["delta"], 0)}
    if k.name == "delta_leaky_relu":
        return {"delta": np.where(g["a"] > 0, g["delta"], 0.01 * g["delta"])}
    if k.name == "delta_output":
        return {"delta": (g["a"] - g["y"]) * g["inv_b"]}
    clip = lambda x: np.maximum(x, g["tiny"])
    if k.name == "loss_cross_entropy":
        return {"t": -g["y"] * np.log(clip(g["a"]))}
    if k.name == "loss_bce":
        return {"t": -(g["y"] * np.log(clip(g["a"])) + (1 - g["y"]) * np.log(clip(1 - g["a"])))}
    if k.name == "loss_mse":
        return {"t": 0.5 * (g["a"] - g["y"]) ** 2}
    d = g["g"] + g["wd"] * g["w"]
    if k.name == "sgd_update":
        return {"w": g["w"] - g["lr"] * d}
    if k.name == "momentum_update":
        v = g["mu"] * g["v"] + d
        return {"w": g["w"] - g["lr"] * v, "v": v}
    if k.name == "nesterov_update":
        v = g["mu"] * g["v"] + d
        return {"w": g["w"] - g["lr"] * (d + g["mu"] * v), "v": v}
    if k.name == "adam_update":
        m = g["beta1"] * g["m"] + (1 - g["beta1"]) * d
        v = g["beta2"] * g["v"] + (1 - g["beta2"]) * d * d
        w = g["w"] - g["step_size"] * m / (np.sqrt(v) / g["sqrt_bc2"] + g["eps"])
        return {"w": w, "m": m, "v": v}
    raise AssertionError(f"no reference for kernel {k.name}")


def run_twin(k: K.Kernel, args: dict[str, object]) -> dict[str, np.ndarray]:
    args = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in args.items()}
    k.numpy(*(args[n] for n in k.inputs + k.outputs))
    return {n: args[n] for n in k.outputs}


def tolerance(dtype) -> dict[str, float]:
    return {"rtol": 2e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def test_every_kernel_is_listed():
    assert len(K.ALL) == len({k.name for k in K.ALL}) >= 16
    for k in K.ALL:
        assert k.inputs, k.name
        assert k.outputs, k.name


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "extreme"), CASES, ids=CASE_IDS)
def test_numpy_twin_matches_formula(kernel, extreme, dtype, rng):
    args = inputs(kernel, rng, dtype, extreme)
    got = run_twin(kernel, args)  # filterwarnings=error: an overflow warning fails this test
    want = reference(kernel, args)
    for name in kernel.outputs:
        if name == "g":
            continue  # the gradient buffer is scratch after an update
        assert got[name].dtype == dtype, f"{kernel.name} upcast {name} to {got[name].dtype}"
        assert np.isfinite(got[name]).all(), f"{kernel.name} produced non-finite {name}"
        np.testing.assert_allclose(got[name], want[name], **tolerance(dtype), err_msg=f"{kernel.name}.{name}")


def test_sigmoid_saturates_cleanly_at_1e4():
    a = np.array([[-1e4, 1e4, 0.0]], dtype=np.float32)
    K.bias_sigmoid.numpy(np.zeros(3, np.float32), a)
    np.testing.assert_array_equal(a, [[0.0, 1.0, 0.5]])


def build(tmp_path_factory, tool: str, missing: str, source: str, name: str, flags: list[str]):
    """Compile ``source`` with ``tool`` into ``name``; skip with a visible reason if it is absent."""
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed here: {missing}")
    folder = tmp_path_factory.mktemp(tool.replace("+", "x"))
    src = folder / ("kernels.cu" if tool == "nvcc" else "kernels.cpp")
    src.write_text(source)
    out = folder / name
    proc = subprocess.run([exe, "-std=c++17", *flags, str(src), "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def nvcc_object(tmp_path_factory):
    return build(tmp_path_factory, "nvcc", "the CUDA sources were not compiled", cuda_source(), "kernels.o", ["-c"])


def test_every_kernel_compiles_with_nvcc_for_float_and_double(nvcc_object):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed: the nvcc build was not inspected")
    symbols = subprocess.run([nm, str(nvcc_object)], capture_output=True, text=True).stdout
    for k in K.ALL:
        for T, cname in (("f", "float"), ("d", "double")):
            mangled = f"_Z{len(k.name)}{k.name}I{T}E"  # the kernel's launch stub for T = cname
            assert mangled in symbols, f"{k.name}<{cname}> missing from the nvcc build"


@pytest.fixture(scope="module")
def host_library(tmp_path_factory):
    lib = build(tmp_path_factory, "g++", "the kernel bodies were not built for the host", host_source(),
                "kernels.so", ["-O2", "-fno-fast-math", "-shared", "-fPIC"])  # fmt: skip
    return ctypes.CDLL(str(lib))


def run_host(lib, k: K.Kernel, args: dict[str, object], dtype) -> dict[str, np.ndarray]:
    full = {n: np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=dtype), SHAPE)).copy()
            for n, v in args.items()}  # fmt: skip
    fn = getattr(lib, f"{k.name}_{'float' if dtype == np.float32 else 'double'}")
    fn.restype = None
    ptrs = [full[n].ctypes.data_as(ctypes.c_void_p) for n in k.inputs + k.outputs]
    fn(ctypes.c_long(int(np.prod(SHAPE))), *ptrs)
    return {n: full[n] for n in k.outputs}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "extreme"), CASES, ids=CASE_IDS)
def test_cuda_body_on_host_matches_numpy_twin(host_library, kernel, extreme, dtype, rng):
    args = inputs(kernel, rng, dtype, extreme)
    host = run_host(host_library, kernel, args, dtype)
    twin = run_twin(kernel, args)
    for name in kernel.outputs:
        if name == "g":
            continue
        assert np.isfinite(host[name]).all(), f"{kernel.name}: the CUDA body gave non-finite {name}"
        np.testing.assert_allclose(host[name], twin[name], **tolerance(dtype), err_msg=f"{kernel.name}.{name}")


# -- NaN, ±inf, ±0 and subnormals: the CUDA bodies (built for the host) and the loops as the twins ---------


def specials(dtype) -> np.ndarray:
    """Values where a kernel's IEEE behaviour shows: NaN, ±inf, ±0, ± the smallest subnormal, a subnormal
    above it, ± the smallest and largest normal numbers, and ordinary values between."""
    fi = np.finfo(dtype)
    sub = fi.smallest_subnormal
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, sub, -sub, 3 * sub, fi.tiny, -fi.tiny, fi.max, -fi.max,
                     1.0, -1.0, 0.5, 0.25, 2.0, -3.0, 1e-3, 0.999], dtype)  # fmt: skip


ARRAYS = [(k, n) for k in K.ALL for n in (*k.inputs, *k.outputs) if n not in _SCALAR_NAMES] + [
    (k, "*") for k in K.ALL
]  # each array argument special in turn (the others ordinary), then all of them at once


def special_inputs(k: K.Kernel, which: str, dtype, rng: np.random.Generator) -> dict[str, object]:
    """Ordinary inputs for ``k`` with argument ``which`` (every array argument for ``*``) replaced by
    the special values in a random order (so that they meet each other in every pairing)."""
    args = inputs(k, rng, dtype)
    for name, value in args.items():
        if isinstance(value, np.ndarray) and (which in (name, "*")):
            args[name] = rng.permutation(np.resize(specials(dtype), value.size)).reshape(value.shape)
    return args


def assert_ieee_match(got: dict, twin: dict, k: K.Kernel, dtype, exact: bool) -> None:
    """NaN, inf (with its sign) and zeros (with their sign) where the twin has them; elsewhere the twin's
    value, bit for bit (``exact``) or to the dtype's tolerance (a C library's exp, log and tanh are not
    NumPy's to the last bit)."""
    for name in k.outputs:
        if name == "g":
            continue  # the twins use the gradient buffer as scratch
        a, b = got[name], twin[name]
        assert a.dtype == dtype, f"{k.name} upcast {name} to {a.dtype}"
        for what, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
            diff = np.flatnonzero(test(a) != test(b))
            assert not diff.size, (f"{k.name}.{name}: {what} at {diff.size} places where the twin differs, "
                                   f"e.g. got {a.flat[diff[0]]} for the twin's {b.flat[diff[0]]}")  # fmt: skip
        zeros = (a == 0) & (b == 0)
        assert np.array_equal(np.signbit(a[zeros]), np.signbit(b[zeros])), f"{k.name}.{name}: a zero's sign"
        if exact:
            assert np.array_equal(a, b, equal_nan=True), f"{k.name}.{name} differs from the twin"
        else:
            finite = np.isfinite(b)
            np.testing.assert_allclose(a[finite], b[finite], **tolerance(dtype), err_msg=f"{k.name}.{name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "which"), ARRAYS, ids=[f"{k.name}-{n}" for k, n in ARRAYS])
def test_cuda_body_on_host_matches_twin_on_nan_inf_zeros_and_subnormals(host_library, kernel, which, dtype, rng):
    """A diverging run's NaN and inf must reach the epoch's finiteness check through the GPU's kernels."""
    args = special_inputs(kernel, which, dtype, rng)
    with np.errstate(all="ignore"):
        twin = run_twin(kernel, args)
    assert_ieee_match(run_host(host_library, kernel, args, dtype), twin, kernel, dtype, exact=False)
    if "wd" in args:  # the biases' update: no decay (0 · inf must not make NaN there)
        args["wd"] = np.dtype(dtype).type(0)
        with np.errstate(all="ignore"):
            twin = run_twin(kernel, args)
        assert_ieee_match(run_host(host_library, kernel, args, dtype), twin, kernel, dtype, exact=False)


def host_device(lib) -> Device:
    """A CPU device whose kernels are the CUDA bodies built for the host: a GPU's numbers on the CPU."""

    class HostBodies(Device):
        def kernel(self, k: K.Kernel, dtype=None):
            def run(*args):
                outs = args[len(k.inputs) :]
                dtype, shape = outs[0].dtype, outs[0].shape
                fn = getattr(lib, f"{k.name}_{'float' if dtype == np.float32 else 'double'}")
                fn.restype = None
                ins = [
                    np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype), shape)) for v in args[: len(k.inputs)]
                ]
                work = [np.ascontiguousarray(o) for o in outs]
                fn(ctypes.c_long(int(np.prod(shape))), *(x.ctypes.data_as(ctypes.c_void_p) for x in ins + work))
                for o, w in zip(outs, work):
                    if w is not o:
                        o[...] = w

            return run

    return HostBodies("cpu", np, kernels="numpy")


@pytest.mark.parametrize(("activation", "loss"), [("relu", "cross_entropy"), ("relu", "mse"), ("tanh", "mse")])
def test_divergence_is_caught_with_the_cuda_bodies(host_library, activation, loss):
    """With the CUDA bodies (built for the host) a run at a huge lr must stop in epoch 1 as the twins' does;
    bodies that swallow NaN trained on with NaN weights and a finite loss (87.34 = −log of float32's tiny)."""
    from gpubp.training import TrainingDivergedError

    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 8)) * 10
    y = rng.integers(0, 2, 64) if loss != "mse" else rng.normal(size=64) * 10
    out = 2 if loss == "cross_entropy" else 1
    for device in (Device("cpu", np, kernels="numpy"), host_device(host_library)):
        net = gpubp.MLP([8, 32, 32, out], activation, loss=loss, device=device, seed=0)
        with pytest.raises(TrainingDivergedError, match="in epoch 1"):
            net.fit(X, y, epochs=6, batch_size=8, lr=1e4, momentum=0.9)
        assert all(np.isfinite(W).all() for W in net.weights), "the last finite weights are kept"


@pytest.mark.parametrize("n", [2, 3, 10, 33, 600])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("case", ["random", "extreme", "special"])
def test_row_kernel_body_on_host_matches_its_twin(host_library, n, dtype, case, rng):
    """The fused softmax (one launch on a GPU, for five) built for the host against its NumPy twin: random rows,
    rows 1e4 apart (exp would overflow without the max), and NaN, ±inf, ±0 and subnormals among the logits."""
    k = K.softmax_rows
    a = (rng.normal(size=(41, n)) * 30).astype(dtype)
    b = rng.normal(size=n).astype(dtype)
    if case == "extreme":
        a[::2] += 1e4
        a[1::4] -= 1e4
    if case == "special":
        a.flat[rng.choice(a.size, a.size // 3, replace=False)] = np.resize(specials(dtype), a.size // 3)
    host, twin = a.copy(), a.copy()
    fn = getattr(host_library, f"{k.name}_{'float' if dtype == np.float32 else 'double'}")
    fn.restype = None
    fn(b.ctypes.data_as(ctypes.c_void_p), host.ctypes.data_as(ctypes.c_void_p), ctypes.c_longlong(a.shape[0]),
       ctypes.c_longlong(n))  # fmt: skip
    with np.errstate(all="ignore"):
        k.numpy(b, twin)
    assert_ieee_match({"a": host}, {"a": twin}, K.bias_identity, dtype, exact=False)  # (a kernel whose output is a)
    if case != "special":
        assert np.isfinite(host).all()
        np.testing.assert_allclose(host.sum(axis=1), 1, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_every_row_kernel_compiles_with_nvcc(nvcc_object):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed: the nvcc build was not inspected")
    symbols = subprocess.run([nm, str(nvcc_object)], capture_output=True, text=True).stdout
    for k in K.ROWS:
        for T in ("float", "double"):
            assert f"{k.name}_{T}" in symbols, f"{k.name}_{T} missing from the nvcc build"


# -- the loops (Numba's on the CPU) against the NumPy twins ----------------------------------------

LOOPED = [(k, e) for k, e in CASES if k.loop is not None]
LOOPED_IDS = [f"{k.name}-{'extreme' if e else 'random'}" for k, e in LOOPED]


def run_loop(loop, k: K.Kernel, args: dict[str, object]) -> dict[str, np.ndarray]:
    args = {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in args.items()}
    loop(*(args[n] for n in k.inputs + k.outputs))
    return {n: args[n] for n in k.outputs}


def assert_same_as_twin(k: K.Kernel, got: dict, twin: dict, dtype) -> None:
    for name in k.outputs:
        if name == "g":
            continue  # the twins use the gradient buffer as scratch
        assert got[name].dtype == dtype, f"{k.name}'s loop upcast {name} to {got[name].dtype}"
        # the twin's operations in the twin's order, with no exp, log or tanh: bit for bit, the sign of 0 too
        assert np.array_equal(got[name], twin[name], equal_nan=True), f"{k.name}.{name} differs from the twin"
        assert np.array_equal(np.signbit(got[name]), np.signbit(twin[name])), f"{k.name}.{name}: a zero's sign"


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "python"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "extreme"), LOOPED, ids=LOOPED_IDS)
def test_loop_matches_numpy_twin(kernel, extreme, dtype, compiled, rng):
    """Each loop, compiled by Numba and as plain Python (so it is checked without Numba too)."""
    if compiled:
        need_numba()
    args = inputs(kernel, rng, dtype, extreme)
    if extreme and kernel.name.startswith("bias_"):
        args["b"] = np.full_like(args["b"], -0.0)  # −0 + −0 is −0
        args["a"].flat[::3] = -0.0  # ReLU(−0) is +0, as np.maximum gives
    loop = kernel.host() if compiled else kernel.loop
    assert_same_as_twin(kernel, run_loop(loop, kernel, args), run_twin(kernel, args), dtype)
    if "wd" in args:  # the biases' update: no decay, the twins' other branch
        args["wd"] = np.dtype(dtype).type(0)
        assert_same_as_twin(kernel, run_loop(loop, kernel, args), run_twin(kernel, args), dtype)


LOOPED_ARRAYS = [(k, n) for k, n in ARRAYS if k.loop is not None]


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "python"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "which"), LOOPED_ARRAYS, ids=[f"{k.name}-{n}" for k, n in LOOPED_ARRAYS])
def test_loop_matches_twin_on_nan_inf_zeros_and_subnormals(kernel, which, dtype, compiled, rng):
    """A diverging run's NaN and inf must reach the epoch's finiteness check through every kernel, and the
    loops keep the twins' numbers bit for bit on every IEEE special value (no fastmath, no flush to zero)."""
    if compiled:
        need_numba()
    loop = kernel.host() if compiled else kernel.loop
    args = special_inputs(kernel, which, dtype, rng)
    with np.errstate(all="ignore"):
        assert_ieee_match(run_loop(loop, kernel, args), run_twin(kernel, args), kernel, dtype, exact=True)
        if "wd" in args:
            args["wd"] = np.dtype(dtype).type(0)
            assert_ieee_match(run_loop(loop, kernel, args), run_twin(kernel, args), kernel, dtype, exact=True)


def test_a_kernel_parameter_list_is_read_or_refused():
    assert kernelkit._names("T a, T  b ") == ("a", "b")
    with pytest.raises(ValueError, match=r"^kernel parameter must read 'T name', got 'float x'$"):
        kernelkit._names("T a,float x")


def test_cpu_kernels_follow_gpubp_cpu_kernels(monkeypatch):
    from gpubp import backend, probe

    monkeypatch.setenv("GPUBP_CPU_KERNELS", "numpy")
    assert backend.cpu_kernels() == "numpy"
    assert backend.Device("cpu", np).kernel(K.bias_relu) is K.bias_relu.numpy
    monkeypatch.setenv("GPUBP_CPU_KERNELS", "fast")
    with pytest.raises(ValueError, match=r"GPUBP_CPU_KERNELS='fast': expected one of auto, numba, numpy"):
        backend.cpu_kernels()
    monkeypatch.setattr(probe, "_numba_status", lambda: (None, "Numba is not installed (no numba)"))
    monkeypatch.setenv("GPUBP_CPU_KERNELS", "numba")
    with pytest.raises(RuntimeError, match=r"GPUBP_CPU_KERNELS=numba, but Numba is not installed"):
        backend.cpu_kernels()
    monkeypatch.setenv("GPUBP_CPU_KERNELS", "auto")
    assert backend.cpu_kernels() == "numpy"  # auto: the twins where Numba is missing
    assert backend.Device("cpu", np).kernel(K.bias_relu) is K.bias_relu.numpy


def test_numba_disable_jit_means_the_twins(monkeypatch):
    """NUMBA_DISABLE_JIT (for debugging one's own Numba code) would run the loops as plain Python."""
    need_numba()
    import numba

    from gpubp import backend, probe

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    probe._numba_status.cache_clear()
    try:
        monkeypatch.setenv("GPUBP_CPU_KERNELS", "auto")
        assert backend.cpu_kernels() == "numpy"
        assert "NUMBA_DISABLE_JIT is set" in backend.cpu_kernels_info()["kernels_note"]
    finally:
        monkeypatch.undo()
        probe._numba_status.cache_clear()


def test_loops_compile_without_a_writable_cache(monkeypatch):
    """A read-only install with no writable HOME: Numba cannot cache, so the loop compiles per process."""
    need_numba()
    import numba

    real = numba.njit

    def no_cache(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_loop': no locator available for file '…'")
        return real(*args, **kwargs)

    def _triple_loop(a):
        for i in range(a.size):
            a.flat[i] = a.flat[i] * 3

    monkeypatch.setattr(numba, "njit", no_cache)
    a = np.arange(4.0)
    kernelkit.jit(_triple_loop, (1,))(a)
    assert a.tolist() == [0.0, 3.0, 6.0, 9.0]


@pytest.mark.parametrize("k", [2, 3, 10, 32, 33, 200, 600])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_compiled_softmax_is_the_twins_bit_for_bit(k, dtype, rng):
    from cpu_kernels import CPU_NUMBA, CPU_NUMPY

    from gpubp.activations import forward_runner

    need_numba()
    a, b = (rng.normal(size=(57, k)) * 30).astype(dtype), rng.normal(size=k).astype(dtype)
    a[0] += 1e4
    a[1, 0] = np.nan  # a NaN makes its row NaN in both
    twin, loop = a.copy(), a.copy()
    with np.errstate(invalid="ignore"):
        forward_runner(CPU_NUMPY, "softmax")(b, twin)
        forward_runner(CPU_NUMBA, "softmax")(b, loop)
    assert np.array_equal(loop, twin, equal_nan=True)


@pytest.mark.parametrize("k", [1, 3, 10, 32, 33, 200, 600])  # twins: short rows up to 32; loops: up to 32768 values
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_softmax_forward_matches_its_formula(k, dtype, rng, cpu):
    from gpubp.activations import forward_runner

    a = (rng.normal(size=(57, k)) * 30).astype(dtype)
    a[0] += 1e4  # a row whose exp would overflow without the max subtracted
    b = rng.normal(size=k).astype(dtype)
    z = (a + b).astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    got = a.copy()
    forward_runner(cpu, "softmax")(b, got)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tolerance(dtype))


def test_ones_column_is_made_once_and_read_only(monkeypatch):
    monkeypatch.setattr(kernelkit, "_ones", {})  # made here, not found made by an earlier test
    ones = kernelkit.ones_column(29, np.float32)
    assert ones.shape == (29, 1)
    assert ones.dtype == np.float32
    assert (ones == 1).all()
    assert not ones.flags.writeable
    assert kernelkit.ones_column(29, np.float32) is ones
    assert kernelkit.ones_column(29, np.float64).dtype == np.float64


def test_full_like_is_made_once_and_read_only(monkeypatch):
    monkeypatch.setattr(kernelkit, "_full", {})  # made here, not found made by an earlier test
    x = np.empty((3, 2), np.float32)
    z = kernelkit.full_like(x, 0.5)
    assert z.shape == (3, 2)
    assert z.dtype == np.float32
    assert (z == 0.5).all()
    assert not z.flags.writeable
    assert kernelkit.full_like(x, 0.5) is z
    assert (kernelkit.full_like(x, 2.0) == 2.0).all()
    assert kernelkit.full_like(np.empty(4), 0.5).shape == (4,)
