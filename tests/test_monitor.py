"""TensorBoard logs and per-layer gradient statistics, read back with TensorBoard's own event reader and
checked against ``history`` and ``net.trace``; the epoch's one host read still holds."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from test_cli import assert_one_line_error, run, run_process

import gpubp
from gpubp.monitor import GradientStats, TensorBoard
from gpubp.training import Trainer

pytest.importorskip("tensorboardX", reason="needs the tensorboard extra")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="needs the tensorboard extra"
)


def events(logdir):
    """{tag: [(step, value), ...]} of every scalar in ``logdir``, and the histograms' tags and steps."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    histograms = {t: [e.step for e in acc.Histograms(t)] for t in acc.Tags()["histograms"]}
    return scalars, histograms


def summary(trace):
    """Per layer: ‖∂L/∂W_l‖, ‖∂L/∂b_l‖, mean |Δ_l| of one ``net.trace``."""
    return {"W": [float(np.linalg.norm(dW)) for dW in trace["dW"]],
            "b": [float(np.linalg.norm(db)) for db in trace["db"]],
            "delta": [float(np.abs(d).mean()) for d in trace["delta"][1:]]}  # fmt: skip


def values(scalars, tag):
    return [v for _, v in scalars[tag]]


@pytest.fixture
def data(rng):
    X = rng.normal(size=(100, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)


def test_every_epoch_is_logged_as_history_has_it(tmp_path, data):
    X, y = data
    net = gpubp.MLP([5, 8, 3], "tanh", device="cpu", seed=0)
    with TensorBoard(tmp_path / "run") as board:
        history = net.fit(X, y, epochs=4, batch_size=10, lr=0.05, validation_data=(X[:30], y[:30]), callback=board)
    scalars, histograms = events(tmp_path / "run")
    assert [s for s, _ in scalars["loss/train"]] == [1, 2, 3, 4]
    for tag, key in [("loss/train", "train_loss"), ("loss/validation", "val_loss"),
                     ("validation/accuracy", "val_accuracy"), ("samples_per_s", "samples_per_s")]:  # fmt: skip
        np.testing.assert_allclose(values(scalars, tag), history[key], rtol=1e-6)  # stored as float32
    assert values(scalars, "lr") == pytest.approx([0.05] * 4)
    assert histograms == {}  # no gradients asked for
    assert not any(t.startswith(("gradients/", "delta/")) for t in scalars)


def test_regression_logs_r2(tmp_path, rng):
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    net = gpubp.MLP([3, 6, 1], loss="mse", device="cpu", seed=0)
    with TensorBoard(tmp_path / "r") as board:
        history = net.fit(X, y[:, None], epochs=2, batch_size=20, lr=0.01, validation_data=(X, y[:, None]),
                          callback=board)  # fmt: skip
    scalars, _ = events(tmp_path / "r")
    np.testing.assert_allclose(values(scalars, "validation/r2"), history["val_r2"], rtol=1e-6)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_gradient_norms_and_deltas_are_those_of_net_trace(tmp_path, data, activation, cpu):
    # full batches: each epoch's one gradient is trace's at the weights the epoch started from (with both
    # kernel sets: the NumPy twins add the decay λW into the gradient buffer in the update, the loops do not)
    X, y = data
    net = gpubp.MLP([5, 7, 6, 3], activation, device=cpu, dtype="float64", seed=1)
    trainer = Trainer(net, X, y, batch_size=len(X), lr=0.5, weight_decay=0.01)  # decay is not part of ∂L/∂W
    board = TensorBoard(tmp_path / "g", gradients=True)
    want = []
    for epoch in (1, 2, 3):
        want.append(summary(net.trace(X, y)))  # now: on the CPU trace's dW are views of the live buffers
        trainer.run(epoch, callback=board)
    board.close()
    scalars, histograms = events(tmp_path / "g")
    for l in (1, 2, 3):
        for tag, key in (("gradients/W", "W"), ("gradients/b", "b"), ("delta/layer", "delta")):
            np.testing.assert_allclose(values(scalars, f"{tag}_{l}"), [w[key][l - 1] for w in want], rtol=1e-5)
        assert histograms[f"weights/W_{l}"] == [1, 2, 3]
    assert want[0]["W"] != pytest.approx(want[2]["W"])  # the epochs differ: each was checked on its own
    assert board.gradients.history["epoch"] == [1, 2, 3]


def test_the_statistics_are_means_over_the_epochs_batches(data):
    # a tiny step: the weights barely move, so each batch's gradient is trace's on that batch's rows
    X, y = data
    net = gpubp.MLP([5, 4, 3], "sigmoid", device="cpu", dtype="float64", seed=2)
    halves = [summary(net.trace(X[:50], y[:50])), summary(net.trace(X[50:], y[50:]))]
    stats = GradientStats()
    net.fit(X, y, epochs=1, batch_size=50, lr=1e-9, shuffle=False, callback=stats)
    for key, name in (("W", "W_norm"), ("b", "b_norm"), ("delta", "delta_mean_abs")):
        np.testing.assert_allclose(stats.history[name][0], np.mean([h[key] for h in halves], axis=0), rtol=1e-6)
    assert halves[0]["W"] != pytest.approx(halves[1]["W"])  # a sum or one batch alone would not match


def test_no_extra_host_read_per_batch(tmp_path, data):
    X, y = data
    val = (X[:20], y[:20])
    net = gpubp.MLP([5, 8, 3], device="cpu", seed=0)
    dev = net.device
    before = dev.host_reads
    with TensorBoard(tmp_path / "a") as board:  # closed: no writer thread outlives the test
        net.fit(X, y, epochs=3, batch_size=10, validation_data=val, callback=board)
    assert dev.host_reads - before == 3 * 2  # the loss and the validation metrics: nothing more
    for batch_size in (10, 5):  # 10 and 20 batches an epoch: the same reads
        before = dev.host_reads
        with TensorBoard(tmp_path / f"b{batch_size}", gradients=True) as board:
            net.fit(X, y, epochs=3, batch_size=batch_size, validation_data=val, callback=board)
        assert dev.host_reads - before == 3 * (2 + 2)  # + the gradient sums and θ for the histograms


def test_a_resumed_run_continues_the_same_log(tmp_path, data, monkeypatch):
    import time

    monkeypatch.setattr(time, "time", lambda: 1.8e9)  # both logs opened in the same second, as a quick resume is
    X, y = data
    logdir, ckpt = tmp_path / "run", str(tmp_path / "ckpt.npz")
    net = gpubp.MLP([5, 8, 3], device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=10, lr=0.05)
    with TensorBoard(logdir) as board:
        trainer.run(2, callback=board)
        trainer.save(ckpt)
        trainer.run(3, callback=board)  # epoch 3 logged, then the run is lost: its checkpoint says 2
    resumed = Trainer.resume(ckpt, X, y, load=gpubp.network.load, device="cpu")
    with TensorBoard(logdir) as board:
        resumed.run(4, callback=board)
    scalars, _ = events(logdir)
    assert [s for s, _ in scalars["loss/train"]] == [1, 2, 3, 4]  # epoch 3 once: the resumed run's
    np.testing.assert_allclose(values(scalars, "loss/train"), resumed.history["train_loss"], rtol=1e-6)


def test_without_tensorboardx_one_line_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(RuntimeError, match=r"pip install 'gpubp\[tensorboard\]'"):
        TensorBoard(tmp_path)


def test_cli_logdir_and_gradients_and_their_plot_panel(tmp_path):
    proc = run("train", "--epochs", "3", "--hidden", "16,16", "--activation", "sigmoid", "--logdir", "runs/a",
               "--log-gradients", "--plot", "c.png", "--json", "--no-save", cwd=tmp_path)  # fmt: skip
    history = json.loads(proc.stdout)["history"]
    scalars, histograms = events(tmp_path / "runs" / "a")
    np.testing.assert_allclose(values(scalars, "loss/train"), history["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(values(scalars, "validation/accuracy"), history["val_accuracy"], rtol=1e-6)
    assert sorted(histograms) == ["weights/W_1", "weights/W_2", "weights/W_3"]
    # the lecture's point, seen in the log: through sigmoid layers Δ shrinks from the output down
    delta = [values(scalars, f"delta/layer_{l}")[0] for l in (1, 2, 3)]
    assert delta[0] < delta[1] < delta[2]
    import matplotlib.image

    height, width = matplotlib.image.imread(tmp_path / "c.png").shape[:2]
    assert width > 2.5 * height  # three panels: loss, accuracy, per-layer gradients


def test_cli_resume_continues_the_log(tmp_path):
    run("train", "--epochs", "2", "--hidden", "8", "--save", "m.npz", "--logdir", "runs", "--quiet", cwd=tmp_path)
    run("train", "--resume", "m.npz", "--epochs", "4", "--logdir", "runs", "--quiet", cwd=tmp_path)
    scalars, _ = events(tmp_path / "runs")
    assert [s for s, _ in scalars["loss/train"]] == [1, 2, 3, 4]
    history = gpubp.load(str(tmp_path / "m.npz")).net.history
    np.testing.assert_allclose(values(scalars, "loss/train"), history["train_loss"], rtol=1e-6)


def test_cli_refuses_gradients_with_nowhere_to_show_them_and_a_logdir_that_is_a_file(tmp_path):
    proc = run("train", "--epochs", "1", "--log-gradients", "--no-save", cwd=tmp_path, check=None)
    assert_one_line_error(proc, "--log-gradients needs")
    (tmp_path / "afile").write_text("x")
    proc = run("train", "--epochs", "1", "--logdir", "afile", "--no-save", cwd=tmp_path, check=None)
    assert_one_line_error(proc, "--logdir", "not a folder")


def test_cli_without_tensorboardx_exits_2_before_training(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "tensorboardX.py").write_text("raise ImportError('not here')\n")
    # a fresh process, where tensorboardX cannot import
    hidden = {"PYTHONPATH": str(blocker)}
    proc = run_process("train", "--epochs", "1", "--logdir", "runs", "--no-save", cwd=tmp_path, check=None, env=hidden)
    assert_one_line_error(proc, "pip install 'gpubp[tensorboard]'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.mpi
def test_under_mpiexec_rank_0_alone_writes(tmp_path):
    import os
    import subprocess

    from test_mpi import MPIEXEC, need_mpi

    need_mpi()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "GPUBP_DEVICE": "cpu"}
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "gpubp", "train", "--epochs", "2", "--hidden", "8",
           "--logdir", "runs", "--log-gradients", "--json", "--no-save"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1  # one event file: rank 0's
    scalars, _ = events(tmp_path / "runs")
    history = json.loads(proc.stdout)["history"]
    np.testing.assert_allclose(values(scalars, "loss/train"), history["train_loss"], rtol=1e-6)
    assert [s for s, _ in scalars["gradients/W_1"]] == [1, 2]


@pytest.mark.gpu
def test_on_a_gpu_the_same_statistics_and_one_read_per_epoch(tmp_path, data):
    X, y = data
    runs = {}
    for device in ("cpu", "gpu"):
        net = gpubp.MLP([5, 8, 8, 3], "sigmoid", device=device, dtype="float64", seed=0)
        before = net.device.host_reads
        board = TensorBoard(tmp_path / device, gradients=True)
        net.fit(X, y, epochs=3, batch_size=10, shuffle=False, callback=board)
        board.close()
        assert net.device.host_reads - before == 3 * (1 + 2)
        runs[device] = board.gradients.history
    for key in GradientStats.KEYS:
        np.testing.assert_allclose(runs["gpu"][key], runs["cpu"][key], rtol=1e-9)
