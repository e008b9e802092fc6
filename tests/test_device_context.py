"""Every array operation on gpu:N (N >= 1) runs with gpu:N current, checked on the CPU with a fake CuPy of two
GPUs (tests/fake_gpu.py) that raises when an array of one device is used while another is current. On a real
GPU such a call is queued on the wrong device's stream (a race with the upload it reads) or is a peer copy.
Every rank of NCCL training but rank 0 trains on a gpu:N with N >= 1."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from fake_gpu import FakeCupy, WrongDevice, fake_device

import gpubp
from gpubp import backend, probe
from gpubp.backend import to_numpy
from gpubp.training import Trainer


@pytest.fixture
def fake() -> FakeCupy:
    return FakeCupy(2)


@pytest.fixture
def gpu1(fake, monkeypatch):
    """gpu:1 of the fake, which get_device("gpu:1") (pickles, the estimators) resolves to as well."""
    devices = {i: fake_device(fake, i) for i in range(fake.count)}
    monkeypatch.setattr(probe, "_cupy_status", lambda: (fake, None))
    monkeypatch.setattr(backend, "_gpu_device", lambda index: devices[index])
    return devices[1]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 5)), rng.integers(0, 3, 60)


def _worked_on(fake: FakeCupy, index: int) -> int:
    return sum(1 for _, dev in fake.calls if dev == index)


def test_the_fake_catches_work_outside_the_device(fake, gpu1):
    """The check itself: an array of gpu:1 touched with gpu:0 current raises; inside gpu:1's block it does not."""
    with gpu1.use():
        a = fake.zeros(3)
    with pytest.raises(WrongDevice, match=r"an array of gpu:1 used while gpu:0 is current"):
        a += 1
    with pytest.raises(WrongDevice):
        a[...] = 2
    with gpu1.use():
        a += 1
    assert a.get().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_network_on_gpu1_works_inside_its_device(fake, gpu1, data, loss):
    X, y = data
    Y = y if loss == "cross_entropy" else np.eye(3)[y] if loss == "bce" else X[:, :3]
    net = gpubp.MLP([5, 7, 3], "relu", loss=loss, device=gpu1, seed=0)
    assert fake.current == 0  # gpu:0 stays current outside gpubp's calls, as in a user's process
    net.set_parameters([np.ones((7, 5)) * 0.1, np.ones((3, 7)) * 0.1], [np.zeros(7), np.zeros(3)])
    net.forward(X)
    net.predict(X)
    net.evaluate(X, Y)
    net.score(X, Y)
    net.loss_and_gradients(X, Y)
    net.trace(X[:4], Y[:4])
    for kw in ({"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}, {"optimizer": "adam", "lr": 1e-3}):
        net.fit(X, Y, epochs=3, batch_size=8, validation_data=(X, Y), patience=1, **kw)
    back = pickle.loads(pickle.dumps(net))  # read to the host, then copied back onto gpu:1
    assert back.device is gpu1
    assert _worked_on(fake, 1) > 100
    assert fake.current == 0


def test_moving_a_network_onto_and_off_gpu1(fake, gpu1, data):
    X, y = data
    net = gpubp.MLP([5, 7, 3], device="cpu", seed=0)
    want = net.forward(X)
    net.to(gpu1)
    np.testing.assert_allclose(to_numpy(net.forward(X)), want, rtol=1e-6)
    net.fit(X, y, epochs=1, batch_size=16)
    net.to("cpu")
    assert net.device.name == "cpu"


@pytest.mark.parametrize("stream", [False, True], ids=["on-device", "streamed"])
def test_trainer_save_restore_and_resume_on_gpu1(fake, gpu1, data, tmp_path, stream):
    X, y = data
    net = gpubp.MLP([5, 7, 3], device=gpu1, seed=0)
    trainer = Trainer(net, X, y, batch_size=8, optimizer="adam", lr=1e-2, stream=stream,
                      sample_weight=np.linspace(0.5, 2, 60), validation_data=(X, y), patience=3)  # fmt: skip
    trainer.run(2, on_batch=lambda i, n: i == 3)  # stopped inside epoch 1
    path = str(tmp_path / "ckpt.npz")
    trainer.save(path)
    trainer.restore(path)
    trainer.run(3)
    again = Trainer.resume(path, X, y, load=gpubp.network.load, validation_data=(X, y), device=gpu1)
    again.run(3)
    np.testing.assert_array_equal(to_numpy(again.net.weights[0]), to_numpy(net.weights[0]))


def test_streamed_inference_from_a_row_source_on_gpu1(fake, gpu1, data, tmp_path):
    """Rows of a memory-mapped file go through the pinned staging buffers and the copies onto gpu:1."""
    X, y = data
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    net = gpubp.MLP([5, 7, 3], device=gpu1, seed=0)
    np.testing.assert_allclose(to_numpy(net.forward(mapped)), to_numpy(net.forward(X)), rtol=1e-6)
    net.fit(mapped, y, epochs=1, batch_size=8, validation_data=(mapped, y))
    net.evaluate(mapped, y)


def test_kernels_compile_when_the_network_binds_not_in_epoch_1(fake, gpu1, data):
    """CuPy compiles an ElementwiseKernel (NVRTC) on its first launch per dtype and device: gpubp launches each
    of the network's kernels once, in the network's dtype (a float64 build would be ~1 s of NVRTC for nothing),
    on the network's device when it binds them."""
    X, y = data
    net = gpubp.MLP([5, 7, 3], "tanh", device=gpu1, seed=0)
    built = set(fake.kernels_built)
    for name in ("bias_tanh", "delta_tanh", "delta_output", "softmax_rows"):
        assert (name, "float32", 1) in built, name
        assert (name, "float64", 1) not in built, name
    assert ("loss_cross_entropy_sum", "float32", 1) in built  # the fused Σ of the loss, in the network's dtype
    assert {("dot", 1), ("take", 1)} <= set(fake.calls)  # cuBLAS's handle and the gather: made before epoch 1
    trainer = Trainer(net, X, y, batch_size=8, momentum=0.9)
    assert ("momentum_update", "float32", 1) in set(fake.kernels_built)
    before = len(fake.kernels_built)
    trainer.run(1)
    assert len(fake.kernels_built) == before, "a kernel was compiled inside the epoch"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_on_gpu1(fake, gpu1, data):
    pytest.importorskip("sklearn")
    from gpubp.sklearn import MLPClassifier

    X, y = data
    for kw in ({"early_stopping": True, "max_iter": 4}, {"solver": "sgd", "learning_rate": "adaptive",
                                                          "max_iter": 3, "alpha": 1e-3}):  # fmt: skip
        est = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, device="gpu:1", **kw).fit(X, y)
        assert est._net.device is gpu1
        est.predict_proba(X)
        est.partial_fit(X, y) if not kw.get("early_stopping") else est.score(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pickle.loads(pickle.dumps(est)).predict(X)
    assert fake.current == 0


def test_inference_chunks_are_sized_by_the_devices_memory(fake, gpu1, data):
    """On a GPU a forward pass takes as many rows a chunk as 1/8 of the free memory holds (the fake has 8 GiB
    free), not the CPU's 4 MiB host budget (8192 rows at most here)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 5))
    net = gpubp.MLP([5, 7, 3], device=gpu1, seed=0)
    net.forward(X)
    assert max(net._workspaces) == 20_000  # one chunk
    cpu = gpubp.MLP([5, 7, 3], device="cpu", seed=0)
    cpu.forward(X)
    assert max(cpu._workspaces) <= 8192


def test_workspaces_of_varying_sizes_are_evicted():
    """predict and partial_fit on ever other sizes keep at most four workspaces (the most recently used)."""
    net = gpubp.MLP([5, 7, 3], device="cpu", seed=0)
    X = np.random.default_rng(0).normal(size=(40, 5))
    for n in range(1, 40, 3):
        net.forward(X[:n])
    assert sorted(net._workspaces) == [28, 31, 34, 37]
    net.forward(X[:31])  # used again: kept while newer sizes come
    net.forward(X[:2])
    assert sorted(net._workspaces) == [2, 31, 34, 37]


@pytest.mark.slow
def test_the_gpu_tests_run_against_the_fake(tmp_path):
    """The gpu-marked tests, run on this machine against the fake CuPy (tests/fake_gpu.py as a pytest plugin)
    with gpu:1 current outside gpubp's calls: every GPU code path runs (the kernels are the twins) and any work
    on gpu:0 outside its context fails. Left out: the CLI's (a subprocess, without the fake) and the 18.9M-element
    agreement test (minutes on a CPU; its float32 tolerance is for cuBLAS, not for the twins)."""
    import os
    import subprocess
    import sys

    here = os.path.dirname(__file__)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "fake_gpu", "-m", "gpu", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "--benchmark-disable", "-k",
                           "not cli_trains and not agree_on_forward", here],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "GPUBP_FAKE_CURRENT": "1", "PYTHONPATH": here})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout
