"""Shared by the tests and the benchmarks. GPU tests carry the ``gpu`` marker and skip with the
reason when no CUDA GPU answers; with GPUBP_REQUIRE_GPU=1 a missing GPU is a failure instead, so a
GPU run cannot turn green by skipping."""

from __future__ import annotations

import os

import pytest

from gpubp.backend import gpu_unavailable_reason


def require_gpu() -> None:
    reason = gpu_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("GPUBP_REQUIRE_GPU") == "1":
        pytest.fail(f"GPUBP_REQUIRE_GPU=1 but no GPU is usable: {reason}")
    pytest.skip(f"no usable GPU: {reason}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        require_gpu()


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """The device name: each test that takes it runs on the CPU and, where one answers, on the GPU."""
    return request.param
