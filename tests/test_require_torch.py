"""GPUBP_REQUIRE_TORCH=1 (set by CI) turns a missing PyTorch from a skip of the comparison into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMPARISON = Path(__file__).with_name("test_vs_pytorch.py")


@pytest.mark.parametrize(
    ("require", "rc", "says"),
    [
        ("0", pytest.ExitCode.NO_TESTS_COLLECTED, "SKIPPED"),
        ("1", pytest.ExitCode.INTERRUPTED, "GPUBP_REQUIRE_TORCH=1 but"),
    ],
)
def test_a_missing_torch_skips_or_fails_as_asked(require, rc, says, tmp_path):
    (tmp_path / "torch.py").write_text('raise ImportError("hidden for this test")\n')  # shadows the real one
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GPUBP_REQUIRE_TORCH": require}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(COMPARISON), "-q", "-rs", "-p", "no:cacheprovider"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == rc, proc.stdout + proc.stderr
    assert says in proc.stdout
    assert "PyTorch is not installed (hidden for this test)" in proc.stdout
