"""GPU arithmetic on the host: the CUDA kernel bodies built for this CPU the way the GPU computes them, so that
what a GPU does with subnormals, zeros and infinities is known before one runs them (issue 27, findings 2, 3).

- float32: CuPy always compiles with -ftz=true, so on the GPU a subnormal input reads as zero and a subnormal
  result is written as zero (sign kept). The rule: the GPU's float32 result is the NumPy twin's on the inputs
  with subnormals flushed to zero, flushed likewise. Built here with FTZ and DAZ set in the SSE control
  register (kernel_sources' ``{name}_float_ftz``); tests/test_gpu.py holds the GPU to the same rule.
- Multiply-add contraction: NVRTC fuses a·b + c into one rounding unless told not to, which can flip a zero's
  sign against the twin (sgd_update with w = +0, g = 5e-324: −0 fused, +0 in the twin). gpubp compiles every
  kernel with ``--fmad=false`` (kernelkit.CUDA_OPTIONS); nvcc's PTX shows that no plain-arithmetic body then
  holds an fma, and a host build with contraction shows the sign it would have flipped.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kernel_sources import cuda_source, host_source
from test_kernels import ARRAYS, SHAPE, assert_ieee_match, build, inputs, run_twin, special_inputs

from gpubp import kernelkit
from gpubp import kernels as K


def flush(x):
    """float32 values as the GPU holds them: subnormals as zeros of their sign; float64 and scalars of
    float64 untouched."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        return x
    tiny = np.finfo(np.float32).tiny
    return np.where((x != 0) & (np.abs(x) < tiny), np.copysign(np.float32(0), x), x).astype(np.float32)


def as_the_gpu_computes(k: K.Kernel, args: dict, dtype) -> dict[str, np.ndarray]:
    """The twin's outputs as the GPU gives them: for float32, inputs and outputs with subnormals flushed."""
    if np.dtype(dtype) != np.float32:
        with np.errstate(all="ignore"):
            return run_twin(k, args)
    flushed = {n: (flush(v) if isinstance(v, np.ndarray) else np.float32(flush(v))) for n, v in args.items()}
    with np.errstate(all="ignore"):
        return run_twin(k, flushed)


def assert_as_the_gpu_computes(got: dict, k: K.Kernel, args: dict, dtype) -> None:
    """``got`` (a GPU's outputs, or the host's under FTZ) against the rule: for float32 NaN and ±inf where the twin
    on flushed inputs has them, its zeros with their signs, its other values to tolerance; where the twin's
    result is subnormal, a zero of either sign (the GPU flushed it, or an intermediate before it: w − g·lr with
    g·lr subnormal is w − 0 there). float64: the twin's, zero signs included."""
    want = as_the_gpu_computes(k, args, dtype)
    if np.dtype(dtype) == np.float32:
        got = {n: v.copy() for n, v in got.items()}
        for n, v in want.items():
            loose = (flush(v) != v) & (got[n] == 0)
            got[n][loose] = want[n][loose] = 0.0
            want[n] = flush(want[n])
    assert_ieee_match(got, want, k, dtype, exact=False)


def _has_fma() -> bool:
    try:
        return " fma " in f" {Path('/proc/cpuinfo').read_text().replace(chr(10), ' ')} "
    except OSError:
        return False


@pytest.fixture(scope="module")
def libs(tmp_path_factory) -> dict[str, ctypes.CDLL]:
    """The bodies built for the host with no contraction (as --fmad=false), and with contraction (as NVRTC's
    default) where this CPU has FMA."""
    flags = ["-O2", "-fno-fast-math", "-shared", "-fPIC"]
    out = {"plain": build(tmp_path_factory, "g++", "the kernel bodies were not built for the host", host_source(),
                          "plain.so", [*flags, "-ffp-contract=off"])}  # fmt: skip
    if _has_fma():
        out["fused"] = build(tmp_path_factory, "g++", "", host_source(), "fused.so",
                             [*flags, "-mfma", "-ffp-contract=fast"])  # fmt: skip
    return {name: ctypes.CDLL(str(path)) for name, path in out.items()}


def run_host(lib, fname: str, k: K.Kernel, args: dict, dtype) -> dict[str, np.ndarray]:
    full = {n: np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=dtype), SHAPE)).copy() for n, v in args.items()}
    fn = getattr(lib, fname)
    fn.restype = None
    fn(ctypes.c_long(int(np.prod(SHAPE))), *(full[n].ctypes.data_as(ctypes.c_void_p) for n in k.inputs + k.outputs))
    return {n: full[n] for n in k.outputs}


@pytest.mark.parametrize(("kernel", "which"), ARRAYS, ids=[f"{k.name}-{n}" for k, n in ARRAYS])
def test_float32_with_flush_to_zero_follows_the_rule(libs, kernel, which, rng):
    """Every kernel, every array argument special in turn and all at once: the body under FTZ/DAZ gives the
    twin's result on flushed values, NaN, ±inf and the signs of zeros included. Adam's v is the exception: a
    negative v whose update β2·v is subnormal is flushed to −0 before the √ (√−0 = −0, finite), where the twin
    takes √ of a negative subnormal (NaN); there the GPU's NaNs are some of the twin's."""
    args = special_inputs(kernel, which, np.float32, rng)
    got = run_host(libs["plain"], f"{kernel.name}_float_ftz", kernel, args, np.float32)
    if kernel is K.adam_update and which in ("v", "*"):
        want = as_the_gpu_computes(kernel, args, np.float32)
        for n in ("w", "m", "v"):
            assert not (np.isnan(got[n]) & ~np.isnan(want[n])).any(), n
        return
    assert_as_the_gpu_computes(got, kernel, args, np.float32)


def test_flush_to_zero_is_not_the_twins_arithmetic(libs):
    """What the review found the GPU would do, seen here: δ = −inf times σ' of a subnormal a is NaN (a reads
    as 0), where the twin keeps −inf; relu' of a subnormal a is 0, where the twin passes δ."""
    sub = np.finfo(np.float32).smallest_subnormal
    args = {"a": np.float32(sub), "delta": np.float32(-np.inf)}
    twin = run_twin(K.delta_sigmoid, {n: np.full(SHAPE, v, np.float32) for n, v in args.items()})
    assert np.isneginf(twin["delta"]).all()
    ftz = run_host(libs["plain"], "delta_sigmoid_float_ftz", K.delta_sigmoid, args, np.float32)["delta"]
    assert np.isnan(ftz).all()
    ieee = run_host(libs["plain"], "delta_sigmoid_float", K.delta_sigmoid, args, np.float32)["delta"]
    assert np.isneginf(ieee).all()
    args = {"a": np.float32(sub), "delta": np.float32(2.0)}
    assert (run_host(libs["plain"], "delta_relu_float_ftz", K.delta_relu, args, np.float32)["delta"] == 0).all()
    assert (run_twin(K.delta_relu, {n: np.full(SHAPE, v, np.float32) for n, v in args.items()})["delta"] == 2).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_contraction_flips_a_zeros_sign_and_the_kernels_are_built_without_it(libs, dtype):
    """sgd_update with w = +0 and the smallest g: w − g·lr is +0 rounded step by step (the twin), −0 fused."""
    if "fused" not in libs:
        pytest.skip("this CPU has no FMA: the fused build cannot be made here")
    sub = np.finfo(dtype).smallest_subnormal
    args = {"lr": dtype(0.05), "wd": dtype(0), "g": dtype(sub), "w": dtype(0.0)}
    T = "float" if dtype == np.float32 else "double"
    twin = run_twin(K.sgd_update, {**args, "g": np.full(SHAPE, sub, dtype), "w": np.zeros(SHAPE, dtype)})["w"]
    plain = run_host(libs["plain"], f"sgd_update_{T}", K.sgd_update, args, dtype)["w"]
    fused = run_host(libs["fused"], f"sgd_update_{T}", K.sgd_update, args, dtype)["w"]
    assert not np.signbit(twin).any()
    assert not np.signbit(plain).any()
    assert np.signbit(fused).all()  # what the GPU gave with NVRTC's default (the PTX held fma.rn)


def test_every_kernel_is_compiled_without_contraction():
    from fake_gpu import FakeCupy

    fake = FakeCupy(1)
    for k in K.ALL:
        k.gpu(fake)
        if k.name.startswith("loss_"):
            k.gpu_sum(fake)
    for k in K.ROWS:
        k.gpu(fake)
    names = [k.name for k in K.ALL + K.ROWS] + [f"{k.name}_sum" for k in K.ALL if k.name.startswith("loss_")]
    assert sorted(fake.options) == sorted(names)
    for name, options in fake.options.items():
        assert "--fmad=false" in options, name
    assert kernelkit.CUDA_OPTIONS == ("--fmad=false",)


@pytest.fixture(scope="module")
def ptx(tmp_path_factory) -> dict[str, str]:
    """The PTX of every kernel (sm_90), built by nvcc with gpubp's options and without them."""
    exe = shutil.which("nvcc")
    if exe is None:
        pytest.skip("nvcc is not installed here: the kernels' PTX was not inspected")
    folder = tmp_path_factory.mktemp("ptx")
    (folder / "kernels.cu").write_text(cuda_source())
    out = {}
    for name, options in (("gpubp", kernelkit.CUDA_OPTIONS), ("default", ())):
        proc = subprocess.run([exe, "-std=c++17", "-ptx", "-arch=sm_90", *options, "kernels.cu", "-o", f"{name}.ptx"],
                              capture_output=True, text=True, cwd=folder)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out[name] = (folder / f"{name}.ptx").read_text()
    return out


def _entries(ptx: str) -> dict[str, str]:
    parts = re.split(r"\.visible \.entry ", ptx)[1:]
    return {p.split("(", 1)[0]: p for p in parts}


PLAIN = [k for k in K.ALL if not re.search(r"\b(exp|log|tanh|sqrt)\(", k.body)]  # no library function's own fmas


def test_nvcc_with_gpubps_options_fuses_no_multiply_add(ptx):
    """The bodies of plain arithmetic hold no fma.rn with --fmad=false; without it (NVRTC's default) they do."""
    fused_by_default = []
    for k in PLAIN:
        for T in ("f", "d"):
            mangled = f"_Z{len(k.name)}{k.name}I{T}E"
            mine = [body for name, body in _entries(ptx["gpubp"]).items() if name.startswith(mangled)]
            assert len(mine) == 1, f"{k.name}<{T}> not found in the PTX"
            assert "fma.rn" not in mine[0], f"{k.name}<{T}> fuses a multiply-add under {kernelkit.CUDA_OPTIONS}"
            default = next(b for n, b in _entries(ptx["default"]).items() if n.startswith(mangled))
            if "fma.rn" in default:
                fused_by_default.append(f"{k.name}<{T}>")
    assert "sgd_update<d>" in fused_by_default  # the finding's case: what the check above would have caught


def test_an_ordinary_case_is_unchanged_by_flush_to_zero(libs, rng):
    """Away from subnormals FTZ changes nothing: random float32 inputs give the twin's numbers."""
    for k in K.ALL:
        args = inputs(k, rng, np.float32)
        got = run_host(libs["plain"], f"{k.name}_float_ftz", k, args, np.float32)
        assert_as_the_gpu_computes(got, k, args, np.float32)
