"""Deterministic properties of speed: a steady-state CPU step allocates nothing, and an epoch
reads from the device once (plus once for validation metrics)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer

KIB = 1024


@pytest.mark.parametrize(
    ("sizes", "batch", "activation", "kwargs"),
    [
        ([784, 1024, 1024, 10], 256, "sigmoid", {}),
        ([64, 32, 10], 32, "relu", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
        ([20, 16, 3], 8, "tanh", {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4}),
    ],
    ids=["784-1024-1024-10-B256", "64-32-10-B32-nesterov", "20-16-3-B8-adam"],
)
def test_a_steady_state_cpu_step_allocates_nothing(sizes, batch, activation, kwargs, rng):
    n = batch * 3 + batch // 2  # with a partial last batch
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    net = gpubp.MLP(sizes, activation, device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=batch, **{"lr": 0.01, **kwargs})
    trainer.run(1)  # the first epoch makes the workspaces and scratch buffers
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        trainer.run(3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # NumPy's own ufunc buffer for broadcasting (Z += b: 8,192 elements) is the known floor
    assert peak - before < 64 * KIB, f"steady-state epochs allocated {(peak - before) / KIB:.0f} KiB"


def test_the_loss_is_read_once_per_epoch(rng):
    X, y = rng.normal(size=(100, 5)), rng.integers(0, 3, 100)
    net = gpubp.MLP([5, 8, 3], device="cpu", seed=0)
    dev = net.device
    before = dev.host_reads
    net.fit(X, y, epochs=4, batch_size=10)  # 10 batches an epoch
    assert dev.host_reads - before == 4
    before = dev.host_reads
    net.fit(X, y, epochs=3, batch_size=10, validation_data=(X[:20], y[:20]))
    assert dev.host_reads - before == 3 * 2  # + one read for the validation loss and accuracy
