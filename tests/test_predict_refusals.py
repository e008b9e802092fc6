"""What training refuses, predicting refuses too: a value the model's dtype cannot hold, and a label
column that is one of the model's features."""

from __future__ import annotations

import numpy as np
import pytest
from cli_calls import cli, refused

import gpubp


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A float32 classifier of 'churn' from 'age', 'city', 'income' (a table: one-hot city)."""
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    lines = ["age,city,income,churn"]
    for _ in range(200):
        income = rng.normal(50, 10)
        lines.append(f"{rng.integers(18, 80)},{rng.choice(['Paris', 'Lyon'])},{income:.1f},{int(income > 50)}")
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize(("cell", "said"), [("1e39", "too large for the model's float32"), ("inf", "infinite")])
def test_predict_refuses_a_value_training_would_refuse(capsys, model, cell, said):
    code, _, err = cli(capsys, "train", "--data", "c.csv", "--epochs", "2", "--save", "m.npz")
    assert code == 0, err
    (model / "new.csv").write_text(f"age,city,income\n30,Paris,50\n40,Lyon,{cell}\n")
    line = refused(capsys, "predict", "m.npz", "--data", "new.csv", "--out", "p.csv")
    assert "row 2 (counting from 1), column 'income'" in line, line
    assert said in line
    with pytest.raises(ValueError, match="column 'income'"):
        gpubp.load("m.npz").predict("new.csv")


def test_evaluate_refuses_a_feature_given_as_the_label(capsys, model):
    code, _, err = cli(capsys, "train", "--data", "c.csv", "--epochs", "2", "--save", "m.npz")
    assert code == 0, err
    line = refused(capsys, "evaluate", "m.npz", "--data", "c.csv", "--label-column", "income")
    assert "'income' is one of the features the model reads" in line
    assert "'churn'" in line


def test_a_wrong_decimal_mark_is_refused_not_made_a_category(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    rng = np.random.default_rng(2)
    rows = ["age,income,churn"] + [f"{rng.integers(18, 80)}.0,{rng.random() * 100:.3f},{rng.choice(['yes', 'no'])}"
                                   for _ in range(100)]  # fmt: skip
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    line = refused(capsys, "train", "--data", tmp_path / "c.csv", "--decimal", ",", "--epochs", "1", "--no-save")
    assert "line 2, column 'age': not a number" in line  # it had trained on 'age' as a category of 62 levels
    assert "give --decimal '.'" in line


def test_an_infinite_cell_is_called_infinite_with_advice_that_works(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    rng = np.random.default_rng(4)
    rows = ["a,b,label"] + [f"{rng.random():.3f},{rng.random():.3f},{i % 2}" for i in range(60)]
    rows[7] = "0.5,inf,1"
    (tmp_path / "inf.csv").write_text("\n".join(rows) + "\n")
    for dtype in ("float32", "float64"):  # --dtype float64 had been the advice, and failed the same way
        line = refused(capsys, "train", "--data", tmp_path / "inf.csv", "--dtype", dtype, "--no-save")
        assert "line 8, column 'b': inf is an infinite value" in line, line
        assert "--dtype float64" not in line
