"""The CPU's two kernel sets against each other: NumPy twins and Numba's compiled loops, same process.

``python -m benchmarks.kernel_sets [repeats]`` times one training step (as the benchmark suite's) with
each set, and PyTorch where it is installed, in rounds that alternate all three, and the scikit-learn
estimator's ``fit`` on the digits with each set (alternating fits). It prints one line per repeat, so
the spread between repeats shows how far one figure can be trusted on a shared machine.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from benchmarks.peers import TorchStep, cpu_threads, interleaved, torch_or_reason
from gpubp.backend import Device
from gpubp.bench import Config, StepRunner
from gpubp.blas import threads_for

CONFIGS = [
    Config("tiny", (64, 32, 10), 32, "relu"),
    Config("tiny", (64, 32, 10), 32, "sigmoid"),
    Config("small", (784, 128, 10), 64, "relu"),
    Config("gemm-bound", (784, 1024, 1024, 10), 256, "relu"),
]


def steps(repeats: int) -> None:
    numpy_cpu, numba_cpu = Device("cpu", np, kernels="numpy"), Device("cpu", np, kernels="numba")
    torch, _ = torch_or_reason()
    for cfg in CONFIGS:
        threads = threads_for(cfg.sizes, cfg.batch)
        with cpu_threads(threads):
            runners = {"numpy": StepRunner(cfg, numpy_cpu).steps, "numba": StepRunner(cfg, numba_cpu).steps}
            if torch is not None:
                runners["torch"] = TorchStep(cfg, "cpu").steps
            for run in runners.values():
                run(3)  # warm-up: loops compiled (or loaded from the cache), buffers made
            for _ in range(repeats):
                m = interleaved(runners, rounds=7)
                vs = (f"  PyTorch/numpy {m['torch'] / m['numpy']:5.2f}×  PyTorch/numba {m['torch'] / m['numba']:5.2f}×"
                      if "torch" in m else "")  # fmt: skip
                print(f"{cfg.label:<34} {threads} thr  numpy {1e6 * m['numpy']:8.1f} µs  "
                      f"numba {1e6 * m['numba']:8.1f} µs  numba/numpy {m['numba'] / m['numpy']:.3f}{vs}",
                      flush=True)  # fmt: skip


def fits(repeats: int) -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from benchmarks.bench_sklearn import digits
    from gpubp.backend import CPU
    from gpubp.sklearn import MLPClassifier

    X, _, y, _ = digits()
    times: dict[str, list[float]] = {"numpy": [], "numba": []}
    before = CPU.kernels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for seed in range(-1, repeats):  # seed -1: a warm-up fit of each
                for name in times:
                    CPU.kernels = name  # the estimator's network binds its kernels when it is made
                    t0 = time.perf_counter()
                    est = MLPClassifier(device="cpu", random_state=max(seed, 0)).fit(X, y)
                    if seed >= 0:
                        times[name].append((time.perf_counter() - t0) / est.n_iter_)
    finally:
        CPU.kernels = before
    a, b = statistics.median(times["numpy"]), statistics.median(times["numba"])
    print(f"MLPClassifier fit on digits, ms per epoch (median of {repeats}): numpy {1e3 * a:.2f}, "
          f"numba {1e3 * b:.2f}, numba/numpy {b / a:.3f}")  # fmt: skip


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    steps(n)
    fits(max(5, n))
