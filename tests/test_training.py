"""The training loop: learning, determinism, batching, stopping rules, divergence, resumption."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer, TrainingDivergedError

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


# relu at lr 0.5 with momentum can kill every unit on four points: it gets the smaller step
@pytest.mark.parametrize(("activation", "lr"), [("sigmoid", 0.5), ("tanh", 0.5), ("relu", 0.1)])
def test_xor_is_learned(activation, lr):
    net = gpubp.MLP([2, 8, 2], activation, device="cpu", seed=0)
    net.fit(XOR_X, XOR_Y, epochs=400, batch_size=4, lr=lr, momentum=0.9)
    np.testing.assert_array_equal(net.predict(XOR_X), XOR_Y)
    assert net.history["train_loss"][-1] < 0.05


def test_xor_with_bce_and_one_sigmoid_output():
    net = gpubp.MLP([2, 6, 1], "tanh", loss="bce", device="cpu", seed=1)
    net.fit(XOR_X, XOR_Y, epochs=400, batch_size=4, lr=0.5, momentum=0.9)
    np.testing.assert_array_equal(net.predict(XOR_X), XOR_Y)
    assert net.score(XOR_X, XOR_Y) == 1.0


def test_regression_with_mse_reaches_high_r2(rng):
    X = rng.uniform(-1, 1, size=(200, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    net = gpubp.MLP([2, 32, 1], "tanh", loss="mse", device="cpu", dtype="float64", seed=0)
    net.fit(X, y, epochs=300, batch_size=20, lr=0.05, momentum=0.9)
    assert net.score(X, y) > 0.97
    assert net.predict(X).shape == (200, 1)


def test_seeded_runs_are_identical(rng):
    X, y = rng.normal(size=(50, 6)), rng.integers(0, 3, 50)
    runs = []
    for _ in range(2):
        net = gpubp.MLP([6, 7, 3], "relu", device="cpu", seed=42)
        net.fit(X, y, epochs=3, batch_size=8, lr=0.1, momentum=0.5)
        runs.append(net)
    for Wa, Wb in zip(runs[0].weights + runs[0].biases, runs[1].weights + runs[1].biases):
        np.testing.assert_array_equal(Wa, Wb)
    other = gpubp.MLP([6, 7, 3], "relu", device="cpu", seed=43)
    assert not np.array_equal(other.weights[0], runs[0].weights[0])


def test_shuffle_changes_the_order_but_not_the_data(rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    a = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=1)
    b = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=1)
    a.fit(X, y, epochs=1, batch_size=40, lr=0.1, shuffle=True)
    b.fit(X, y, epochs=1, batch_size=40, lr=0.1, shuffle=False)
    # one full batch: the order of rows cannot matter beyond rounding
    np.testing.assert_allclose(a.weights[0], b.weights[0], rtol=1e-12)
    c = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=1)
    d = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=1)
    c.fit(X, y, epochs=1, batch_size=5, lr=0.1, shuffle=True)
    d.fit(X, y, epochs=1, batch_size=5, lr=0.1, shuffle=False)
    assert not np.allclose(c.weights[0], d.weights[0])


def test_last_partial_batch_is_kept_and_averaged_over_its_own_size(rng):
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    net = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=3)
    ref = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=3)
    net.fit(X, y, epochs=1, batch_size=4, lr=0.2, shuffle=False)
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)):  # 4 + 4 + 2
        _, grads = ref.loss_and_gradients(X[rows], y[rows])  # the mean over the batch's own rows
        for p, g in zip(ref.weights + ref.biases, [g for g, _ in grads] + [g for _, g in grads]):
            p -= 0.2 * g
    for got, want in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_history_has_one_row_per_epoch(rng):
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    h = net.fit(X, y, epochs=4, batch_size=8, validation_data=(X[:10], y[:10]))
    assert h is net.history
    assert set(h) == {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds", "samples_per_s"}
    assert h["epoch"] == [1, 2, 3, 4]
    assert all(len(v) == 4 for v in h.values())
    assert all(0 <= a <= 1 for a in h["val_accuracy"])
    assert all(s > 0 for s in h["samples_per_s"])
    r = gpubp.MLP([3, 4, 1], loss="mse", device="cpu", seed=0).fit(X, X[:, 0], epochs=1, validation_data=(X, X[:, 0]))
    assert set(r) == {"epoch", "train_loss", "val_loss", "val_r2", "seconds", "samples_per_s"}


def test_train_loss_is_the_row_weighted_mean_of_the_batch_losses(rng):
    # 30 rows in batches of 8, 8, 8, 6. With a vanishing lr the weights stay put, so the epoch's
    # loss must equal the mean over all rows; an unweighted mean of the four batch means would not.
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    net = gpubp.MLP([3, 4, 2], device="cpu", dtype="float64", seed=0)
    before = net.evaluate(X, y)["loss"]
    batch_means = [net.evaluate(X[i : i + 8], y[i : i + 8])["loss"] for i in range(0, 30, 8)]
    assert abs(np.mean(batch_means) - before) > 1e-3  # the two means tell the weighting apart here
    h = net.fit(X, y, epochs=1, batch_size=8, lr=1e-300, shuffle=False)
    assert h["train_loss"][0] == pytest.approx(before, rel=1e-12)


def test_early_stopping_restores_the_best_weights(rng):
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    X_val, y_val = X[:20], (y[:20] + 1) % 3  # contradicts the training labels: val loss rises
    net = gpubp.MLP([4, 16, 3], "relu", device="cpu", dtype="float64", seed=0)
    snapshots = {}

    def keep(model, metrics):
        snapshots[metrics["epoch"]] = [W.copy() for W in model.weights]

    h = net.fit(X, y, epochs=50, batch_size=10, lr=0.1, momentum=0.9, validation_data=(X_val, y_val),
                patience=3, callback=keep)  # fmt: skip
    best = int(np.argmin(h["val_loss"])) + 1
    assert len(h["epoch"]) == best + 3 < 50  # stopped 3 epochs after the best
    for W, W_best in zip(net.weights, snapshots[best]):
        np.testing.assert_array_equal(W, W_best)


def test_callback_can_stop_training(rng):
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    h = net.fit(X, y, epochs=10, callback=lambda model, m: m["epoch"] == 2)
    assert h["epoch"] == [1, 2]


@pytest.mark.parametrize(("scale", "lr", "finite_epochs"), [(100.0, 10.0, 0), (1.0, 1.0, 1)])
def test_divergence_raises_and_keeps_the_last_finite_weights(scale, lr, finite_epochs):
    # settings measured to blow up in epoch 1 (back to the initial weights) and in epoch 2 (back
    # to the weights at the end of epoch 1)
    rng = np.random.default_rng(12345)
    X, y = rng.normal(size=(32, 3)) * scale, rng.normal(size=32) * scale
    net = gpubp.MLP([3, 16, 1], "relu", loss="mse", device="cpu", seed=0)
    kept = {0: [W.copy() for W in net.weights + net.biases]}

    def keep(model, row):
        kept[row["epoch"]] = [p.copy() for p in model.weights + model.biases]

    with pytest.raises(TrainingDivergedError, match=f"in epoch {finite_epochs + 1}"):
        net.fit(X, y, epochs=20, batch_size=4, lr=lr, callback=keep)
    assert max(kept) == finite_epochs
    for p, p_kept in zip(net.weights + net.biases, kept[finite_epochs]):
        np.testing.assert_array_equal(p, p_kept)


def test_interrupted_run_resumes_to_the_same_weights(rng):
    X, y = rng.normal(size=(45, 5)), rng.integers(0, 3, 45)
    straight = gpubp.MLP([5, 6, 3], device="cpu", seed=9)
    straight.fit(X, y, epochs=3, batch_size=10, lr=0.1, momentum=0.9)

    net = gpubp.MLP([5, 6, 3], device="cpu", seed=9)
    trainer = Trainer(net, X, y, batch_size=10, lr=0.1, momentum=0.9)
    calls = []
    trainer.run(3, on_batch=lambda i, n: calls.append(i) or len(calls) == 7)  # stop in epoch 2
    assert trainer.interrupted
    assert trainer.epoch == 1
    assert trainer.position == 20
    trainer.run(3)
    for a, b in zip(net.weights + net.biases, straight.weights + straight.biases):
        np.testing.assert_array_equal(a, b)
    assert net.history["epoch"] == [1, 2, 3]
    assert net.history["train_loss"] == pytest.approx(straight.history["train_loss"], rel=1e-6)


def test_float32_stays_float32_with_float64_data(rng):
    X, y = rng.normal(size=(40, 3)) * 1e4, rng.integers(0, 2, 40)  # float64 and large: sigmoid saturates
    net = gpubp.MLP([3, 5, 2], "sigmoid", device="cpu", seed=0)
    net.fit(X, y, epochs=2, batch_size=8, validation_data=(X, y))  # filterwarnings=error: no overflow warning
    assert all(p.dtype == np.float32 for p in net.weights + net.biases + net.dW + net.db)
    assert net.forward(X).dtype == np.float32
    assert all(np.isfinite(v) for v in net.history["train_loss"])


def test_divergence_after_a_mid_epoch_resume_keeps_the_resume_point(rng):
    X, y = rng.normal(size=(64, 3)) * 10, rng.normal(size=64) * 10
    net = gpubp.MLP([3, 16, 1], "relu", loss="mse", device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=4, lr=50.0, momentum=0.9)
    trainer.run(5, on_batch=lambda i, n: i == 2)  # stop after two huge (but finite) steps
    assert trainer.interrupted
    at_resume = net.params.theta.copy()
    assert np.isfinite(at_resume).all()
    with pytest.raises(TrainingDivergedError, match="optimiser state cleared"):
        trainer.run(5)
    np.testing.assert_array_equal(net.params.theta, at_resume)
    assert not trainer.optimizer.flat["velocity"].any()


def test_stopping_on_the_last_batch_completes_the_epoch_and_stops(rng):
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=10)
    trainer.run(5, on_batch=lambda i, n: i == n)
    assert trainer.interrupted
    assert trainer.epoch == 1
    assert trainer.position == 0
    assert net.history["epoch"] == [1]


def test_networks_trained_in_parallel_threads_match_serial_runs(rng):
    """The NumPy twins' scratch buffers are per thread: parallel training must not mix them."""
    from concurrent.futures import ThreadPoolExecutor

    X, y = rng.normal(size=(256, 20)), rng.integers(0, 4, 256)

    def train(seed):
        net = gpubp.MLP([20, 64, 4], "sigmoid", device="cpu", seed=seed)
        net.fit(X, y, epochs=3, batch_size=32, lr=0.1, momentum=0.9, weight_decay=1e-3)
        return net.weights

    serial = [train(s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(train, range(4)))
    for a, b in zip(serial, parallel):
        for Wa, Wb in zip(a, b):
            np.testing.assert_array_equal(Wa, Wb)


def test_a_batch_of_zero_weights_adds_neither_gradient_nor_decay(rng):
    # scikit-learn's per-batch λ/Σw once divided by Σw = 0 here: λ·1e300 overflowed and training diverged
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    w = np.ones(40)
    w[:10] = 0  # the first batch
    nets = [gpubp.MLP([3, 5, 2], "relu", device="cpu", dtype="float64", seed=0) for _ in range(2)]
    settings = {"batch_size": 10, "lr": 0.1, "weight_decay": 1e-3, "shuffle": False, "decay_mean": True}
    weighted = Trainer(nets[0], X, y, sample_weight=w, **settings)
    weighted.run(3)
    alone = Trainer(nets[1], X[10:], y[10:], **settings)
    alone.run(3)
    np.testing.assert_array_equal(nets[0].params.theta, nets[1].params.theta)
    # nor rows to the epoch's mean loss: the mean is over the 30 rows that count, not 40
    assert weighted.counted_rows() == 30
    np.testing.assert_allclose(weighted.history["train_loss"], alone.history["train_loss"], rtol=1e-14)


def test_sample_weights_all_zero_are_refused(rng):
    net = gpubp.MLP([3, 5, 2], "relu", device="cpu", seed=0)
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    with pytest.raises(ValueError, match="sample_weight must have a positive sum: all weights are 0"):
        Trainer(net, X, y, sample_weight=np.zeros(8))
    with pytest.raises(ValueError, match=r"finite and >= 0, got sample_weight\[2\] = -1.0 \(2 such weights\)"):
        Trainer(net, X, y, sample_weight=[1, 1, -1, 1, np.nan, 1, 1, 1])


def test_a_weighted_run_resumes_with_its_weights_or_refuses(tmp_path, rng):
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    w = rng.uniform(0.1, 2.0, 40)
    settings = {"batch_size": 8, "lr": 0.1, "optimizer": "adam", "weight_decay": 1e-3, "decay_mean": True}
    full = gpubp.MLP([3, 5, 2], "relu", device="cpu", dtype="float64", seed=0)
    Trainer(full, X, y, sample_weight=w, **settings).run(3)
    net = gpubp.MLP([3, 5, 2], "relu", device="cpu", dtype="float64", seed=0)
    first = Trainer(net, X, y, sample_weight=w, **settings)
    first.run(3, on_batch=lambda i, n: i == 2)  # stop inside epoch 1
    first.save(str(tmp_path / "run.npz"))
    resumed = Trainer.resume(str(tmp_path / "run.npz"), X, y, load=gpubp.network.load, device="cpu")
    resumed.run(3)
    np.testing.assert_array_equal(resumed.net.params.theta, full.params.theta)
    unweighted = Trainer(gpubp.MLP([3, 5, 2], "relu", device="cpu", dtype="float64", seed=0), X, y, **settings)
    with pytest.raises(ValueError, match=r"run\.npz was trained with its own sample weights, this trainer has none"):
        unweighted.restore(str(tmp_path / "run.npz"))


OPTIMISERS = [
    {"optimizer": "sgd"},
    {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-3},
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-3},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("settings", OPTIMISERS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_compiled_loops_train_as_the_numpy_twins(settings, dtype, rng):
    """The CPU's two kernel sets: the loops do the twins' operations in the twins' order (softmax's row
    sums are the twins' own), so training is the same bit for bit, for every output and loss."""
    from cpu_kernels import CPU_NUMBA, CPU_NUMPY, need_numba

    need_numba()
    X = rng.normal(size=(101, 6))
    common = {"batch_size": 16, "lr": 0.05, **settings}
    for activation, output, loss, classes in [("relu", "identity", "mse", 3), ("tanh", "softmax", "cross_entropy", 3),
                                              ("relu", "softmax", "cross_entropy", 10),  # the twins' short rows
                                              ("sigmoid", "sigmoid", "bce", 3)]:  # fmt: skip
        y = rng.integers(0, classes, 101)
        Y = np.eye(classes)[y] if loss != "cross_entropy" else y
        thetas, losses = [], []
        for cpu in (CPU_NUMPY, CPU_NUMBA):
            net = gpubp.MLP([6, 9, 7, classes], activation, output, loss, device=cpu, dtype=dtype, seed=1)
            trainer = Trainer(net, X, Y, **common)
            trainer.run(3)
            thetas.append(net.params.theta.copy())
            losses.append(trainer.history["train_loss"])
        np.testing.assert_array_equal(thetas[0], thetas[1], err_msg=f"{activation}/{output}/{loss}")
        assert losses[0] == losses[1]


def test_resume_refuses_other_rows_of_the_same_count(tmp_path, rng):
    """As the command does (by fingerprint): a checkpoint continues its own run, not one on other data."""
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    trainer = Trainer(gpubp.MLP([3, 5, 2], "relu", device="cpu", seed=0), X, y, batch_size=8)
    trainer.run(2)
    trainer.save(str(tmp_path / "run.npz"))
    Trainer.resume(str(tmp_path / "run.npz"), X, y, load=gpubp.network.load, device="cpu").run(3)  # its own rows: fine
    with pytest.raises(ValueError, match=r"run\.npz was trained on other rows .*pass the same X and Y"):
        Trainer.resume(str(tmp_path / "run.npz"), X[::-1], y[::-1], load=gpubp.network.load, device="cpu")
    # the same rows in another form train the same, so they resume: X as float32 (the network's dtype),
    # the labels as one-hot rows
    Trainer.resume(
        str(tmp_path / "run.npz"), X.astype(np.float32), np.eye(2)[y], load=gpubp.network.load, device="cpu"
    ).run(3)
