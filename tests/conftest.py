"""Test fixtures; the GPU marker's skip and the ``device`` fixture live in the top conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_kernels import CPU_NUMBA, CPU_NUMPY, need_numba

from gpubp.backend import Device


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(params=["numpy", "numba"])
def cpu(request: pytest.FixtureRequest) -> Device:
    """A CPU device running the NumPy twins, then one running the compiled loops."""
    if request.param == "numba":
        need_numba()
        return CPU_NUMBA
    return CPU_NUMPY
