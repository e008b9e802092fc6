"""Each training setting's limits, stated once (gpubp.settings.LIMITS) and read by the library, the
estimators' parameter checks and the command alike."""

from __future__ import annotations

import pytest

import gpubp
from gpubp.settings import LIMITS, TrainSettings


def test_momentum_1_is_accepted_as_scikit_learn_accepts_it(rng):
    """scikit-learn's momentum is in [0, 1], closed at both ends; the library said < 1."""
    TrainSettings(momentum=1.0)
    net = gpubp.MLP([3, 4, 2], "relu", device="cpu", seed=0)
    net.fit(rng.normal(size=(16, 3)), rng.integers(0, 2, 16), 1, momentum=1.0, lr=0.01)
    with pytest.raises(ValueError, match=r"momentum must be <= 1.0, got 1.5"):
        TrainSettings(momentum=1.5)


@pytest.mark.parametrize(
    ("name", "inside", "outside", "message"),
    [
        ("lr", 1e-9, 0.0, "lr must be > 0.0, got 0.0"),
        ("momentum", 0.0, -0.1, "momentum must be >= 0.0, got -0.1"),
        ("weight_decay", 0.0, -1.0, "weight_decay must be >= 0.0, got -1.0"),
        ("eps", 1e-12, 0.0, "eps must be > 0.0, got 0.0"),
    ],
)
def test_each_limit_is_enforced_at_its_edge(name, inside, outside, message):
    TrainSettings(**{name: inside})
    with pytest.raises(ValueError, match=message):
        TrainSettings(**{name: outside})


def test_betas_are_below_1():
    TrainSettings(optimizer="adam", betas=(0.0, 0.999999))
    with pytest.raises(ValueError, match=r"betas\[1\] must be < 1.0, got 1.0"):
        TrainSettings(optimizer="adam", betas=(0.9, 1.0))


def test_the_estimators_read_the_same_limits(rng):
    pytest.importorskip("sklearn")
    from sklearn.utils._param_validation import Interval

    from gpubp.sklearn import MLPClassifier, MLPRegressor

    for est in (MLPClassifier, MLPRegressor):
        for param, setting in (("momentum", "momentum"), ("learning_rate_init", "lr"), ("alpha", "weight_decay"),
                               ("epsilon", "eps"), ("beta_1", "betas"), ("beta_2", "betas")):  # fmt: skip
            (interval,) = [c for c in est._parameter_constraints[param] if isinstance(c, Interval)]
            low, high, closed = LIMITS[setting]
            assert (interval.left, interval.right, interval.closed) == (low, high, closed), param
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", momentum=1.0, max_iter=2, random_state=0,
                        learning_rate_init=0.001, device="cpu")  # fmt: skip
    clf.partial_fit(X, y, classes=[0, 1])  # one epoch: no "not converged" warning
    assert clf.n_iter_ == 1


def test_the_command_reads_the_same_limits(capsys):
    from cli_calls import cli, refused

    assert refused(capsys, "train", "--momentum", "1.5").endswith("argument --momentum: must be in [0, 1], got '1.5' "
                                                                  "(see gpubp train --help)")  # fmt: skip
    code, _, err = cli(capsys, "train", "--momentum", "1", "--lr", "0.001", "--epochs", "1", "--hidden", "4",
                       "--no-save", "--quiet")  # fmt: skip
    assert code == 0, err
