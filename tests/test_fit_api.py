"""One API: MLP.fit takes what Trainer and the estimators take, says what a second fit does, and
Trainer.run's argument is a total that says so when there is nothing to do."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp
from gpubp.training import Trainer


def _data(rng: np.random.Generator, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _net(seed: int = 0) -> gpubp.MLP:
    return gpubp.MLP([4, 6, 2], "tanh", device="cpu", dtype="float64", seed=seed)


def test_fit_takes_sample_weight_as_the_trainer_does(rng):
    X, y = _data(rng)
    w = rng.uniform(0.0, 3.0, len(y))
    by_fit, by_trainer, unweighted = _net(), _net(), _net()
    by_fit.fit(X, y, 3, sample_weight=w, batch_size=8)
    Trainer(by_trainer, X, y, sample_weight=w, batch_size=8).run(3)
    unweighted.fit(X, y, 3, batch_size=8)
    np.testing.assert_array_equal(by_fit.params.theta, by_trainer.params.theta)
    assert not np.array_equal(by_fit.params.theta, unweighted.params.theta)


def test_fit_streams_a_memory_mapped_array_as_the_same_run(rng, tmp_path):
    X, y = _data(rng)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    streamed, whole = _net(), _net()
    streamed.fit(mapped, y, 2, stream=True, batch_size=8)
    whole.fit(X, y, 2, stream=False, batch_size=8)
    np.testing.assert_array_equal(streamed.params.theta, whole.params.theta)


def test_a_second_fit_continues_from_the_weights_with_a_fresh_optimiser(rng):
    X, y = _data(rng)
    once, twice = _net(), _net()
    once.fit(X, y, 5, batch_size=8)
    twice.fit(X, y, 3, batch_size=8)
    history = twice.fit(X, y, 2, batch_size=8)
    # plain SGD keeps no state but θ and the RNG: 3 + 2 epochs are the 5
    np.testing.assert_array_equal(twice.params.theta, once.params.theta)
    assert history["epoch"] == [1, 2]  # the second run's own epochs
    assert twice.history is history
    # momentum starts again at each fit: 3 + 2 is not the 5 (a Trainer's run goes on exactly)
    once, twice, trainer_net = _net(), _net(), _net()
    once.fit(X, y, 5, batch_size=8, momentum=0.9, lr=0.05)
    twice.fit(X, y, 3, batch_size=8, momentum=0.9, lr=0.05)
    twice.fit(X, y, 2, batch_size=8, momentum=0.9, lr=0.05)
    assert not np.array_equal(twice.params.theta, once.params.theta)
    trainer = Trainer(trainer_net, X, y, batch_size=8, momentum=0.9, lr=0.05)
    trainer.run(3)
    trainer.run(5)
    np.testing.assert_array_equal(trainer_net.params.theta, once.params.theta)


def test_run_says_when_it_has_nothing_to_train(rng):
    X, y = _data(rng)
    net = _net()
    trainer = Trainer(net, X[:40], y[:40], batch_size=8, patience=1, validation_data=(X[40:], y[40:]), lr=5.0)
    trainer.run(2)
    before = net.params.theta.copy()
    with pytest.warns(UserWarning, match=r"run\(2\) has nothing to train: 2 epochs are done already; the argument is "
                                         r"the total, run\(3\) trains one more"):  # fmt: skip
        trainer.run(2)
    with pytest.warns(UserWarning, match=r"run\(1\) has nothing to train"):
        trainer.run(1)
    np.testing.assert_array_equal(net.params.theta, before)
    trainer.run(100)  # patience 1 at lr 5: stops early
    assert trainer.stopped_early
    with pytest.warns(UserWarning, match=r"a stopping rule ended the run in epoch \d+; set trainer.stopped_early = "
                                         "False to go on"):  # fmt: skip
        trainer.run(200)
