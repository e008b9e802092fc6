"""--missing refuse reads the columns the network reads: a dropped column's gaps are no matter, and a
trained model's refusal gives advice that works at predict time."""

from __future__ import annotations

import numpy as np
import pytest
from cli_calls import cli, refused


@pytest.fixture
def gappy(tmp_path, monkeypatch):
    """200 rows: 'age' with 20 empty cells, 'income' and 'city' full, label 'churn'."""
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    lines = ["age,city,income,churn"]
    for i in range(200):
        income = rng.normal(50, 10)
        age = "" if i % 10 == 3 else f"{rng.integers(18, 80)}"
        lines.append(f"{age},{rng.choice(['Paris', 'Lyon'])},{income:.1f},{'yes' if income > 50 else 'no'}")
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("choice", [("--drop", "age"), ("--features", "city,income")])
def test_a_column_left_out_is_not_counted_against_missing_refuse(capsys, gappy, choice):
    code, out, err = cli(capsys, "train", "--data", "c.csv", *choice, "--missing", "refuse", "--epochs", "2",
                         "--no-save")  # fmt: skip
    assert code == 0, err
    assert "test accuracy" in out


def test_the_age_gaps_are_still_refused_when_age_is_read(capsys, gappy):
    line = refused(capsys, "train", "--data", "c.csv", "--missing", "refuse", "--epochs", "2", "--no-save")
    assert "'age' 20 (first at line 5)" in line
    assert "leave --missing out" in line


def test_a_refusing_model_says_what_to_do_at_predict_time(capsys, gappy, tmp_path):
    code, _, err = cli(capsys, "train", "--data", "c.csv", "--drop", "age", "--missing", "refuse", "--epochs", "2",
                       "--save", "m.npz")  # fmt: skip
    assert code == 0, err
    (tmp_path / "new.csv").write_text("age,city,income\n30,Paris,\n")
    line = refused(capsys, "predict", "m.npz", "--data", "new.csv", "--out", "p.csv")
    assert "'income' 1" in line
    assert "leave --missing out" not in line  # predict has no --missing: that advice could not be followed
    assert "trained with --missing refuse" in line


@pytest.mark.parametrize("option", ["--drop", "--features"])
def test_naming_the_label_in_drop_or_features_says_it_is_the_label(capsys, gappy, option):
    line = refused(capsys, "train", "--data", "c.csv", option, "churn", "--no-save")
    assert "names 'churn', the label column" in line  # it had said "no column 'churn'"
