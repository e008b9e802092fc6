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


def test_the_long_runs_finding_a_carriage_return_inside_a_csv_line_is_one_line(tmp_path):
    # found by the 10,000-case run: the csv module's own error (not a ValueError) escaped as a traceback
    import pytest

    from gpubp.data import DataError, load_data

    (tmp_path / "r.csv").write_bytes(b"a,b,label\n1.0,2\r.0,0\n3.0,4.0,1\n")
    with pytest.raises(DataError, match=r"r\.csv: not a CSV file gpubp can read \(new-line character seen"):
        load_data(str(tmp_path / "r.csv"))
