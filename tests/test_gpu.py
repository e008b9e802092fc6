"""GPU against CPU: every kernel, the forward pass, the gradients and a training epoch.

All tests here carry the ``gpu`` marker: they skip with the reason where no CUDA GPU answers, and
fail instead when GPUBP_REQUIRE_GPU=1. The big cases (18.9M elements in one layer) launch
CuPy's elementwise kernels over ~150k blocks, far past one block's worth of indexing.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels import CASE_IDS, CASES, inputs, run_twin

import gpubp

pytestmark = pytest.mark.gpu

TOL = {"float64": 1e-10, "float32": 1e-5}


def rel_err(gpu, cpu) -> float:
    gpu = gpu.get() if hasattr(gpu, "get") else np.asarray(gpu)
    cpu = np.asarray(cpu, dtype=np.float64)
    denom = np.linalg.norm(cpu)
    return float(np.linalg.norm(gpu.astype(np.float64) - cpu) / (denom if denom > 0 else 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("kernel", "extreme"), CASES, ids=CASE_IDS)
def test_cupy_kernel_matches_numpy_twin(kernel, extreme, dtype, rng):
    """Random inputs, and for activations and losses extreme ones too (σ at ±1e4, log of 0)."""
    import cupy

    args = inputs(kernel, rng, dtype, extreme)
    want = run_twin(kernel, args)
    dev_args = {n: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for n, v in args.items()}
    kernel.cuda(*(dev_args[n] for n in kernel.inputs + kernel.outputs))
    for name in kernel.outputs:
        if name == "g":
            continue
        got = dev_args[name]
        assert got.dtype == dtype
        assert rel_err(got, want[name]) <= TOL[np.dtype(dtype).name] * 10, kernel.name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_cpu_and_gpu_agree_on_forward_gradients_and_an_epoch(activation, dtype, rng):
    sizes, n = [512, 2304, 10], 8192  # the hidden layer has 18.9M elements
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    cpu = gpubp.MLP(sizes, activation, device="cpu", dtype=dtype, seed=3)
    gpu = gpubp.MLP(sizes, activation, device="gpu", dtype=dtype, seed=3)
    tol = TOL[dtype]
    assert rel_err(gpu.forward(X), cpu.forward(X)) <= tol
    loss_c, grads_c = cpu.loss_and_gradients(X, y)
    loss_g, grads_g = gpu.loss_and_gradients(X, y)
    assert abs(loss_g - loss_c) <= tol * abs(loss_c)
    for (dWc, dbc), (dWg, dbg) in zip(grads_c, grads_g):
        assert rel_err(dWg, dWc) <= tol
        assert rel_err(dbg, dbc) <= tol
    for net in (cpu, gpu):
        net.fit(X, y, epochs=1, batch_size=1024, lr=0.05, momentum=0.9)
    for Wc, Wg in zip(cpu.weights + cpu.biases, gpu.weights + gpu.biases):
        assert rel_err(Wg, Wc) <= tol
    assert cpu.history["train_loss"][0] == pytest.approx(gpu.history["train_loss"][0], rel=tol)


def test_gpu_epoch_reads_the_device_once(rng):
    X, y = rng.normal(size=(4096, 32)), rng.integers(0, 10, 4096)
    net = gpubp.MLP([32, 64, 10], device="gpu", seed=0)
    net.fit(X, y, epochs=1, batch_size=64)  # warm-up: kernels compiled
    before = net.device.host_reads
    net.fit(X, y, epochs=3, batch_size=64)
    assert net.device.host_reads - before == 3


def test_gpu_adam_and_nesterov_match_cpu(rng):
    X, y = rng.normal(size=(512, 20)), rng.integers(0, 4, 512)
    for kw in ({"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3},
               {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}):  # fmt: skip
        nets = [gpubp.MLP([20, 30, 4], "tanh", device=d, dtype="float64", seed=1) for d in ("cpu", "gpu")]
        for net in nets:
            net.fit(X, y, epochs=2, batch_size=32, **kw)
        for Wc, Wg in zip(nets[0].weights, nets[1].weights):
            assert rel_err(Wg, Wc) <= 1e-10


def test_cli_trains_on_the_gpu_as_well_as_on_the_cpu(tmp_path):
    import json
    import os
    import subprocess
    import sys

    results = {}
    for device in ("gpu", "cpu"):
        proc = subprocess.run([sys.executable, "-m", "gpubp", "train", "--device", device, "--no-save", "--json"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=600,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        results[device] = json.loads(proc.stdout)
    assert results["gpu"]["device"] == "gpu:0"
    # float32 sums in another order: the runs differ in rounding, not in what they learn
    assert abs(results["gpu"]["test_accuracy"] - results["cpu"]["test_accuracy"]) <= 0.015
    assert results["gpu"]["test_accuracy"] >= 0.96
