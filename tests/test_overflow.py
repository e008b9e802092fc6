"""Values the run cannot hold (issue #26, case 7): refused before training, never after, naming the
file, the line as the user counts it, and the column by name."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cli_calls import cli, refused

from gpubp.data import DataError, Dataset, RawData
from gpubp.limits import check_dtype


def write(path, X, y, header=True, label="label"):
    with open(path, "w") as f:
        if header:
            f.write("a,b,c," + label + "\n")
        for row, t in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + repr(float(t) if label != "label" else int(t)) + "\n")


@pytest.fixture
def rows(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    return X, (X[:, 0] > 0).astype(int)


def test_a_value_past_float32_is_refused_before_training(capsys, rows):
    # 1e39 had warned, trained every epoch, written the model, then failed on the test rows
    X, y = rows
    X[10, 1] = 1e39
    write("f.csv", X, y)
    line = refused(capsys, "train", "--data", "f.csv", "--epochs", "2", "--save", "m.npz")
    assert line == ("gpubp train: error: f.csv: line 12, column 'b': 1e+39 is too large for float32 (at most "
                    "3.403e+38): give --dtype float64, or divide the column by a constant")  # fmt: skip
    assert not os.path.exists("m.npz")
    out, _ = capsys.readouterr()
    assert "epoch" not in out


def test_float64_holds_it(capsys, rows):
    X, y = rows
    X[10, 1] = 1e39
    write("f.csv", X, y)
    code, _, err = cli(capsys, "train", "--data", "f.csv", "--epochs", "1", "--no-save", "--dtype", "float64")
    assert code == 0, err


def test_a_value_too_large_to_scale_is_named_by_line_and_column(capsys, rows):
    # 1e300 had been named 'column 2' (from 0, no file, no line)
    X, y = rows
    X[20, 2] = 1e300
    write("f.csv", X, y)
    line = refused(capsys, "train", "--data", "f.csv", "--epochs", "1", "--dtype", "float64", "--no-save")
    assert line.startswith("gpubp train: error: f.csv: line 22, column 'c': 1e+300 is too large to scale")


def test_a_headerless_file_counts_the_columns_of_the_file(capsys, rows):
    X, y = rows
    X[20, 2] = 1e300
    with open("f.csv", "w") as f:  # the label first, then the three features
        f.writelines(f"{t}," + ",".join(repr(float(v)) for v in row) + "\n" for row, t in zip(X, y))
    line = refused(capsys, "train", "--data", "f.csv", "--label-column", "0", "--epochs", "1", "--no-save")
    # the label is the file's first column, so feature c is the file's fourth
    assert "f.csv: line 21, column 4: 1e+300 is too large to scale" in line


@pytest.mark.parametrize(("value", "cause"), [(1e300, "is too large to scale"), (1e39, "is too large for float32")])
def test_a_target_too_large_names_its_line(capsys, rows, value, cause):
    # the target's 1e300 had been reported as its scaled value, at another row
    X, _ = rows
    price = X[:, 0] * 3.0
    price[30] = value
    write("p.csv", X, price, label="price")
    line = refused(capsys, "train", "--data", "p.csv", "--task", "regress", "--epochs", "1", "--no-save")
    assert f"p.csv: line 32, column 'price': {value:g} {cause}" in line


def test_a_value_that_overflows_once_scaled_is_refused(rows):
    X, y = rows
    X[:, 0] *= 1e-30  # a spread of 1e-30 on the training rows
    ds = Dataset.prepare(RawData(X.copy(), y, "x.npz"))
    ds.X[ds.test[0], 0] = 1e10  # a held-out value: 1e40 once scaled
    with pytest.raises(DataError) as err:
        check_dtype(ds, "float32")
    message = str(err.value)
    assert message.startswith(f"x.npz: row {ds.test[0]}, feature 0 (both from 0): 1e+10 becomes ")
    assert "once scaled (standard scaling, fitted on the training rows), too large for float32" in message
    check_dtype(ds, "float64")  # float64 holds 1e40
