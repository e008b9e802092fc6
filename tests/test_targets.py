"""Targets (issue #26, case 5): a target of many whole numbers with few rows each is asked about
(--task regress or --task classify), never silently a many-class classifier."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused


@pytest.fixture
def prices(tmp_path, monkeypatch):
    """500 houses, the price in $10k steps: 54 distinct values, about 9 rows each."""
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    steps = np.clip(np.round(27 + 9 * (X @ [1.0, 0.6, -0.4])), 1, 54)
    steps[:54] = np.arange(1, 55)  # every step taken
    pd.DataFrame(X, columns=["rooms", "age", "crime"]).assign(price=(10_000 * steps).astype(int)).to_csv(
        "houses.csv", index=False
    )


def test_many_whole_numbers_with_few_rows_each_are_asked_about(capsys, prices):
    line = refused(capsys, "train", "--data", "houses.csv", "--label-column", "price", "--epochs", "1")
    assert "houses.csv: the target 'price' holds 54 distinct whole numbers (10000, 20000, 30000, ..., 540000)" in line
    assert "9.3 rows per value" in line
    assert "--task regress or --task classify" in line


def test_the_task_given_is_the_task_trained(capsys, prices):
    code, out, err = cli(capsys, "train", "--data", "houses.csv", "--label-column", "price", "--task", "regress",
                         "--no-save", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["test_r2"] > 0.6  # 54 of the rows have made-up prices
    code, out, err = cli(capsys, "train", "--data", "houses.csv", "--label-column", "price", "--task", "classify",
                         "--epochs", "1", "--no-save", "--json", "--test-fraction", "0.1",
                         "--val-fraction", "0")  # fmt: skip
    assert code == 0, err  # asked for: 54 classes, as the user said


@pytest.mark.parametrize(("classes", "rows"), [(10, 30), (30, 60)])
def test_class_codes_with_rows_enough_are_classes(capsys, tmp_path, monkeypatch, classes, rows):
    # ten digits with 30 rows each, or 30 codes with 60 rows each: classes, as before
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), rows)
    X = rng.normal(size=(len(y), 2)) + y[:, None]
    pd.DataFrame(X, columns=["a", "b"]).assign(code=y).to_csv("codes.csv", index=False)
    code, out, err = cli(capsys, "train", "--data", "codes.csv", "--label-column", "code", "--epochs", "1",
                         "--no-save", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
