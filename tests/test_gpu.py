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
    # 8 momentum steps compound each step's rounding: in float32, two CPU paths that only sum in other orders
    # (the fake GPU's twins against the CPU's loops) left b_1 1.35e-5 apart; a wrong kernel is far beyond 10×
    for Wc, Wg in zip(cpu.weights + cpu.biases, gpu.weights + gpu.biases):
        assert rel_err(Wg, Wc) <= tol * (10 if dtype == "float32" else 1)
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


# -- added for the first GPU run (issue 19): paths no CPU test reaches -----------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_cuda_kernels_pass_nan_inf_zeros_and_subnormals_as_the_twins(dtype, rng):
    """Every kernel, every array argument special in turn and all at once (test_kernels' cases), on the GPU:
    NaN and ±inf where the twin has them, zeros with the twin's sign (gpubp compiles with --fmad=false). float32:
    CuPy always compiles with -ftz=true, so subnormals flush to zero; the rule and its one exception (Adam's v)
    are tests/test_gpu_arithmetic.py's, which checks them on the host under FTZ/DAZ."""
    import cupy
    from test_gpu_arithmetic import as_the_gpu_computes, assert_as_the_gpu_computes
    from test_kernels import ARRAYS, special_inputs

    for kernel, which in ARRAYS:
        args = special_inputs(kernel, which, dtype, rng)
        dev = {n: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for n, v in args.items()}
        kernel.cuda(*(dev[n] for n in kernel.inputs + kernel.outputs))
        got = {n: dev[n].get() for n in kernel.outputs}
        if dtype == np.float32 and kernel is gpubp.kernels.adam_update and which in ("v", "*"):
            want = as_the_gpu_computes(kernel, args, dtype)  # the GPU's NaNs are some of the twin's
            assert not any((np.isnan(got[n]) & ~np.isnan(want[n])).any() for n in ("w", "m", "v"))
            continue
        # exact=False: CUDA's exp, log and tanh are not NumPy's to the last bit
        assert_as_the_gpu_computes(got, kernel, args, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_softmax_and_loss_sums_on_the_gpu_match_the_cpu(dtype, rng):
    """The one-launch softmax (row kernel) and Σ loss (ReductionKernel) against the CPU, NaN rows included."""
    from gpubp.backend import get_device

    gpu = get_device("gpu")
    a = (rng.normal(size=(300, 37)) * 30).astype(dtype)
    a[0] += 1e4
    a[5, 3] = np.nan
    b = rng.normal(size=37).astype(dtype)
    want = a.copy()
    with np.errstate(all="ignore"):
        gpubp.kernels.softmax_rows.numpy(b, want)
    got = gpu.asarray(a)
    with gpu.use():
        gpu.row_kernel(gpubp.kernels.softmax_rows)(gpu.asarray(b), got)
    got = got.get()
    assert np.isnan(got[5]).all()
    assert np.isnan(want[5]).all()
    np.testing.assert_allclose(np.delete(got, 5, 0), np.delete(want, 5, 0), rtol=TOL[dtype] * 10, atol=1e-12)
    for loss in ("cross_entropy", "bce", "mse"):
        cpu = gpubp.MLP([37, 5, 4], "tanh", loss=loss, device="cpu", dtype=dtype, seed=1)
        net = gpubp.MLP([37, 5, 4], "tanh", loss=loss, device="gpu", dtype=dtype, seed=1)
        Y = np.eye(4)[rng.integers(0, 4, 300)].astype(dtype)
        X = np.nan_to_num(a / 1e4)
        assert net.loss_and_gradients(X, Y)[0] == pytest.approx(cpu.loss_and_gradients(X, Y)[0], rel=TOL[dtype])


def test_divergence_is_caught_on_the_gpu(rng):
    """A relu net at lr 1e4: the GPU's kernels let NaN through, so training stops in epoch 1 with the weights
    of its start, as on the CPU (CUDA bodies that swallowed NaN trained on with loss 87.34 and NaN weights)."""
    from gpubp.training import TrainingDivergedError

    X, y = rng.normal(size=(64, 8)) * 10, rng.integers(0, 2, 64)
    net = gpubp.MLP([8, 32, 32, 2], "relu", device="gpu", seed=0)
    start = [W.get() for W in net.weights]
    with pytest.raises(TrainingDivergedError, match="in epoch 1"):
        net.fit(X, y, epochs=6, batch_size=8, lr=1e4, momentum=0.9)
    for W, W0 in zip(net.weights, start):
        np.testing.assert_array_equal(W.get(), W0)


@pytest.mark.parametrize("stream", [False, True], ids=["on-device", "streamed"])
def test_trainer_save_restore_and_resume_on_the_gpu(tmp_path, rng, stream):
    """Stopped inside epoch 2 and resumed from its checkpoint (Trainer.resume and restore): the same weights
    as a run that never stopped, bit for bit (same device, same kernels, same order)."""
    from gpubp.training import Trainer

    X, y = rng.normal(size=(300, 20)), rng.integers(0, 4, 300)
    kw = dict(batch_size=32, optimizer="adam", lr=1e-2, stream=stream, validation_data=(X[:50], y[:50]))
    straight = gpubp.MLP([20, 30, 4], device="gpu", seed=2)
    Trainer(straight, X, y, **kw).run(3)
    net = gpubp.MLP([20, 30, 4], device="gpu", seed=2)
    trainer = Trainer(net, X, y, **kw)
    trainer.run(3, on_batch=lambda i, n: trainer.epoch == 1 and i == 4)
    path = str(tmp_path / "ckpt.npz")
    trainer.save(path)
    resumed = Trainer.resume(path, X, y, load=gpubp.network.load, validation_data=(X[:50], y[:50]), device="gpu")
    resumed.run(3)
    trainer.restore(path)
    trainer.run(3)
    for run in (resumed.net, net):
        for W, W_straight in zip(run.weights + run.biases, straight.weights + straight.biases):
            np.testing.assert_array_equal(W.get(), W_straight.get())


def test_row_sources_through_pinned_buffers_and_streaming_with_validation(tmp_path, rng):
    """A memory-mapped X predicted and trained on through the pinned staging buffers and the copy stream:
    the same numbers as the data in memory; many batches in a row reuse each pinned buffer only after its copy
    is done (else the rows of a later batch would be mixed into an earlier one's, and the weights would differ)."""
    X = rng.normal(size=(5000, 32)).astype(np.float32)
    y = rng.integers(0, 10, 5000)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    from gpubp.training import Trainer

    net = gpubp.MLP([32, 64, 10], device="gpu", seed=0)
    np.testing.assert_array_equal(net.forward(mapped).get(), net.forward(X).get())
    assert net.evaluate(mapped, y) == net.evaluate(X, y)
    a, b = (gpubp.MLP([32, 64, 10], device="gpu", seed=0) for _ in range(2))
    streamed = Trainer(a, mapped, y, batch_size=16, stream=True, validation_data=(mapped[:500], y[:500]))
    assert streamed.stream
    streamed.run(2)
    Trainer(b, X, y, batch_size=16, stream=False, validation_data=(X[:500], y[:500])).run(2)
    assert a.history["val_loss"] == b.history["val_loss"]
    for Wa, Wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(Wa.get(), Wb.get())


PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "bce"), ("identity", "mse"), ("softmax", "mse"),
         ("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse")]  # fmt: skip


@pytest.mark.parametrize(("output", "loss"), PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_gpu_and_cpu_agree_for_every_output_and_loss(output, loss, rng):
    X = rng.normal(size=(512, 24))
    Y = np.eye(6)[rng.integers(0, 6, 512)] if loss != "mse" or output in ("softmax", "sigmoid") else rng.normal(
        size=(512, 6))  # fmt: skip
    nets = [gpubp.MLP([24, 40, 6], "tanh", output=output, loss=loss, device=d, dtype="float64", seed=4)
            for d in ("cpu", "gpu")]  # fmt: skip
    (lc, gc), (lg, gg) = (n.loss_and_gradients(X, Y) for n in nets)
    assert lg == pytest.approx(lc, rel=1e-10)
    for (dWc, dbc), (dWg, dbg) in zip(gc, gg):
        assert rel_err(dWg, dWc) <= 1e-10
        assert rel_err(dbg, dbc) <= 1e-10
    for n in nets:
        n.fit(X, Y, epochs=2, batch_size=64, lr=0.05, momentum=0.9)
    for Wc, Wg in zip(nets[0].weights, nets[1].weights):
        assert rel_err(Wg, Wc) <= 1e-9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_torch_cuda_tensors_through_the_cuda_array_interface_and_dlpack(rng):
    """X and y as PyTorch CUDA tensors (the CUDA array interface) and as DLPack capsules' owners: used on the
    GPU without a host copy; y read through CuPy (np.asarray of a CUDA tensor fails)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA device")
    from gpubp.backend import to_numpy
    from gpubp.sklearn import MLPClassifier

    X, y = rng.normal(size=(200, 8)).astype(np.float32), rng.integers(0, 3, 200)
    Xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    np.testing.assert_array_equal(to_numpy(yt), y)
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0, shuffle=False)
    ref = MLPClassifier(device="gpu", **kw).fit(X, y)
    got = MLPClassifier(device="gpu", **kw).fit(Xt, yt)
    np.testing.assert_allclose(got.coefs_[0], ref.coefs_[0], rtol=1e-6)
    np.testing.assert_allclose(got.predict_proba(Xt), ref.predict_proba(X), rtol=1e-6)
    net = gpubp.MLP([8, 10, 3], device="gpu", seed=0)
    np.testing.assert_allclose(net.forward(Xt).get(), net.forward(X).get(), rtol=1e-6)


def test_jax_gpu_arrays_through_dlpack(rng):
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this JAX has no GPU")
    X = rng.normal(size=(64, 8)).astype(np.float32)
    Xj = jax.device_put(X, next(d for d in jax.devices() if d.platform == "gpu"))
    net = gpubp.MLP([8, 10, 3], device="gpu", seed=0)
    np.testing.assert_allclose(net.forward(Xj).get(), net.forward(X).get(), rtol=1e-6)
    from gpubp.backend import to_numpy

    np.testing.assert_array_equal(to_numpy(Xj), X)


def test_gpu_epoch_does_not_synchronise_outside_its_one_read(rng, monkeypatch):
    """The epoch under cupyx.allow_synchronize(False): a stray float(), bool() or .item() on a device value
    (a synchronisation) raises DeviceSynchronized; only Device.to_host (the epoch's one read) may synchronise."""
    import cupyx

    from gpubp.backend import Device

    X, y = rng.normal(size=(2048, 32)), rng.integers(0, 10, 2048)
    net = gpubp.MLP([32, 64, 10], device="gpu", seed=0)
    net.fit(X, y, epochs=1, batch_size=64)  # warm-up: buffers made, data copied
    read = Device.to_host

    def allowed_read(self, x):
        with cupyx.allow_synchronize(True):
            return read(self, x)

    monkeypatch.setattr(Device, "to_host", allowed_read)
    from gpubp.training import Trainer

    trainer = Trainer(net, X, y, batch_size=64, momentum=0.9, stream=False)
    with cupyx.allow_synchronize(False):
        trainer.run(2)
    assert len(trainer.history["train_loss"]) == 2
