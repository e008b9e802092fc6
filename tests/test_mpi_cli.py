"""``mpiexec -n 2 gpubp train``: rank 0 alone prints and writes, the ranks train as one process
would, a failure on one rank ends the job with its message, Ctrl-C checkpoints and exits 130.
Real processes under the venv's mpiexec, each with a timeout so that a hang fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_mpi import MPIEXEC, interrupt_when, need_mpi

import gpubp
from gpubp import parallel
from gpubp.cli._common import UsageError
from gpubp.cli._ranks import Ranks

pytestmark = pytest.mark.mpi
GPUBP = [sys.executable, "-m", "gpubp"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "GPUBP_DEVICE": "cpu"}
SMALL = ["--epochs", "3", "--hidden", "16", "--dtype", "float64"]


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the job hung for {timeout} s: {exc.stderr}")


def test_two_ranks_print_once_save_one_model_and_train_as_one_process(tmp_path):
    need_mpi()
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = _run([str(MPIEXEC), "-n", "2", *GPUBP, "train", *SMALL, "--save", "m.npz"], tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("train loss") == 1  # one table header: rank 0 alone prints
    assert two.stdout.count("test accuracy:") == 1
    assert two.stdout.count("\n    3  ") == 1  # epoch 3's row, once
    assert "ranks: 2 (MPI)" in two.stdout
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["m.npz"]
    one = _run([*GPUBP, "train", *SMALL, "--save", "m.npz"], tmp_path / "one")
    assert one.returncode == 0, one.stderr
    a, b = gpubp.load(str(tmp_path / "two" / "m.npz")).net, gpubp.load(str(tmp_path / "one" / "m.npz")).net
    np.testing.assert_allclose(a.params.theta, b.params.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-10)


@pytest.mark.parametrize("bad_rank", [0, 1])
def test_a_missing_file_on_one_rank_ends_the_job_with_that_ranks_message(tmp_path, bad_rank):
    need_mpi()
    good = [*GPUBP, "train", *SMALL, "--no-save"]
    bad = [*good, "--data", "missing.npy"]
    ranks = [bad, good] if bad_rank == 0 else [good, bad]
    cmd = [str(MPIEXEC), "-n", "1", *ranks[0], ":", "-n", "1", *ranks[1]]
    t0 = time.monotonic()
    run = _run(cmd, tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr
    assert time.monotonic() - t0 < 30
    assert run.stderr.count("missing.npy") == 1  # one line, from rank 0
    assert ("rank 1: " in run.stderr) == (bad_rank == 1)
    assert "Traceback" not in run.stderr
    assert "train loss" not in run.stdout  # nothing trained


def test_ctrl_c_under_mpiexec_checkpoints_on_rank_0_and_exits_130(tmp_path):
    need_mpi()
    cmd = [str(MPIEXEC), "-n", "2", *GPUBP, "train", "--epochs", "1000", "--hidden", "16", "--save", "m.npz"]
    job, err = interrupt_when(cmd, tmp_path / "m.npz", ENV, cwd=tmp_path)  # m.npz: written after every epoch
    assert job.returncode == 130, err
    assert err.count("gpubp train: interrupted") == 1
    assert "checkpoint saved to m.npz" in err
    done = int(gpubp.load(str(tmp_path / "m.npz")).net.history["epoch"][-1])
    assert 1 <= done < 1000
    # one process continues the 2-rank run to the end of the next epoch
    resumed = _run([*GPUBP, "train", "--resume", "m.npz", "--epochs", str(done + 1), "--save", "r.npz"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming m.npz at epoch {done}" in resumed.stdout
    assert gpubp.load(str(tmp_path / "r.npz")).net.history["epoch"][-1] == done + 1


def test_started_by_mpiexec_without_mpi4py_is_one_line(monkeypatch):
    def missing() -> None:
        raise ImportError(f"distributed training needs mpi4py (No module named 'mpi4py'); {parallel.MPI_HINT}")

    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(parallel, "_mpi", missing)
    with pytest.raises(UsageError, match=r"started by mpiexec as 2 ranks, but distributed training needs mpi4py"):
        Ranks()


def test_one_process_is_one_rank_that_prints_and_writes(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    ranks = Ranks()
    assert (ranks.size, ranks.root, ranks.distributed) == (1, True, False)
    assert ranks.status(130) == 130
    with pytest.raises(ValueError, match="only here"):
        ranks.together(lambda: (_ for _ in ()).throw(ValueError("only here")))


def test_other_commands_and_argument_errors_run_once_under_mpiexec(tmp_path):
    """Only training is distributed: under mpiexec -n 2, info prints once (it printed twice), predict
    writes its file once, and a mistyped option is one line, not one per rank."""
    need_mpi()
    info = _run([str(MPIEXEC), "-n", "2", *GPUBP, "info"], tmp_path)
    assert info.returncode == 0, info.stderr
    assert info.stdout.count("default device:") == 1
    assert "gpubp info: not distributed, runs on rank 0 alone" in info.stderr
    bad = _run([str(MPIEXEC), "-n", "2", *GPUBP, "train", "--lr", "abc"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("argument --lr") == 1
