"""GPU speed traps a CPU can show with the fake CuPy (issue 27, finding 9): what is compiled, and when."""

from __future__ import annotations

import numpy as np
from fake_gpu import FakeCupy, fake_device

import gpubp
from gpubp.training import Trainer


def _net(fake, dtype="float32", loss="cross_entropy"):
    return gpubp.MLP([8, 16, 3], "relu", loss=loss, device=fake_device(fake, 0), dtype=dtype, seed=0)


def test_a_float32_network_compiles_float32_kernels_only_and_not_the_unused_loss_terms():
    """Each NVRTC build takes ~1 s on a machine whose kernel cache is empty: a float32 network and its trainer
    compile no float64 kernel, and not the loss-terms kernel, which the GPU's one-launch loss sum replaces."""
    fake = FakeCupy(1)
    net = _net(fake)
    rng = np.random.default_rng(0)
    Trainer(net, rng.normal(size=(40, 8)).astype(np.float32), rng.integers(0, 3, 40), batch_size=16, momentum=0.9)
    built = {(name, dtype) for name, dtype, _ in fake.kernels_built}
    assert {dtype for _, dtype in built} == {"float32"}
    assert ("loss_cross_entropy", "float32") not in built  # the terms kernel
    assert ("loss_cross_entropy_sum", "float32") in built
    assert ("momentum_update", "float32") in built


def test_no_kernel_meets_a_new_shape_class_in_epoch_1():
    """CuPy compiles an elementwise kernel per shape class: the warm-up at a batch of 1 left the real batches'
    bias kernels to be compiled inside epoch 1's time. A Trainer warms up at its batch size."""
    fake = FakeCupy(1)
    net = _net(fake)
    rng = np.random.default_rng(0)
    trainer = Trainer(net, rng.normal(size=(40, 8)).astype(np.float32), rng.integers(0, 3, 40), batch_size=16)
    before = set(fake.shape_classes)
    trainer.run(1)
    assert fake.shape_classes - before == set()


def test_the_gpu_step_multiplies_with_dot_not_matmul():
    """CuPy's matmul(out=) goes through its Python gufunc wrapper on every call; dot(out=) reaches the same
    cuBLAS GEMM without it."""
    fake = FakeCupy(1)
    net = _net(fake)
    rng = np.random.default_rng(0)
    trainer = Trainer(net, rng.normal(size=(40, 8)).astype(np.float32), rng.integers(0, 3, 40), batch_size=16)
    fake.calls.clear()
    trainer.run(1)
    names = [name for name, _ in fake.calls]
    assert "matmul" not in names
    assert names.count("dot") >= 3 * 5  # forward, ∂W, ∂b, Δ W per batch
