"""The first GPU run, rehearsed here: ``bash scripts/gpu_run.sh --rehearse`` runs the real script from its first
line to its last, every step against the fake CuPy (tests/fake_gpu.py, installed by tests/rehearsal/), with the
same commands, limits, logs, summary and packing, and checks after each step that the plan leaves 25 % of its
limit at a GPU machine's prices for what the step did (tests/rehearsal/headroom.py).

``make test`` runs it on a reduced selection of the same script (GPUBP_RUN_K below: a few GPU tests, two
benchmark rows, one estimator check; about a minute on two cores). The full rehearsal is
``bash scripts/gpu_run.sh --rehearse`` (docs/gpu.md: how long it takes here and what it cannot show)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "rehearsal"))
import headroom  # noqa: E402

STEPS = ["info", "gpu-tests", "train-gpu", "bench", "bench-check", "report", "sklearn-on-gpu"]
# the fake GPU's work is this CPU's, on cores shared with other jobs: each step gets 4 times its limit here (the
# plan is judged by the counts, against the limit itself)
SLOWER = "4"
REDUCED = ("test_gpu_epoch_reads_the_device_once or test_divergence_is_caught_on_the_gpu or "
           "test_fused_softmax_and_loss_sums_on_the_gpu_match_the_cpu or (gpu-tiny and relu and float32) or "
           "(cpu-batch-sweep and B32) or (MLPRegressor and check_estimator_cloneable)")  # fmt: skip


def test_the_gpu_run_rehearsed_passes_from_its_first_line_to_its_last(tmp_path):
    results_md = (ROOT / "benchmarks" / "RESULTS.md").read_bytes()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPUBP_RUN_K": REDUCED,
           "GPUBP_REHEARSE_SLOWER": SLOWER}  # fmt: skip
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), "--rehearse"], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=env)  # fmt: skip
    summary = (out / "summary.txt").read_text()
    assert proc.returncode == 0, summary[-4000:]
    assert summary.startswith("commit ")
    assert (
        "selected: 4 gpu tests; bench rows: 1 gpu, 1 PyTorch, 1 cpu, 0 scikit-learn; 1 estimator tests (1 of "
        "them scikit-learn's checks); second command: 1 checks, 0 docs pages"
    ) in summary
    for step in ["sklearn-checks", "bench-sklearn"]:  # the second command's
        assert f"== {step}: not in the default run" in summary
    for step in STEPS:
        assert re.search(rf"^-- {step}: exit 0 after \d+ s$", summary, flags=re.M), step
        verdict = re.search(rf"^rehearsal: {step}: ~\d+ s on the GPU machine of its \d+ s limit \((\d+)%\): fits$",
                            summary, flags=re.M)  # fmt: skip
        assert verdict is not None, step
        assert int(verdict.group(1)) <= 75, step
    assert summary.rstrip().endswith("gpu_run: exit 0")
    assert sorted(os.listdir(out)) == ["run.tgz", "summary.txt"]
    with tarfile.open(out / "run.tgz") as tar:
        names = set(tar.getnames())
        report = tar.extractfile("run/RESULTS.md").read().decode()
    assert {f"run/logs/{s}.txt" for s in ["plan", *STEPS]} <= names
    assert {"run/results.json", "run/RESULTS.md", "run/throughput.png"} <= names
    assert "gpu:0" in report  # the (fake) GPU's row, written into the archive...
    assert (ROOT / "benchmarks" / "RESULTS.md").read_bytes() == results_md  # ...not over the checkout's


def test_the_default_plan_leaves_25_percent_of_every_limit_at_the_rehearsals_prices():
    """Before anything runs: the whole default plan (every test and row selected), each step priced from its
    counts at what the full rehearsal priced each item at (headroom.PLAN_PRICES), leaves 25 % of each limit;
    and the second command's plan too."""
    for steps in ["", "sklearn-checks,bench-sklearn"]:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), "--dry-run"], capture_output=True,
                              text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "PYTHON": sys.executable, "GPUBP_RUN_STEPS": steps})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        priced = headroom.plan(proc.stdout)
        want = ["sklearn-checks", "bench-sklearn"] if steps else STEPS
        assert [step for step, _, _ in priced] == want
        for step, seconds, limit in priced:
            assert seconds > 0, step
            assert seconds <= 0.75 * limit, (step, seconds, limit)
