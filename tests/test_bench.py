"""``gpubp bench``'s figures: never above the GEMM ceiling, and a busy machine is said to be one."""

from __future__ import annotations

import itertools

import pytest

from gpubp import backend, bench, blas

CFG = bench.Config("tiny", (8, 4, 2), 4)


@pytest.fixture
def timings(monkeypatch):
    """Step times per round and GEMM ceilings chosen by the test, instead of the machine's."""

    def install(step_seconds: list[float], gemm_rate: float) -> None:
        times = itertools.cycle(step_seconds)
        monkeypatch.setattr(bench, "_time", lambda fn, seconds: (1, next(times)))
        monkeypatch.setattr(bench, "gemm_rate", lambda cfg, device, seconds=0.3: gemm_rate)

    return install


def _flops_per_s(step_s: float) -> float:
    return blas.step_flops(CFG.sizes, CFG.batch) / step_s


def test_a_quiet_measurement_gives_its_fraction(timings):
    timings([1e-3, 1.05e-3, 1.1e-3], gemm_rate=2 * _flops_per_s(1e-3))
    row = bench.measure(CFG, backend.CPU, rounds=3)
    assert row["fraction_of_gemm"] == pytest.approx(0.5)
    assert not row["noisy"]
    assert bench.noise_note([row]) is None
    assert bench.format_table([row]).splitlines()[1].endswith(" 50%")


def test_a_step_faster_than_its_gemms_prints_no_figure(timings):
    # the 205 % once printed on a busy machine: the ceiling was timed in a busy spell
    timings([1e-3, 1e-3, 1e-3], gemm_rate=_flops_per_s(1e-3) / 2.05)
    row = bench.measure(CFG, backend.CPU, rounds=3)
    assert row["fraction_of_gemm"] is None
    assert row["noisy"]
    line = bench.format_table([row]).splitlines()[1]
    assert "%" not in line
    assert line.endswith("- noisy")
    assert bench.noise_note([row]).startswith("too noisy to measure")


def test_rounds_that_disagree_are_called_noisy(timings):
    timings([1e-3, 2e-3, 1e-3], gemm_rate=10 * _flops_per_s(1e-3))
    row = bench.measure(CFG, backend.CPU, rounds=3)
    assert row["noisy"]
    assert "up to 100 %" in bench.noise_note([row])
