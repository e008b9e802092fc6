"""Rare classes (issue #26, case 4): class weights as a training setting (MLP.fit, Trainer, gpubp
train --class-weight balanced) and on gpubp.MLPClassifier as scikit-learn's other classifiers take them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

from gpubp import MLP
from gpubp.settings import TrainSettings, class_row_weights
from gpubp.training import Trainer

sklearn = pytest.importorskip("sklearn")
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from gpubp.sklearn import MLPClassifier  # noqa: E402


def rare_rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(np.int64) + (rng.random(n) < 0.2)
    X = rng.normal(size=(n, 4)) + y[:, None]
    return X, y


def test_balanced_is_scikit_learns_formula():
    _, y = rare_rows()
    np.testing.assert_allclose(class_row_weights("balanced", y, 3), compute_sample_weight("balanced", y))
    # a class without rows (index 3 of 4) takes no part in n / (classes × rows)
    np.testing.assert_allclose(class_row_weights("balanced", y, 4), compute_sample_weight("balanced", y))
    np.testing.assert_allclose(class_row_weights(((1, 5.0),), y, 3), np.where(y == 1, 5.0, 1.0))


def test_class_weight_is_checked_as_a_setting():
    assert TrainSettings(class_weight={2: 3, 0: 0.5}).class_weight == ((0, 0.5), (2, 3.0))
    with pytest.raises(ValueError, match="class_weight must be None, 'balanced'"):
        TrainSettings(class_weight="balance")
    with pytest.raises(TypeError, match="class indices"):
        TrainSettings(class_weight={"yes": 2.0})
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be >= 0"):
        TrainSettings(class_weight={1: -1})
    stored = TrainSettings(class_weight={1: 2.0}).as_dict()
    assert TrainSettings(**json.loads(json.dumps(stored))).class_weight == ((1, 2.0),)  # a checkpoint's JSON
    numbers = {TrainSettings(class_weight=c).as_numbers()["class_weight"] for c in (None, "balanced", {1: 2.0})}
    assert len(numbers) == 3  # the ranks tell them apart


def _fit(y_form, seed=0, **options):
    X, y = rare_rows()
    loss, Y = {"labels": ("cross_entropy", y), "onehot": ("mse", np.eye(3)[y])}[y_form]
    net = MLP([4, 6, 3], output="softmax" if loss == "cross_entropy" else "sigmoid", loss=loss, dtype="float64",
              seed=seed, device="cpu")  # fmt: skip
    Trainer(net, X, Y, lr=0.1, batch_size=16, **options).run(3)
    return np.concatenate([np.ravel(W) for W in net.weights])


@pytest.mark.parametrize("y_form", ["labels", "onehot"])
def test_class_weights_are_row_weights_times_the_sample_weights(y_form):
    _, y = rare_rows()
    cw = compute_sample_weight("balanced", y)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    np.testing.assert_allclose(_fit(y_form, class_weight="balanced"), _fit(y_form, sample_weight=cw), atol=1e-13)
    # "balanced" counts the rows by their sample weights, as scikit-learn >= 1.8 does
    cw_sw = compute_class_weight("balanced", classes=np.arange(3), y=y, sample_weight=sw)[y]
    np.testing.assert_allclose(_fit(y_form, class_weight="balanced", sample_weight=sw),
                               _fit(y_form, sample_weight=sw * cw_sw), atol=1e-13)  # fmt: skip
    assert not np.allclose(_fit(y_form, class_weight="balanced"), _fit(y_form))


def test_mlp_fit_takes_class_weight_and_refuses_it_for_numbers():
    X, y = rare_rows()
    net = MLP([4, 3], device="cpu", dtype="float64")
    net.fit(X, y, 2, class_weight={2: 4.0})
    reg = MLP([4, 1], output="identity", loss="mse", device="cpu")
    with pytest.raises(ValueError, match="class_weight needs one class per row"):
        reg.fit(X, X[:, 0] * 3.5, 1, class_weight="balanced")


def test_the_validation_loss_is_weighted_as_the_training_loss():
    # the kept epoch follows the weighted objective: with balanced weights, the validation loss is theirs too
    X, y = rare_rows()
    net = MLP([4, 6, 3], device="cpu", dtype="float64", seed=0)
    history = net.fit(X[:200], y[:200], 2, validation_data=(X[200:], y[200:]), class_weight="balanced")
    w = compute_sample_weight("balanced", y[200:])
    p = net.predict_proba(X[200:])[np.arange(100), y[200:]]
    assert history["val_loss"][-1] == pytest.approx(float((w * -np.log(p)).sum() / w.sum()), rel=1e-9)


# -- gpubp.MLPClassifier ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("class_weight", ["balanced", {0: 0.5, 2: 3.0}])
def test_the_classifier_weighs_as_sklearn_weighs_the_sample_weights(class_weight):
    X, y = rare_rows()
    sw = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    common = dict(hidden_layer_sizes=(7,), random_state=3, batch_size=32, max_iter=5, learning_rate_init=0.01)
    ours = MLPClassifier(dtype="float64", device="cpu", class_weight=class_weight, **common).fit(X, y, sample_weight=sw)
    by_class = compute_class_weight(class_weight, classes=np.arange(3), y=y, sample_weight=sw)[y]
    theirs = SkClassifier(**common).fit(X, y, sample_weight=sw * by_class)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    plain = MLPClassifier(dtype="float64", device="cpu", **common).fit(X, y, sample_weight=sw)
    assert not np.allclose(plain.coefs_[0], ours.coefs_[0])


def test_partial_fit_balances_the_rows_of_each_call():
    X, y = rare_rows()
    common = dict(hidden_layer_sizes=(5,), random_state=0, device="cpu", dtype="float64")
    balanced = MLPClassifier(class_weight="balanced", **common).partial_fit(X, y, classes=[0, 1, 2])
    weighted = MLPClassifier(**common).partial_fit(X, y, classes=[0, 1, 2],
                                                   sample_weight=compute_sample_weight("balanced", y))  # fmt: skip
    np.testing.assert_allclose(balanced.coefs_[0], weighted.coefs_[0], rtol=0, atol=1e-14)


_CHECKS = parametrize_with_checks([MLPClassifier(max_iter=100, dtype="float64", class_weight="balanced")])
_CHECKS = pytest.mark.parametrize(_CHECKS.args[0], list(_CHECKS.args[1]), **_CHECKS.kwargs)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@_CHECKS
def test_sklearn_estimator_checks_with_balanced_class_weight(estimator, check):
    check(estimator)


# -- the command --------------------------------------------------------------------------------


@pytest.fixture
def rare(tmp_path, monkeypatch):
    """2,000 rows, 3 % positives that the features tell apart only in part."""
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.03).astype(np.int64)
    X = rng.normal(size=(2000, 4)) + 1.2 * y[:, None] * [1, 1, 0, 0]
    pd.DataFrame(X, columns=list("abcd")).assign(churn=np.where(y == 1, "yes", "no")).to_csv("rare.csv", index=False)


def test_class_weight_balanced_finds_the_rare_class(capsys, rare):
    runs = {}
    for weighted in (False, True):
        extra = ("--class-weight", "balanced") if weighted else ()
        code, out, err = cli(capsys, "train", "--data", "rare.csv", "--label-column", "churn", "--epochs", "10",
                             "--hidden", "16", *extra, "--save", f"m{int(weighted)}.npz", "--json")  # fmt: skip
        assert code == 0, err
        runs[weighted] = json.loads(out)
    assert runs[False]["test_balanced_accuracy"] < 0.7  # the majority class nearly always
    assert "--class-weight balanced trades accuracy for the rare classes" in err  # not advice to do what was done
    assert runs[True]["test_balanced_accuracy"] > runs[False]["test_balanced_accuracy"] + 0.1
    # evaluate reads the class weights nowhere: the model is scored as any other
    code, out, err = cli(capsys, "evaluate", "m1.npz", "--json")
    assert json.loads(out)["balanced_accuracy"] == pytest.approx(runs[True]["test_balanced_accuracy"])
    assert "the model's --class-weight trades accuracy for the rare classes" in err


def test_class_weight_with_regress_is_refused(capsys, rare):
    line = refused(capsys, "train", "--data", "rare.csv", "--label-column", "a", "--task", "regress",
                   "--class-weight", "balanced")  # fmt: skip
    assert "--class-weight weighs classes, and --task regress has none" in line
