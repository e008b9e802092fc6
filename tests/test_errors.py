"""Bad input gets a ValueError or TypeError that names what was wrong and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp


@pytest.fixture
def net():
    return gpubp.MLP([3, 4, 2], device="cpu", seed=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [3]}, ValueError, "at least an input and an output"),
        ({"sizes": [3, 0, 2]}, ValueError, r"sizes\[1\] must be >= 1, got 0"),
        ({"sizes": [3, 2.5]}, TypeError, r"sizes\[1\] must be an integer"),
        ({"sizes": "3,2"}, TypeError, "list of layer widths"),
        ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
        ({"activation": "softmax"}, ValueError, "unknown activation 'softmax'"),
        ({"output": "gelu"}, ValueError, "unknown output"),
        ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
        ({"loss": "cross_entropy", "output": "sigmoid"}, ValueError, "needs a softmax output"),
        ({"loss": "bce", "output": "softmax"}, ValueError, "needs a sigmoid output"),
        ({"init": "orthogonal"}, ValueError, "unknown init"),
        ({"dtype": "float16"}, ValueError, "unknown dtype"),
        ({"dtype": "banana"}, ValueError, "unknown dtype"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"sizes": [3, 1], "output": "softmax"}, ValueError, "at least 2 units"),
    ],
)
def test_bad_network_settings(kwargs, error, match):
    settings = {"sizes": [3, 4, 2], "device": "cpu", **kwargs}
    with pytest.raises(error, match=match):
        gpubp.MLP(**settings)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.ones((5, 4)), ValueError, "4 features per sample, the network expects 3"),
        (np.ones(3), ValueError, "must be 2-D"),
        (np.ones((0, 3)), ValueError, "empty"),
        (np.array([["a", "b", "c"]]), TypeError, "numeric"),
        (np.array([[1.0, np.nan, 0.0]]), ValueError, "NaN or infinite"),
        (np.array([[1.0, np.inf, 0.0]]), ValueError, "NaN or infinite"),
        (np.array([[1e300, 0.0, 0.0]]), ValueError, "too large for float32"),
        ([[1, 2], [3]], TypeError, "numeric array"),
    ],
)
def test_bad_X(net, X, error, match):
    with pytest.raises(error, match=match):
        net.forward(X)


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        (np.array([0, 1, 2, 0]), ValueError, r"labels in \[0, 2\] .* 2 outputs"),
        (np.array([0, 1, -1, 0]), ValueError, "labels in"),
        (np.array([0, 1, 0]), ValueError, "3 rows but X has 4 samples"),
        (np.array([0.5, 1, 0, 0]), ValueError, "whole numbers"),
        (np.ones((4, 3)), ValueError, r"shape \(4, 2\)"),
        (np.array([0, 1, np.nan, 0]), ValueError, "NaN"),
        (np.array(["a", "b", "a", "b"]), TypeError, "numeric"),
        (np.full((4, 2), 2.0), ValueError, r"in \[0, 1\]"),
    ],
)
def test_bad_Y(net, y, error, match):
    with pytest.raises(error, match=match):
        net.fit(np.ones((4, 3)), y, epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
        ({"epochs": 0}, ValueError, "epochs must be >= 1"),
        ({"lr": 0}, ValueError, "lr must be > 0"),
        ({"lr": -0.1}, ValueError, "lr must be > 0"),
        ({"lr": float("nan")}, ValueError, "lr must be finite"),
        ({"momentum": 1.5}, ValueError, "momentum must be <= 1"),
        ({"momentum": -0.5}, ValueError, "momentum must be >= 0"),
        ({"nesterov": True}, ValueError, "nesterov=True needs momentum > 0"),
        ({"weight_decay": -1}, ValueError, "weight_decay must be >= 0"),
        ({"optimizer": "rmsprop"}, ValueError, "unknown optimizer 'rmsprop'"),
        ({"optimizer": "adam", "momentum": 0.9}, ValueError, "Adam has its own moments"),
        ({"patience": 2}, ValueError, "patience .* needs validation_data"),
        ({"patience": 0, "validation_data": (np.ones((2, 3)), [0, 1])}, ValueError, "patience must be >= 1"),
        ({"validation_data": np.ones((2, 3))}, TypeError, "pair"),
        ({"validation_data": (np.ones((2, 5)), [0, 1])}, ValueError, "X_val has 5 features"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ],
)
def test_bad_training_settings(net, kwargs, error, match):
    settings = {"epochs": 1, **kwargs}
    with pytest.raises(error, match=match):
        net.fit(np.ones((4, 3)), [0, 1, 0, 1], **settings)


def test_predict_proba_needs_a_classifier():
    reg = gpubp.MLP([3, 1], loss="mse", device="cpu")
    with pytest.raises(ValueError, match="predict_proba needs a classifier"):
        reg.predict_proba(np.ones((1, 3)))


def test_failed_fit_leaves_weights_untouched(net):
    before = [W.copy() for W in net.weights]
    with pytest.raises(ValueError):
        net.fit(np.ones((4, 3)), [0, 1, 5, 1])
    for W, W0 in zip(net.weights, before):
        np.testing.assert_array_equal(W, W0)


@pytest.mark.parametrize("statement", ["from gpubp import MLPClassifier", "from gpubp.sklearn import MLPRegressor"])
def test_the_estimators_without_scikit_learn_say_what_to_install(statement):
    """As the other extras do: one line naming the extra, not a bare ModuleNotFoundError."""
    import subprocess
    import sys

    code = f"import sys; sys.modules['sklearn'] = None; {statement}"  # None: as if not installed
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: gpubp.MLPClassifier and gpubp.MLPRegressor need scikit-learn: "
        "pip install 'gpubp[sklearn]'"
    ), done.stderr
