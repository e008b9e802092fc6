"""scripts/gpu_run.sh's machinery, on this machine: the info step's package check, collection under
filterwarnings = error, a step's time limit and process group, and what $OUT holds at every moment
(issue 27, findings 1, 5 and 7). The whole run, rehearsed, is tests/test_gpu_rehearsal.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_run.sh"
# one GPU test, one estimator test, one GPU benchmark row: every pytest step selects something, and little
SMALL_K = (
    "test_gpu_epoch_reads_the_device_once or (MLPRegressor and check_estimator_cloneable) or "
    "(gpu-tiny and relu and float32)"
)


def rehearse(out: Path, steps: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--rehearse"], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPUBP_RUN_STEPS": steps,
                               "GPUBP_RUN_K": SMALL_K, **env}, cwd=ROOT)  # fmt: skip


def test_a_warning_at_collection_is_shown_not_fatal_and_the_info_step_passes(tmp_path):
    """filterwarnings = error: an import-time DeprecationWarning of a library in the GPU machine's versions
    made collection fail before any step, with nothing in $OUT. The plan says so, and the steps run with such
    warnings shown."""
    proc = rehearse(tmp_path / "out", "info", GPUBP_REHEARSE_WARN_ON_IMPORT="sklearn.neural_network")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "plan: collection failed on a warning (DeprecationWarning" in summary, summary
    assert "-W default::DeprecationWarning" in summary
    assert "selected: 1 gpu tests;" in summary  # collected again, with the warning shown
    assert proc.returncode == 0, summary
    # the info step: `pip list | grep -q` under pipefail failed it (grep leaves at the first match, pip dies of
    # the closed pipe: seen 24 times of 24); pip's list is read whole, then searched
    assert "-- info: exit 0 after" in summary
    assert "cupy-cuda1" in summary  # the wheel's line, as pip lists it


def test_a_selection_that_cannot_be_collected_fails_its_step_and_the_rest_run(tmp_path):
    proc = rehearse(tmp_path / "out", "info,bench,sklearn-on-gpu", GPUBP_RUN_K="test_gpu_epoch_reads_the_device_once")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    # (the bench rows too; the second command's selections, empty as well, are not this run's)
    assert "gpu_run: pytest could not collect: bench sk_tests (run/logs/plan.txt)" in summary
    assert "no tests collected" in summary  # the reason, from pytest
    assert "-- info: exit 0" in summary  # the others ran
    assert "== sklearn-on-gpu: not run, its tests could not be collected" in summary
    assert "== bench-sklearn: not selected (GPUBP_RUN_STEPS=info,bench,sklearn-on-gpu)" in summary
    assert proc.returncode == 1
    with tarfile.open(tmp_path / "out" / "run.tgz") as tar:
        assert "run/logs/plan.txt" in tar.getnames()


def run_step(tmp_path: Path, limit: int, command: str) -> tuple[str, float]:
    """scripts/gpu_run.sh's step(), sourced, on one command; (summary, seconds)."""
    out, work = tmp_path / "out", tmp_path / "work"
    script = (f'source "{SCRIPT}"; DRY=0 REHEARSE=0 OUT="{out}" WORK="{work}" LOGS="{work}/run/logs" status=0; '
              f'mkdir -p "$LOGS" "$OUT"; : > "$OUT/summary.txt"; step demo {limit} bash -c \'{command}\'; '
              f'echo "status $status"')  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    return (out / "summary.txt").read_text(), time.monotonic() - t0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")  # a zombie is dead


@pytest.mark.parametrize("case", ["ignores-term", "left-behind"])
def test_nothing_a_step_started_outlives_it(tmp_path, case):
    """A CLI subprocess or loky's workers must not hold the GPU into the next step: one that ignores SIGTERM
    past the limit is killed (timeout -k), and one the step left running is killed with the step's group."""
    pidfile = tmp_path / "child"
    if case == "ignores-term":  # the step hangs past its limit; its child ignores TERM (inherited by sleep)
        command = f'trap "" TERM; sleep 120 & echo $! > {pidfile}; wait'
    else:  # the step ends at once and leaves a child behind
        command = f"sleep 120 & echo $! > {pidfile}; exit 0"
    summary, seconds = run_step(tmp_path, 1, command)
    pid = int(pidfile.read_text())
    try:
        assert not alive(pid), f"the step's child {pid} outlived it"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if case == "ignores-term":
        assert "-- demo: killed at its limit of 1 s" in summary
        assert seconds < 30
    else:
        assert "-- demo: exit 0" in summary


def test_out_holds_at_most_the_summary_and_one_archive_at_every_moment(tmp_path):
    """$OUT is watched while a rehearsal runs, then the run is killed (SIGKILL, as a remote command past its
    time is): at every look only summary.txt and run.tgz, the summary there from the first look, and what was
    packed last is a whole archive with the logs of the steps that ended."""
    out = tmp_path / "out"
    proc = subprocess.Popen(["bash", str(SCRIPT), "--rehearse"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPUBP_RUN_K": SMALL_K,
                                 "GPUBP_RUN_STEPS": "info,train-gpu"}, cwd=ROOT, start_new_session=True)  # fmt: skip
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if out.exists():
                names = set(os.listdir(out))
                seen |= names
                assert names <= {"summary.txt", "run.tgz"}, names
                summary = out / "summary.txt"  # (absent only in the instant between mkdir and its creation)
                if summary.exists() and "train-gpu" in summary.read_text():
                    break  # the train step has started: kill the run in it
            time.sleep(0.02)
        else:
            pytest.fail("the rehearsal never reached train-gpu")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert set(os.listdir(out)) == {"summary.txt", "run.tgz"}
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("commit ")
    assert "-- info: exit 0" in summary
    with tarfile.open(out / "run.tgz") as tar:
        names = tar.getnames()
    assert "run/logs/plan.txt" in names
    assert "run/logs/info.txt" in names
