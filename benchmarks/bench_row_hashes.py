"""The row hashes with which a model recognises its held-out and training rows (gpubp.data.row_hashes):
1,000,000 rows × 20 features, and 100,000 rows × 784 (MNIST's width). Run with
``.venv/bin/python -m pytest benchmarks/bench_row_hashes.py --benchmark-only``."""

from __future__ import annotations

import numpy as np
import pytest

from gpubp.data import row_hashes


@pytest.mark.parametrize(("rows", "width"), [(1_000_000, 20), (100_000, 784)])
def test_row_hashes(benchmark, rows, width):
    X = np.random.default_rng(0).standard_normal((rows, width), dtype=np.float32)
    h = benchmark(row_hashes, X)
    assert len(h) == rows
