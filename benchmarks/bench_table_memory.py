"""Peak memory of `gpubp train` on a big table with categories, against the numeric matrix it becomes.

    python benchmarks/bench_table_memory.py [ROWS] [--keep FILE]

Writes a CSV of ROWS (default 1,000,000) rows × 50 feature columns: 45 numbers (1 % of their cells
missing) and 5 text categories of 5 levels each, plus a class label; then runs
``gpubp train --data FILE --label-column y --epochs 1 --no-save --quiet`` in a fresh process and
reads its peak resident set (``ru_maxrss`` of the child). The numeric matrix the table becomes is
ROWS × (45 numbers + 45 indicators + 25 one-hot columns) float64, the X the model trains from; the
figure is peak RSS / its size, and the same for a process that only imports gpubp's command and
pandas (what any run costs before it reads a byte).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_table(path: str, rows: int, seed: int = 0) -> int:
    """The CSV; returns the width of the numeric matrix it becomes."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 45)).round(4)
    numbers[rng.random((rows, 45)) < 0.01] = np.nan
    frame = pd.DataFrame(numbers, columns=[f"n{j}" for j in range(45)])
    levels = np.array(["alpha", "bravo", "charlie", "delta", "echo"])
    for j in range(5):
        frame[f"c{j}"] = levels[rng.integers(0, 5, rows)]
    frame["y"] = (np.nan_to_num(numbers[:, 0]) + (frame["c0"] == "alpha") > 0.5).astype(int)
    frame.to_csv(path, index=False, chunksize=100_000)
    return 45 + 45 + 25


def peak_rss(cmd: list[str]) -> tuple[int, float]:
    """(peak RSS in bytes of ``cmd`` run as a fresh child, seconds)."""
    code = (
        "import resource, subprocess, sys, json, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:])\n"
        "print(json.dumps([r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, "
        "time.perf_counter() - t]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True)
    status, rss, seconds = json.loads(out.stdout.strip().splitlines()[-1])
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {status}: {out.stderr[-2000:]}")
    return int(rss), float(seconds)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    with tempfile.TemporaryDirectory() as folder:
        path = keep or os.path.join(folder, "big.csv")
        t0 = time.perf_counter()
        if not os.path.exists(path):
            width = write_table(path, rows)
        else:
            width = 115
        written = time.perf_counter() - t0
        matrix = rows * width * 8
        base, _ = peak_rss([sys.executable, "-c", "import gpubp.cli, pandas, numpy"])
        train = [sys.executable, "-m", "gpubp", "train", "--data", path, "--label-column", "y", "--epochs", "1",
                 "--no-save", "--quiet", "--device", "cpu"]  # fmt: skip
        peak, seconds = peak_rss(train)
        result = {"rows": rows, "file MiB": os.path.getsize(path) / 2**20, "matrix width": width,
                  "matrix MiB (float64)": matrix / 2**20, "peak RSS MiB": peak / 2**20,
                  "peak / matrix": peak / matrix, "imports-only RSS MiB": base / 2**20,
                  "(peak - imports) / matrix": (peak - base) / matrix, "train s": seconds,
                  "write s": written}  # fmt: skip
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
