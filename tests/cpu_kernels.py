"""The CPU with each of its kernel sets, for tests that run both: the NumPy twins (what a plain install
runs) and the loops Numba compiles (the numba extra, which make test installs)."""

from __future__ import annotations

import numpy as np
import pytest

from gpubp.backend import Device
from gpubp.probe import _numba_status

CPU_NUMPY = Device("cpu", np, kernels="numpy")
CPU_NUMBA = Device("cpu", np, kernels="numba")


def need_numba() -> None:
    """Skip with the reason where Numba does not import (make test installs it, so there it runs)."""
    reason = _numba_status()[1]
    if reason is not None:
        pytest.skip(reason)
