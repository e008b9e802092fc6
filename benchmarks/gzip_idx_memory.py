"""Peak memory of `gpubp train` on a gzipped IDX folder, against the float32 array the images make.

    nice python -m benchmarks.gzip_idx_memory [N]     # N images of 28 × 28 (default 400,000)

Writes an MNIST-like folder (the digits, enlarged to 28 × 28 and shifted by a few pixels, each
with its label; mostly zeros, so it gzips as MNIST does) to a temporary folder, then runs `gpubp
train --epochs 1 --hidden 32 --scale minmax --no-save` in a child process (minmax: a pixel that is
almost always 0 would be scaled to huge values by the standard scaler) and prints the child's peak resident
set (ru_maxrss), the seconds, and the peak as a multiple of N × 784 × 4 bytes. A heavy measurement
on a shared machine: run it by hand, once, not in make test.
"""

from __future__ import annotations

import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from gpubp.data import load_digits


def write_folder(folder: str, n: int) -> None:
    digits = load_digits()
    big = np.kron(digits.X.reshape(-1, 8, 8), np.ones((3, 3)))  # 24 × 24, 0..16
    pictures = np.zeros((len(big), 28, 28), np.uint8)
    pictures[:, 2:26, 2:26] = (big * 15).astype(np.uint8)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(pictures), n)
    images = np.empty((n, 28, 28), np.uint8)
    for start in range(0, n, 50_000):  # shifted by up to 2 pixels, so no two files' rows repeat exactly
        part = slice(start, min(start + 50_000, n))
        dx, dy = rng.integers(-2, 3, 2)
        images[part] = np.roll(pictures[pick[part]], (dy, dx), axis=(1, 2))
    labels = digits.y[pick].astype(np.uint8)
    for name, a in (("train-images-idx3-ubyte.gz", images), ("train-labels-idx1-ubyte.gz", labels)):
        with gzip.open(os.path.join(folder, name), "wb", compresslevel=6) as f:
            f.write(bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes())
            f.write(a.tobytes())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    with tempfile.TemporaryDirectory() as folder:
        write_folder(folder, n)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpubp", "train", "--data", folder, "--epochs", "1", "--hidden", "32",
                        "--scale", "minmax", "--no-save", "--device", "cpu"], check=True)  # fmt: skip
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    as_float32 = n * 784 * 4
    print(f"{n:,} images, {size / 2**20:.1f} MiB gzipped, {as_float32 / 2**30:.2f} GiB as float32: peak RSS "
          f"{peak / 2**30:.2f} GiB = {peak / as_float32:.2f}× the float32 array, {seconds:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
