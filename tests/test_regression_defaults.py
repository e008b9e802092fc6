"""`gpubp train --task regress` with its defaults trains: at least scikit-learn's RidgeCV (inputs
standard-scaled, fitted on the same training rows, scored on the same test rows) minus 0.05 in
test R², on diabetes and make_regression, for split seeds 0-3. The linear baseline is the bar:
scikit-learn's own MLPRegressor() scores below zero on diabetes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpubp.cli import main
from gpubp.data import split_rows

pytestmark = pytest.mark.slow  # 8 runs of 100 epochs: 20-130 s on two cores


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sklearn.datasets import load_diabetes, make_regression

    folder = tmp_path_factory.mktemp("regression")
    load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    X, y = make_regression(n_samples=2000, noise=10, random_state=0)
    pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])]).assign(target=y).to_csv(
        folder / "make_regression.csv", index=False
    )
    return folder


def ridge_r2(path, seed: int) -> float:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(path)
    X, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    train, _, test = split_rows(None, len(y), 0.1, 0.2, seed)  # the command's split for these defaults
    scaler = StandardScaler().fit(X[train])
    model = RidgeCV().fit(scaler.transform(X[train]), y[train])
    return r2_score(y[test], model.predict(scaler.transform(X[test])))


@pytest.mark.parametrize("name", ["diabetes", "make_regression"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_regression_defaults_reach_a_linear_baseline(files, capsys, monkeypatch, name, seed):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    path = files / f"{name}.csv"
    code = main(["train", "--data", str(path), "--task", "regress", "--split-seed", str(seed), "--json",
                 "--quiet", "--no-save"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    bar = ridge_r2(path, seed) - 0.05
    assert result["test_r2"] >= bar, f"{name}, split seed {seed}: R² {result['test_r2']:.3f} < {bar:.3f}"
    assert result["kept"] == "best validation loss"
    assert np.isfinite(result["test_r2"])
