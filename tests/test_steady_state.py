"""Deterministic properties of speed: a steady-state CPU step allocates nothing, and an epoch
reads from the device once (plus once for validation metrics)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer

KIB = 1024


def broadcast_floor(batch: int, width: int, dtype: type) -> int:
    """Bytes NumPy itself takes, and frees, for ``A += b`` with b broadcast over (batch, width): the
    iterator and a buffer of up to 8,192 elements. The bias add of every forward pays it."""
    A, b = np.zeros((batch, width), dtype), np.zeros(width, dtype)
    A += b
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        A += b
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("sizes", "batch", "activation", "kwargs"),
    [
        ([784, 1024, 1024, 10], 256, "sigmoid", {}),
        ([64, 32, 10], 32, "relu", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
        ([32, 64, 10], 4, "tanh", {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4}),
    ],
    ids=["784-1024-1024-10-B256", "64-32-10-B32-nesterov", "32-64-10-B4-adam"],
)
def test_a_steady_state_cpu_step_allocates_nothing(sizes, batch, activation, kwargs, cpu, rng):
    """Each step's peak of traced memory above where the step began, against NumPy's own broadcast
    floor plus a quarter of the smaller of θ and one layer's batch of activations (1 KiB at least): a new array of θ's
    size (an optimiser state or update made per step) or of A_l's fails, on either kernel set."""
    n = batch * 5 + batch // 2  # with a partial last batch
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    net = gpubp.MLP(sizes, activation, device=cpu, seed=0)
    trainer = Trainer(net, X, y, batch_size=batch, **{"lr": 0.01, **kwargs})
    trainer.run(1)  # the first epoch makes the workspaces and scratch buffers
    peaks: list[int] = []
    start = [0]

    def after_batch(i: int, n_batches: int) -> None:
        _, peak = tracemalloc.get_traced_memory()
        if i > 1:  # the first interval of an epoch holds the epoch's own bookkeeping
            peaks.append(peak - start[0])
        tracemalloc.reset_peak()
        start[0] = tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        trainer.run(4, on_batch=after_batch)
    finally:
        tracemalloc.stop()
    theta = net.params.theta.nbytes
    # 1 KiB at least: Python's own small objects (a row slice, a float) come and go within a step
    budget = broadcast_floor(batch, max(sizes[1:]), np.float32) + max(KIB, min(theta, batch * max(sizes) * 4) // 4)
    assert len(peaks) == 3 * 5
    assert max(peaks) < budget, f"a steady-state step allocated {max(peaks)} bytes (budget {budget}, θ {theta})"


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
