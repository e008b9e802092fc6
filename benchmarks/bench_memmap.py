"""Training from a memory-mapped .npy against the same data in memory: epoch throughput and the
tracemalloc peak of fit + score (the issue's target: under 64 MiB on a 1.2 GB file).

Slow (writes a 1.2 GB file of 400,000 × 784 float32 and trains full epochs), so it is skipped unless
GPUBP_BENCH_BIG=1; ``make test`` and ``make bench`` leave it out otherwise. Run it with
``GPUBP_BENCH_BIG=1 .venv/bin/python -m pytest benchmarks/bench_memmap.py --benchmark-only -s``
(GPUBP_BENCH_MEMMAP_ROWS changes the row count; the file goes to pytest's tmp dir). The epochs are
timed once the file is in the page cache (it was just written and is read once by the checks).
"""

from __future__ import annotations

import os
import time
import tracemalloc

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("GPUBP_BENCH_BIG") != "1", reason="1.2 GB file: set GPUBP_BENCH_BIG=1"),
]
ROWS = int(os.environ.get("GPUBP_BENCH_MEMMAP_ROWS", 400_000))
SIZES, BATCH = [784, 128, 10], 256
MIB = 1 << 20


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memmap")
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(ROWS, SIZES[0]))
    for start in range(0, ROWS, 20_000):  # written in blocks: the writer's memory stays small too
        block = X[start : start + 20_000]
        block[...] = np.random.default_rng(start).random(block.shape, dtype=np.float32)
    X.flush()
    del X
    np.save(folder / "y.npy", np.random.default_rng(1).integers(0, SIZES[-1], ROWS))
    return folder / "X.npy", folder / "y.npy"


def test_epoch_throughput(benchmark, files):
    """Epochs of the two sources alternate (after one warm-up epoch each), so a noisy spell on the
    shared machine hits both alike; the medians and their ratio go to extra_info."""
    X, y = (np.load(f, mmap_mode="r") for f in files)
    trainers, checks = {}, {}
    for source, (Xs, ys) in {"memmap": (X, y), "memory": (np.array(X), np.array(y))}.items():
        net = gpubp.MLP(SIZES, "relu", device="cpu", seed=0)
        t0 = time.perf_counter()
        trainers[source] = Trainer(net, Xs, ys, batch_size=BATCH, lr=0.01, momentum=0.9)  # checks run here
        checks[source] = time.perf_counter() - t0
    rounds = int(os.environ.get("GPUBP_BENCH_MEMMAP_ROUNDS", 5))
    for epoch in range(1, rounds + 2):
        for trainer in trainers.values():
            trainer.run(epoch)
    median = {s: float(np.median(t.history["seconds"][1:])) for s, t in trainers.items()}
    benchmark.group = f"fit epoch {ROWS}x{SIZES[0]} float32, {SIZES} batch {BATCH}"
    benchmark.extra_info.update(rows=ROWS, check_seconds=checks, median_epoch_seconds=median,
                                memmap_vs_memory=median["memory"] / median["memmap"])  # fmt: skip
    trainer = trainers["memmap"]
    benchmark.pedantic(lambda: trainer.run(trainer.epoch + 1), rounds=1, warmup_rounds=0)
    for source, seconds in median.items():
        print(f"\n{source}: {ROWS / seconds:,.0f} samples/s (median of {rounds} epochs), checks "
              f"{checks[source]:.2f} s, streaming={trainers[source].stream}")  # fmt: skip
    print(f"memmap throughput / in-memory throughput: {median['memory'] / median['memmap']:.3f}")


def test_fit_and_score_peak_memory(benchmark, files):
    X, y = (np.load(f, mmap_mode="r") for f in files)
    net = gpubp.MLP(SIZES, "relu", device="cpu", seed=0)

    def fit_and_score():
        tracemalloc.start()
        try:
            net.fit(X, y, epochs=1, batch_size=BATCH, lr=0.01, momentum=0.9)
            accuracy = net.score(X, y)
            return tracemalloc.get_traced_memory()[1], accuracy
        finally:
            tracemalloc.stop()

    peak, accuracy = benchmark.pedantic(fit_and_score, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(file_bytes=int(X.nbytes), tracemalloc_peak_bytes=peak, accuracy=accuracy)
    print(f"\nfit + score on a {X.nbytes / MIB:,.0f} MiB memmap: tracemalloc peak {peak / MIB:.1f} MiB")
    assert peak < 64 * MIB
