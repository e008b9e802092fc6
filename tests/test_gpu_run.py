"""scripts/gpu_run.sh: its plan fits one device command, and scripts/check_bench.py fails a run that measured
nothing or nonsense. (The run itself needs a GPU; its steps' machinery is tests/test_gpu_run_steps.py, the whole
run rehearsed against the fake CuPy tests/test_gpu_rehearsal.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_run.sh"
STEPS = ["info", "gpu-tests", "train-gpu", "bench", "bench-check", "report", "sklearn-on-gpu"]
SECOND = ["sklearn-checks", "bench-sklearn"]  # the second command's steps (GPUBP_RUN_STEPS=...)


def dry_run(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable, **env}, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def plan() -> str:
    proc = dry_run()
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def limits_of(listing: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^== (\S+) \(limit (\d+)s\): ", listing, flags=re.M)}


def test_dry_run_shows_steps_limits_and_files_and_the_limits_fit_560_s(plan):
    limits = limits_of(plan)
    assert list(limits) == STEPS
    for step in SECOND:  # listed, not counted
        assert f"== {step}: not in the default run (the second command: GPUBP_RUN_STEPS={','.join(SECOND)})" in plan
    plan_s = int(re.search(r"^plan \(collecting the tests above\): (\d+) s$", plan, flags=re.M).group(1))
    total = int(re.search(r"^total: (\d+) s of 560 s$", plan, flags=re.M).group(1))
    assert total == plan_s + sum(limits.values())
    assert total <= 560  # a remote command may run 600 s: 40 s for start-up, packing and the transfer
    files = re.search(r"^files returned in \$OUT \(gpu-run\): (.+)$", plan, flags=re.M).group(1).split()
    assert files == ["summary.txt", "run.tgz"]  # the logs, results.json, RESULTS.md and the plot in the archive
    # the budgets follow what is selected: one second a GPU test, ~3 s a GPU benchmark row, ~10 s a CPU one
    n_gpu = int(re.search(r"selected: (\d+) gpu tests", plan).group(1))
    assert limits["gpu-tests"] == 45 + n_gpu
    rows = re.search(r"bench rows: (\d+) gpu, (\d+) PyTorch, (\d+) cpu, (\d+) scikit-learn", plan).groups()
    n_gpu_rows, n_torch, n_cpu, n_sk = map(int, rows)
    assert limits["bench"] == 15 + 4 * n_gpu_rows + 2 * n_torch + 12 * n_cpu  # no scikit-learn row in it
    assert n_gpu_rows >= 16
    assert n_cpu >= 6
    assert n_sk == 2
    assert not (ROOT / "gpu-run").exists(), "a dry run writes nothing"


def test_a_plan_over_the_total_is_refused_before_anything_runs():
    proc = dry_run(GPUBP_RUN_TOTAL_S="300")
    assert proc.returncode == 2
    assert re.search(r"the step limits add up to \d+ s, over the 300 s a run may take", proc.stderr)
    assert "==" not in proc.stdout  # no step listed as if it would run


def test_the_info_step_fails_on_a_crash_or_without_a_cupy_wheel(plan):
    info = plan[plan.index("== info") : plan.index("== gpu-tests")]
    assert "set -eo pipefail" in info  # each command's status counts, not only the last grep's
    assert "gpu_unavailable_reason" in info  # no GPU: the step fails
    assert "grep -qiE '^cupy-cuda1[23]x ' <<< \"$packages\"" in info  # the wheel's name, in pip's whole list


def _row(device: str, kind: str, config: str, rate: float = 1e5, fraction: float = 0.5) -> dict:
    return {"extra_info": {"device": device, "kind": kind, "config": config, "gpubp_samples_per_s": rate,
                           "gemm_rate": 1e12, "fraction_of_gemm": fraction}}  # fmt: skip


def _good_run() -> dict:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_training import ALL

    rows = [_row("gpu:0", c.name, c.label, 1e6) for c in ALL if c.dtype == "float32"]
    rows += [_row("cpu", c.name, c.label, 1e4) for c in ALL if c.name in ("large", "batch-sweep")]
    rows.append({"extra_info": {"sklearn_fit": {"gpubp gpu": {"accuracy": 0.97}}}})
    return {"machine_info": {"devices": {"gpu": {"available": True}}}, "benchmarks": rows}


def check(tmp_path: Path, data: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check_bench.py"), str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_check_bench_passes_a_plausible_run(tmp_path):
    proc = check(tmp_path, _good_run())
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda d: d["machine_info"]["devices"].update(gpu={"available": False, "reason": "no driver"}),
         "no GPU answered during the run: no driver"),
        (lambda d: d["benchmarks"].pop(0), "on the GPU is missing"),
        (lambda d: d["benchmarks"][0]["extra_info"].update(gpubp_samples_per_s=float("nan")),
         "gpubp_samples_per_s is nan"),
        (lambda d: d["benchmarks"][1]["extra_info"].update(fraction_of_gemm=3.0), "its timing missed work"),
        (lambda d: [b["extra_info"].update(gpubp_samples_per_s=1.0) for b in d["benchmarks"]
                    if b["extra_info"].get("device") == "gpu:0"], "is not faster than the CPU"),
        (lambda d: d["benchmarks"].pop(), "the scikit-learn fit comparison is missing"),
    ],
    ids=["no-gpu", "row-skipped", "nan", "faster-than-gemm", "gpu-slower", "no-sklearn"],
)  # fmt: skip
def test_check_bench_fails_a_run_that_measured_nothing_or_nonsense(tmp_path, spoil, said):
    data = _good_run()
    spoil(data)
    proc = check(tmp_path, data)
    assert proc.returncode == 1
    assert said in proc.stderr


def test_check_bench_expects_the_rows_the_run_selected(tmp_path):
    """--selected: pytest's list of the selected rows (a reduced selection, a second run of some rows); a
    selected row that did not run still fails, and a GPU float64 row (skipped on a GPU) is not expected."""
    data = _good_run()
    tiny = "benchmarks/bench_training.py::test_gpubp_step[gpu-tiny:64-32-10-B32-relu-float32]"
    listing = tmp_path / "rows.txt"
    listing.write_text(tiny + "\n" + tiny.replace("float32", "float64") + "\n")
    data["benchmarks"] = [b for b in data["benchmarks"] if b["extra_info"].get("config") == "64-32-10 B32 relu float32"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    args = [sys.executable, str(ROOT / "scripts" / "check_bench.py"), str(tmp_path / "results.json")]
    proc = subprocess.run([*args, "--selected", str(listing)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listing.write_text(tiny + "\n" + tiny.replace("tiny:64-32-10-B32", "small:784-128-10-B64") + "\n")
    proc = subprocess.run([*args, "--selected", str(listing)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "row small 784-128-10 B64 relu float32 on the GPU is missing" in proc.stderr


def test_a_run_of_some_steps_counts_only_their_limits(plan):
    """GPUBP_RUN_STEPS (a second run of the steps that failed): the others are listed as not selected, and the
    total is the plan's collection and the selected steps' limits."""
    proc = dry_run(GPUBP_RUN_STEPS="info,sklearn-on-gpu")
    assert proc.returncode == 0, proc.stderr
    limits = limits_of(proc.stdout)
    assert list(limits) == ["info", "sklearn-on-gpu"]
    assert "== bench: not selected (GPUBP_RUN_STEPS=info,sklearn-on-gpu)" in proc.stdout
    assert "== bench-sklearn: not selected (GPUBP_RUN_STEPS=info,sklearn-on-gpu)" in proc.stdout
    plan_s = int(re.search(r"^plan \(collecting the tests above\): (\d+) s$", proc.stdout, flags=re.M).group(1))
    total = int(re.search(r"^total: (\d+) s of 560 s$", proc.stdout, flags=re.M).group(1))
    assert total == plan_s + sum(limits.values())


def test_the_second_command_runs_what_the_default_run_leaves_out_and_fits(plan):
    """The default run's estimator step and the second command's together are every test of test_sklearn.py
    (the float32 estimators' checks in the first, the float64 ones' in the second) and the docs' estimator
    pages; the second command's bench step is the scikit-learn fit rows, checked."""
    proc = dry_run(GPUBP_RUN_STEPS=",".join(SECOND))
    assert proc.returncode == 0, proc.stderr
    limits = limits_of(proc.stdout)
    assert list(limits) == SECOND
    plan_s = int(re.search(r"^plan \(collecting the tests above\): (\d+) s$", proc.stdout, flags=re.M).group(1))
    total = int(re.search(r"^total: (\d+) s of 560 s$", proc.stdout, flags=re.M).group(1))
    assert total == plan_s + sum(limits.values()) <= 560
    assert "-k 'sklearn' --benchmark-json=" in proc.stdout
    assert "scripts/check_bench.py" in proc.stdout
    m = re.search(r"(\d+) estimator tests \((\d+) of them scikit-learn's checks\); second command: (\d+) checks, "
                  r"(\d+) docs pages", plan)  # fmt: skip
    n_default, n_checks, n_checks2, n_pages = map(int, m.groups())
    assert n_checks == n_checks2 > 0  # two estimators of each dtype: half the checks each
    assert n_pages == 2
    listing = subprocess.run([sys.executable, "-m", "pytest", "tests/test_sklearn.py", "--collect-only", "-q",
                              "-p", "no:randomly", "-p", "no:cacheprovider"], capture_output=True, text=True,
                             timeout=300, cwd=ROOT).stdout  # fmt: skip
    assert n_default + n_checks2 == listing.count("tests/test_sklearn.py::")
