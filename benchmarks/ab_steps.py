"""Two revisions of gpubp in one process, their CPU training steps timed in alternating blocks.

On a shared machine a process's step time swings with the other work; two revisions timed in turn, block by
block, in one process see the same swings. Each revision's ``gpubp/`` is extracted with ``git archive`` and
imported under its own name (the package imports itself relatively), then each configuration's step
(:class:`gpubp.bench.StepRunner`: backprop and the update, as the benchmark suite times it) runs in ``--pairs``
alternating blocks. Printed per configuration: each side's 10th-percentile block, their ratio, and the median
of the paired after/before ratios::

    python -m benchmarks.ab_steps BEFORE [AFTER] [--kernels numba|numpy] [--pairs 101]

AFTER defaults to the working tree. docs/architecture.md quotes a run of it.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ((64, 32, 10), 32, "relu", "float32", "sgd"),
    ((64, 32, 10), 32, "sigmoid", "float32", "sgd"),
    ((64, 32, 10), 32, "tanh", "float32", "adam"),
    ((64, 32, 10), 32, "relu", "float64", "sgd"),
    ((784, 128, 10), 64, "relu", "float32", "sgd"),
    ((784, 128, 10), 64, "sigmoid", "float32", "adam"),
]


def extract(rev: str | None, folder: Path, name: str) -> None:
    """``gpubp/`` of git revision ``rev`` (None: the working tree) as package ``name`` under ``folder``."""
    if rev is None:
        shutil.copytree(ROOT / "gpubp", folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        return
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gpubp"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / "gpubp").rename(folder / name)


def runner(pkg: str, sizes: tuple[int, ...], batch: int, act: str, dtype: str, opt: str, kernels: str):
    backend, bench = importlib.import_module(f"{pkg}.backend"), importlib.import_module(f"{pkg}.bench")
    optim, settings = importlib.import_module(f"{pkg}.optim"), importlib.import_module(f"{pkg}.settings")
    r = bench.StepRunner(bench.Config("ab", sizes, batch, act, dtype), backend.Device("cpu", np, kernels=kernels))
    if opt == "adam":
        r.opt = optim.make_optimizer(r.net.params, settings.TrainSettings(lr=1e-3, optimizer="adam", weight_decay=1e-4))
    r.steps(50)  # warm-up: kernels compiled, buffers made
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before")
    p.add_argument("after", nargs="?", default=None)
    p.add_argument("--kernels", choices=("numba", "numpy"), default="numba")
    p.add_argument("--pairs", type=int, default=101)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.before, Path(tmp), "gpubp_before")
        extract(args.after, Path(tmp), "gpubp_after")
        sys.path.insert(0, tmp)
        blas = importlib.import_module("gpubp_after.blas")
        for sizes, batch, act, dtype, opt in CONFIGS:
            runs = {side: runner(f"gpubp_{side}", sizes, batch, act, dtype, opt, args.kernels).steps
                    for side in ("before", "after")}  # fmt: skip
            n = 50 if sizes[1] <= 32 else 6  # blocks of about 1.5 ms
            times: dict[str, list[float]] = {"before": [], "after": []}
            with blas.blas_threads(1):
                for k in range(args.pairs):
                    for side in ("before", "after") if k % 2 == 0 else ("after", "before"):
                        t0 = time.perf_counter()
                        runs[side](n)
                        times[side].append((time.perf_counter() - t0) / n)
            p10 = {side: sorted(v)[len(v) // 10] for side, v in times.items()}
            paired = statistics.median(a / b for b, a in zip(times["before"], times["after"]))
            label = f"{'-'.join(map(str, sizes))} B{batch} {act} {dtype} {opt}"
            print(f"{args.kernels} {label:38} before {p10['before'] * 1e6:8.1f} µs  after {p10['after'] * 1e6:8.1f} µs"
                  f"  ratio {p10['after'] / p10['before']:.3f}  paired {paired:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
