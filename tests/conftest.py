"""Test fixtures; the GPU marker's skip and the ``device`` fixture live in the top conftest.py."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
