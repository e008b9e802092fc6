"""The Trainer's state across runs: asking again for epochs already done, restoring only a matching
checkpoint, the rows' fingerprint, and the gradient statistics of each epoch."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gpubp
from gpubp.monitor import GradientStats
from gpubp.training import Trainer


def _trainer(rng_seed: int = 0, **settings) -> Trainer:
    rng = np.random.default_rng(rng_seed)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    net = gpubp.MLP([4, 8, 3], "relu", device="cpu", dtype="float64", seed=0)
    return Trainer(net, X[:45], y[:45], validation_data=(X[45:], y[45:]), **{"batch_size": 8, "lr": 0.5, **settings})


def test_asking_again_for_epochs_already_done_keeps_the_live_weights(tmp_path):
    """run(4); run(4); run(8) is run(8): the second run(4) has nothing to do, and must not put the
    best weights over the ones training had reached (epochs 5-8 would go on from the best epoch)."""
    once = _trainer(keep_best=True)
    once.run(8)
    twice = _trainer(keep_best=True)
    twice.run(4)
    best = twice.net.params.theta.copy()
    with pytest.warns(UserWarning, match=r"Trainer.run\(4\) has nothing to train: 4 epochs are done already"):
        twice.run(4)
    np.testing.assert_array_equal(twice.net.params.theta, best)  # still the best epoch's weights
    twice.save(str(tmp_path / "run.npz"))
    twice.run(8)
    assert twice.history["train_loss"] == once.history["train_loss"]
    np.testing.assert_array_equal(twice.net.params.theta, once.net.params.theta)
    # the checkpoint saved in between continues the same run too
    resumed = Trainer.resume(str(tmp_path / "run.npz"), *_data(), load=gpubp.network.load,
                             validation_data=_data(val=True), device="cpu")  # fmt: skip
    resumed.run(8)
    assert resumed.history["train_loss"] == once.history["train_loss"]
    np.testing.assert_array_equal(resumed.net.params.theta, once.net.params.theta)


def _data(val: bool = False):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
    return (X[45:], y[45:]) if val else (X[:45], y[:45])


ADAM = {"optimizer": "adam", "lr": 0.05}


@pytest.mark.parametrize(
    ("here", "difference"),
    [
        ({"activation": "relu"}, "activation 'tanh' differs from this trainer's 'relu'"),
        ({"optimizer": "sgd"}, "optimizer 'adam' differs from this trainer's 'sgd'"),
        ({"lr": 0.01}, "lr 0.05 differs from this trainer's 0.01"),
        ({"dtype": "float32"}, "dtype 'float64' differs from this trainer's 'float32'"),
    ],
)
def test_restore_refuses_a_checkpoint_of_another_network_or_settings(tmp_path, here, difference):
    """A tanh/Adam checkpoint restored into a relu/SGD trainer would drop Adam's moments without a word:
    refused, naming the first difference, before anything is loaded."""
    X, y = _data()

    def trainer(activation: str = "tanh", dtype: str = "float64", **settings) -> Trainer:
        net = gpubp.MLP([4, 8, 3], activation, device="cpu", dtype=dtype, seed=0)
        return Trainer(net, X, y, batch_size=8, **{**ADAM, **settings})

    saved = trainer()
    saved.run(2)
    saved.save(str(tmp_path / "run.npz"))
    other = trainer(**here)
    before = other.net.params.theta.copy()
    with pytest.raises(ValueError, match=re.escape(f"run.npz: {difference}")):
        other.restore(str(tmp_path / "run.npz"))
    np.testing.assert_array_equal(other.net.params.theta, before)  # nothing was loaded
    assert other.epoch == 0
    same = trainer()
    same.restore(str(tmp_path / "run.npz"))
    assert same.epoch == 2


def test_resume_refuses_the_same_rows_with_other_targets(tmp_path):
    """The fingerprint covers the targets: the same X with other y is another run."""
    X, y = _data()
    trainer = Trainer(gpubp.MLP([4, 8, 3], "relu", device="cpu", seed=0), X, y, batch_size=8)
    trainer.run(2)
    trainer.save(str(tmp_path / "run.npz"))
    other_y = (y + 1) % 3
    with pytest.raises(ValueError, match=r"run\.npz was trained on other rows .*pass the same X and Y"):
        Trainer.resume(str(tmp_path / "run.npz"), X, other_y, load=gpubp.network.load, device="cpu")
    Trainer.resume(str(tmp_path / "run.npz"), X, y, load=gpubp.network.load, device="cpu").run(3)


def test_gradient_stats_are_each_epochs_own_mean():
    """Each epoch's statistics are the mean over that epoch's batches alone (the batch count and the sums
    start again each epoch), against the gradient read where the statistics read it (the step's probe, before
    the update, which may use the gradient's buffer as scratch)."""
    X, y = _data()
    net = gpubp.MLP([4, 8, 3], "relu", device="cpu", dtype="float64", seed=0)
    trainer = Trainer(net, X, y, batch_size=8, lr=0.5)  # no weight decay: the store's gradient is the batch's
    per_batch: list[list[float]] = []
    stats = GradientStats()
    stats.attach(trainer)
    counted = trainer.probe

    def probe(ws) -> None:
        per_batch.append([float(np.linalg.norm(g)) for pair in zip(net.dW, net.db) for g in pair])
        counted(ws)

    trainer.probe = probe
    trainer.run(3, callback=lambda net, row: stats(net, row))  # a plain function: run does not attach it again
    n_batches = trainer.n_batches
    assert len(per_batch) == 3 * n_batches
    assert stats.history["epoch"] == [1, 2, 3]
    for e in range(3):
        want = np.mean(per_batch[e * n_batches : (e + 1) * n_batches], axis=0)
        np.testing.assert_allclose(stats.history["W_norm"][e], want[0::2], rtol=1e-12)
        np.testing.assert_allclose(stats.history["b_norm"][e], want[1::2], rtol=1e-12)


def test_keep_best_ends_a_run_on_its_best_validation_epoch():
    """keep_best: a run that was not stopped early ends with the best validation epoch's weights (found by
    make mutate: turning the end-of-run restore off survived every test)."""
    trainer = _trainer(keep_best=True)
    trainer.run(8)
    losses = trainer.history["val_loss"]
    assert trainer.best_epoch == int(np.argmin(losses)) + 1 < 8  # the best epoch is not the last one
    assert trainer.net.evaluate(*_data(val=True))["loss"] == pytest.approx(min(losses), rel=1e-12)
    plain = _trainer()
    plain.run(8)
    assert plain.net.evaluate(*_data(val=True))["loss"] == pytest.approx(losses[-1], rel=1e-12)  # the last epoch's


def test_a_run_stopped_early_is_restored_as_stopped(tmp_path):
    """A checkpoint of a run that patience stopped resumes stopped, on its best weights: a further run trains
    nothing and says so (found by make mutate: reading ``stopped`` back as False survived)."""
    trainer = _trainer(patience=1, lr=5.0)
    trainer.run(100)
    assert trainer.stopped_early
    trainer.save(str(tmp_path / "run.npz"))
    resumed = Trainer.resume(str(tmp_path / "run.npz"), *_data(), load=gpubp.network.load,
                             validation_data=_data(val=True), device="cpu")  # fmt: skip
    assert resumed.stopped_early
    np.testing.assert_array_equal(resumed.net.params.theta, trainer.net.params.theta)
    with pytest.warns(UserWarning, match="a stopping rule ended the run"):
        resumed.run(200)
    np.testing.assert_array_equal(resumed.net.params.theta, trainer.net.params.theta)
