"""The short fuzzing run of every loader (tests/fuzz_files.py; the longer run's figures are in
docs/testing.md): every mutated, truncated or inflated file ends in a result or a one-line refusal,
in a child process whose address space is limited."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LIMIT_MB = 2048


def test_every_loader_survives_the_short_fuzzing_run():
    harness = os.path.join(os.path.dirname(__file__), "fuzz_files.py")
    p = subprocess.run([sys.executable, harness, "--examples", "800", "--limit-mb", str(LIMIT_MB)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    assert report["failures"] == [], json.dumps(report["failures"][:3], indent=1)
    assert report["peak_rss_mb"] < LIMIT_MB
    for fmt, outcomes in report["outcomes"].items():  # the mutations reach both ends of every loader
        assert outcomes.get("result", 0) > 0, fmt
        assert len(outcomes) > 2, (fmt, outcomes)
    assert len(report["outcomes"]) == 11
