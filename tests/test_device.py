"""The array-module switch: auto, cpu, gpu, the environment variable, and why a GPU is missing."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

import gpubp
from gpubp import backend, blas, probe


@pytest.fixture
def fresh_probe(monkeypatch):
    """Forget the cached CuPy probe and the one-time notice, before and after; no GPUBP_DEVICE."""
    monkeypatch.delenv("GPUBP_DEVICE", raising=False)
    probe._cupy_status.cache_clear()
    backend._notified = False
    yield
    probe._cupy_status.cache_clear()
    backend._notified = False


@pytest.fixture
def no_cupy(monkeypatch, fresh_probe):
    """Make ``import cupy`` fail as it does where CuPy is not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_auto_falls_back_to_cpu_with_one_notice_when_cupy_is_missing(no_cupy, caplog):
    with caplog.at_level(logging.WARNING, logger="gpubp"):
        assert backend.get_device("auto") is backend.CPU
        assert backend.get_device("auto") is backend.CPU
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1
    assert "using the CPU" in notices[0]
    assert "CuPy is not installed" in notices[0]


def test_asking_for_gpu_without_cupy_names_the_extra(no_cupy):
    with pytest.raises(RuntimeError, match=r"gpubp\[cuda12\]"):
        gpubp.MLP([2, 2], device="gpu")
    info = gpubp.devices()
    assert info["cpu"]["available"]
    assert not info["gpu"]["available"]
    assert "not installed" in info["gpu"]["reason"]


def test_cupy_installed_without_a_device_is_reported_for_real(fresh_probe, caplog):
    """CI installs the CuPy extra on a machine with no GPU: this is that case, not a simulation."""
    cupy = pytest.importorskip("cupy", reason="the CuPy extra is not installed here")
    reason = backend.gpu_unavailable_reason()
    if reason is None:
        pytest.skip("a GPU answers here: this test is about machines without one")
    assert f"CuPy {cupy.__version__} is installed" in reason
    with pytest.raises(RuntimeError, match=r"no CUDA device answers|sees no CUDA device"):
        backend.get_device("gpu")
    with caplog.at_level(logging.WARNING, logger="gpubp"):
        net = gpubp.MLP([3, 2], device="auto")
    assert net.device is backend.CPU
    assert any("installed but" in r.getMessage() for r in caplog.records)


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    assert gpubp.MLP([2, 2], device=None).device is backend.CPU


def test_environment_variable_decides_auto_in_every_entry_point(no_cupy, monkeypatch, tmp_path, caplog):
    """MLP, gpubp.load and the estimators default to "auto", which GPUBP_DEVICE decides; a CPU chosen
    by the user logs no fallback line."""
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    with caplog.at_level(logging.INFO, logger="gpubp"):
        net = gpubp.MLP([2, 2], seed=0)
        net.save(tmp_path / "net.npz")
        loaded = gpubp.load(tmp_path / "net.npz")
    assert net.device is backend.CPU
    assert loaded.device is backend.CPU
    assert caplog.records == []
    # the variable is really read: asking it for the GPU (absent here) fails in each entry point
    monkeypatch.setenv("GPUBP_DEVICE", "gpu")
    with pytest.raises(RuntimeError, match="no usable GPU"):
        gpubp.MLP([2, 2])
    with pytest.raises(RuntimeError, match="no usable GPU"):
        gpubp.load(tmp_path / "net.npz")
    assert gpubp.MLP([2, 2], device="cpu").device is backend.CPU  # a device named in code wins


def test_environment_variable_decides_auto_for_the_estimators(no_cupy, monkeypatch, caplog):
    pytest.importorskip("sklearn", reason="the sklearn extra is not installed")
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    monkeypatch.setenv("GPUBP_DEVICE", "gpu")
    with pytest.raises(RuntimeError, match="no usable GPU"):
        gpubp.MLPClassifier().partial_fit(X, y, classes=[0, 1])
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    with caplog.at_level(logging.INFO, logger="gpubp"):
        clf = gpubp.MLPClassifier().partial_fit(X, y, classes=[0, 1])
    assert clf._net.device is backend.CPU
    assert not [r for r in caplog.records if "using the CPU" in r.getMessage()]


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "banana")
    with pytest.raises(ValueError, match=r"'banana' \(from GPUBP_DEVICE\)"):
        gpubp.MLP([2, 2])


@pytest.mark.parametrize("spec", ["tpu", "gpu:x", "cpu:1", ""])
def test_unknown_device_names_are_refused(spec):
    with pytest.raises(ValueError, match="device"):
        backend.get_device(spec)


def test_device_must_be_a_string():
    with pytest.raises(TypeError, match="device"):
        backend.get_device(3)


def test_cpu_network_refuses_gpu_arrays():
    class FakeCupyArray:  # what matters is the module the type comes from
        __module__ = "cupy._core.core"

    net = gpubp.MLP([2, 2], device="cpu")
    with pytest.raises(TypeError, match="CuPy array"):
        net.forward(FakeCupyArray())


@pytest.mark.gpu
def test_gpu_network_lives_on_the_gpu():
    import cupy

    net = gpubp.MLP([4, 3], device="gpu", seed=0)
    assert isinstance(net.weights[0], cupy.ndarray)
    out = net.forward(np.ones((2, 4), np.float32))  # host input is copied over
    assert isinstance(out, cupy.ndarray)
    assert out.shape == (2, 3)
    net.to("cpu")
    assert isinstance(net.weights[0], np.ndarray)


@pytest.mark.parametrize(("arch", "threads"), [("Haswell", [1, 2, 2]), ("SkylakeX", [1, 1, 2]), ("Zen", [1, 2, 2])])
def test_blas_threads_follow_the_kernels_openblas_picked(arch, threads, monkeypatch):
    """One thread below 2 MFLOP a step on AVX2 kernels, below 20 MFLOP on AVX-512 ones (measured)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from gpubp import blas

    monkeypatch.setattr(threadpoolctl, "threadpool_info",
                        lambda: [{"user_api": "blas", "internal_api": "openblas", "architecture": arch}])  # fmt: skip
    blas._one_thread_below.cache_clear()
    try:
        # 64-32-10 B32 (0.2 MFLOP), 64-100-10 B200 (6.3), 784-128-10 B64 (26)
        got = [blas.threads_for(s, b, 2) for s, b in [((64, 32, 10), 32), ((64, 100, 10), 200), ((784, 128, 10), 64)]]
    finally:
        blas._one_thread_below.cache_clear()
    assert got == threads


class _CudaTensor:
    """What a PyTorch CUDA tensor shows NumPy: the CUDA array interface, no host memory (np.asarray fails)."""

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}

    def __array__(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


def test_to_numpy_reads_another_librarys_gpu_array_through_cupy(monkeypatch):
    """A torch CUDA y given to an estimator failed in to_numpy (np.asarray of a CUDA tensor)."""
    from types import SimpleNamespace

    from gpubp import backend

    stand_in = SimpleNamespace(asarray=lambda x: SimpleNamespace(get=lambda: np.arange(3.0)))
    monkeypatch.setattr(probe, "_cupy_status", lambda: (stand_in, None))
    np.testing.assert_array_equal(backend.to_numpy(_CudaTensor()), [0.0, 1.0, 2.0])
    monkeypatch.setattr(probe, "_cupy_status", lambda: (None, "CuPy is not installed"))
    with pytest.raises(TypeError, match=r"_CudaTensor is an array on a CUDA GPU; reading it needs CuPy"):
        backend.to_numpy(_CudaTensor())


def test_the_one_thread_choice_is_a_core_dependency():
    """threads_for picks one BLAS thread for small steps, and only threadpoolctl can enforce it: without it
    `make train` (NumPy alone) ran the demo 10-20x slower on a busy 2-core machine, OpenBLAS's second
    thread spinning. So it is installed with gpubp itself, not with an extra."""
    from importlib.metadata import requires

    core = [r for r in requires("gpubp") or [] if "extra ==" not in r]
    assert any(r.startswith("threadpoolctl") for r in core), core
    with blas.blas_threads(1):
        from threadpoolctl import threadpool_info

        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
