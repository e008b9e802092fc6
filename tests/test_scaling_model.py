"""The arithmetic of docs/scaling.md's model (scripts/scaling_model.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "scripts" / "scaling_model.py"
_spec = importlib.util.spec_from_file_location("scaling_model", _PATH)
model = importlib.util.module_from_spec(_spec)
sys.modules["scaling_model"] = model  # dataclasses look their module up there
_spec.loader.exec_module(model)


def test_ring_allreduce_cost():
    link = model.Link("test", beta=1e9, alpha=1e-6)
    assert model.ring(link, 1, 1e9) == 0.0
    # 2 ranks: each sends and receives half the bytes twice → P/β, plus 2 latency steps
    assert model.ring(link, 2, 1e9) == pytest.approx(1.0 + 2e-6)
    assert model.ring(link, 8, 8e9) == pytest.approx(2 * 7 / 8 * 8 + 14e-6)


def test_hierarchical_allreduce_adds_the_node_ring_on_an_eighth_of_the_bytes():
    P = 1e8
    expected = model.ring(model.NVLINK, 8, P) + model.ring(model.INFINIBAND, 8, P / 8)
    assert model.allreduce(64, P) == pytest.approx(expected)
    assert model.allreduce(4, P) == model.ring(model.NVLINK, 4, P)


def test_parameter_bytes_and_the_batch_for_90_percent():
    assert model.param_bytes((784, 128, 10)) == 4 * (784 * 128 + 128 + 128 * 10 + 10)
    sizes = (4096, 4096, 4096, 10)
    b = model.batch_for(sizes, 8)
    assert model.efficiency(sizes, b, 8) >= 0.9 > model.efficiency(sizes, b // 2, 8)
