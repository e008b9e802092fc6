"""Real MPI ranks: ``mpiexec -n 2`` from the venv runs tests/mpi_train.py (1 BLAS thread per rank);
every run has a timeout, so a hang fails the test instead of blocking the suite."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer

pytestmark = pytest.mark.mpi
SCRIPT = Path(__file__).with_name("mpi_train.py")
MPIEXEC = Path(sys.executable).with_name("mpiexec")
sys.path.insert(0, str(SCRIPT.parent))
import mpi_train  # noqa: E402  (the script's data and settings, for the single-process twin)


def need_mpi() -> None:
    """Skip, saying what to install, unless mpi4py imports and the venv has its mpiexec."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed: make install (the 'mpi' extra) or pip install 'gpubp[mpi]'")
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec beside {sys.executable}: pip install 'gpubp[mpi]' brings MPICH's")


def mpiexec(mode: str, out: Path, ranks: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    need_mpi()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(SCRIPT), mode, str(out)]
    if ranks == 1:
        cmd = cmd[3:]  # a plain process: distributed=True with one rank
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{mode}: the MPI job hung for {timeout} s: {exc.stderr}")


def interrupt_when(cmd: list[str], ready: Path, env: dict[str, str], cwd: Path | None = None,
                   timeout: float = 60) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """Start ``cmd``, send it Ctrl-C (SIGINT) once the file ``ready`` exists, wait for it to end:
    (the finished job, its stderr). A job that never gets ready or hangs after Ctrl-C fails the test."""
    import signal
    import time

    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, f"{ready.name} never appeared"
            time.sleep(0.05)
        job.send_signal(signal.SIGINT)
        _, err = job.communicate(timeout=timeout)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
            pytest.fail("the MPI job hung after Ctrl-C")
    return job, err


def single(epochs: int = 3) -> gpubp.MLP:
    X, y = mpi_train.problem()
    net = mpi_train.new_net()
    net.fit(X, y, epochs=epochs, **mpi_train.SETTINGS)
    return net


def test_two_ranks_equal_one_process_and_each_other(tmp_path):
    run = mpiexec("train", tmp_path)
    assert run.returncode == 0, run.stderr
    a, b = np.load(tmp_path / "theta0.npy"), np.load(tmp_path / "theta1.npy")
    np.testing.assert_array_equal(a, b)
    one = single()
    np.testing.assert_allclose(a, one.params.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "loss.npy"), one.history["train_loss"], rtol=1e-10)


def test_distributed_in_a_plain_process_is_one_rank(tmp_path):
    run = mpiexec("train", tmp_path, ranks=1)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "theta0.npy"), single().params.theta)


def test_bad_data_on_one_rank_ends_the_job_with_its_message(tmp_path):
    run = mpiexec("bad", tmp_path, timeout=60)
    assert run.returncode == 2
    assert "error: rank 1: X contains NaN" in run.stderr  # what rank 0 says
    assert run.stderr.count("X contains NaN") == 2  # and rank 1 itself


def test_different_row_counts_are_refused_on_every_rank(tmp_path):
    run = mpiexec("shapes", tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("the ranks differ in training rows (rank 0: 101, rank 1: 100)") == 2


def test_an_uncaught_error_on_one_rank_aborts_the_job_instead_of_hanging(tmp_path):
    run = mpiexec("crash", tmp_path, timeout=60)
    assert run.returncode != 0
    assert "rank 1 lost its data" in run.stderr


def test_resume_across_rank_counts_2_then_1_then_2(tmp_path):
    run = mpiexec("start", tmp_path)  # 2 ranks: into epoch 2, stopped after its 3rd batch
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "state.pkl", "rb") as f:
        theta, state = pickle.load(f)
    X, y = mpi_train.problem()
    net = mpi_train.new_net()
    net.params.theta[...] = theta
    trainer = Trainer(net, X, y, optimizer="adam", lr=1e-2, batch_size=16)
    trainer.load_state_dict(state)
    trainer.run(3)  # 1 rank, here
    with open(tmp_path / "state.pkl", "wb") as f:
        pickle.dump((net.params.theta.copy(), trainer.state_dict()), f)
    run = mpiexec("finish", tmp_path)  # 2 ranks again, to epoch 5
    assert run.returncode == 0, run.stderr
    a, b = np.load(tmp_path / "theta0.npy"), np.load(tmp_path / "theta1.npy")
    np.testing.assert_array_equal(a, b)
    straight = mpi_train.new_net()
    Trainer(straight, X, y, optimizer="adam", lr=1e-2, batch_size=16).run(5)
    np.testing.assert_allclose(a, straight.params.theta, rtol=1e-10, atol=1e-12)


def test_mpiexec_is_the_venvs():
    need_mpi()
    assert shutil.which("mpiexec", path=str(MPIEXEC.parent)) == str(MPIEXEC)


def test_the_launchers_size_and_local_ranks_are_seen(tmp_path):
    run = mpiexec("launched", tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    seen = [np.load(tmp_path / f"launched{r}.npy").tolist() for r in range(2)]
    assert seen == [[2, 2, 0], [2, 2, 1]]  # launched_size, world size, local rank (one machine)


def test_more_ranks_than_gpus_on_a_machine_is_one_error_on_every_rank(tmp_path):
    run = mpiexec("gpus", tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("runs 2 ranks but they see 1 GPU(s): start at most 1 ranks per machine") == 2


def test_nccl_missing_is_one_clear_line_on_every_rank(tmp_path):
    """Checked inside the agreed set-up: no rank fails alone while the others wait for NCCL's unique id."""
    run = mpiexec("no-nccl", tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("training a GPU network across 2 ranks needs NCCL: CuPy could not load") == 2


def test_each_rank_picks_its_gpu_before_building_anything(tmp_path):
    """gpubp train under mpiexec builds on parallel.rank_device(--device): "gpu" (or the default, where a GPU
    answers) is this rank's GPU, so no rank first builds on gpu:0; "cpu" and an explicit "gpu:N" stay."""
    run = mpiexec("rank-device", tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    chosen = [np.load(tmp_path / f"chosen{r}.npy").tolist() for r in range(2)]
    assert chosen == [["gpu:0", "gpu:0", "gpu:0", "cpu", "gpu:0"], ["gpu:1", "gpu:1", "gpu:1", "cpu", "gpu:0"]]


def test_ranks_given_their_own_gpu_by_the_launcher_take_it(tmp_path):
    """CUDA_VISIBLE_DEVICES set per rank (one GPU each, the launcher's mapping): each rank trains on the one
    GPU it sees, its gpu:0, instead of being refused for a local rank past its device count."""
    run = mpiexec("visible", tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [np.load(tmp_path / f"moved{r}.npy").tolist() for r in range(2)] == [["gpu:0"], ["gpu:0"]]


def test_ctrl_c_to_mpiexec_stops_every_rank_after_the_same_batch_with_status_130(tmp_path):

    need_mpi()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, str(SCRIPT), "interrupt", str(tmp_path)]
    job, err = interrupt_when(cmd, tmp_path / "started", env)
    assert job.returncode == 130, err
    np.testing.assert_array_equal(np.load(tmp_path / "theta0.npy"), np.load(tmp_path / "theta1.npy"))
    where = [np.load(tmp_path / f"where{r}.npy").tolist() for r in range(2)]
    assert where[0] == where[1]
    assert where[0][0] >= 1  # stopped in or after epoch 2, mid-epoch or at its end
