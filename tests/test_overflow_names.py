"""A value the run cannot hold is named by the file's own line and column (issue #26, case 7) when
rows were left out for an empty label, when a table re-encodes its columns (one-hot, an identifier
left out), and in a file without a header: the line as the user counts it, the column of the file."""

from __future__ import annotations

import numpy as np
import pytest
from cli_calls import refused

from gpubp.data import DataError, Dataset
from gpubp.limits import check_dtype
from gpubp.loaders import load_csv


@pytest.fixture(autouse=True)
def here(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)


def write(path, header, rows):
    with open(path, "w") as f:
        if header:
            f.write(header + "\n")
        f.writelines(",".join(str(c) for c in row) + "\n" for row in rows)


def cells(n, big, at, empty=0, ids=False, category=False):
    """Rows of (id,) a, b, label (or a category in place of a); ``big`` in b on the file's data row
    ``at`` (from 0); the first ``empty`` labels left empty."""
    rows = []
    for i in range(n):
        first = "xyz"[i % 3] if category else round(0.3 * i + 0.1, 3)
        label = "" if i < empty else i % 2
        rows.append(([i] if ids else []) + [first, big if i == at else 1.5 * i, label])
    return rows


def train(capsys, path, *more):
    return refused(capsys, "train", "--data", path, "--epochs", "1", "--no-save", *more)


def test_lines_skip_the_rows_left_out_for_an_empty_label(capsys):
    # t2: three empty labels, 1e39 on line 22, had been named line 19
    write("f.csv", "a,b,label", cells(40, "1e39", 20, empty=3))
    assert "f.csv: line 22, column 'b': 1e+39 is too large for float32" in train(capsys, "f.csv")


def test_a_value_too_large_to_scale_after_empty_labels(capsys):
    # t4: the same with 1e300 (its scaling overflows float64), had been named line 20
    write("f.csv", "id,a,b,label", cells(40, "1e300", 20, empty=2, ids=True))
    assert "f.csv: line 22, column 'b': 1e+300 is too large to scale" in train(capsys, "f.csv")


def test_a_one_hot_column_before_it_names_the_right_column(capsys):
    # t1: color's three one-hot columns shifted the index: an IndexError and a traceback
    write("f.csv", "color,big,label", cells(40, "1e39", 20, category=True))
    assert "f.csv: line 22, column 'big': 1e+39 is too large for float32" in train(capsys, "f.csv")


@pytest.mark.parametrize(("big", "cause"), [("1e39", "too large for float32"), ("1e300", "too large to scale")])
def test_an_identifier_left_out_is_not_the_column_named(capsys, big, cause):
    # t3, t6: the id column left out, 'b' had been named 'a'
    write("f.csv", "id,a,b,label", cells(100, big, 50, ids=True))
    assert f"f.csv: line 52, column 'b': {float(big):g} is {cause}" in train(capsys, "f.csv")


def test_a_headerless_file_counts_lines_from_its_first(capsys):
    # t5: no header, a category column then 1e300 on line 21: had been named line 22, column '1'
    write("f.csv", None, cells(40, "1e300", 20, category=True))
    assert "f.csv: line 21, column 2: 1e+300 is too large to scale" in train(capsys, "f.csv", "--dtype", "float64")


def test_a_headerless_file_past_float32(capsys):
    write("f.csv", None, cells(40, "1e39", 20, empty=1, category=True))
    assert "f.csv: line 21, column 2: 1e+39 is too large for float32" in train(capsys, "f.csv")


def test_a_missing_indicator_column_before_it(capsys):
    # a's missing cell adds an indicator column after a: b is X's third column, the file's second
    rows = cells(40, "1e39", 20, empty=1)
    for row in rows[4:14]:
        row[0] = ""
    write("f.csv", "a,b,label", rows)
    assert "f.csv: line 22, column 'b': 1e+39 is too large for float32" in train(capsys, "f.csv")


@pytest.mark.parametrize(("value", "cause"), [("1e300", "is too large to scale"), ("1e39", "is too large for float32")])
def test_a_target_after_empty_labels_names_its_line(capsys, value, cause):
    rows = [[round(0.1 * i, 2), 1.5 * i, "" if i in (3, 7) else (value if i == 30 else 2.0 * i)] for i in range(100)]
    write("p.csv", "a,b,price", rows)
    line = train(capsys, "p.csv", "--task", "regress")
    assert f"p.csv: line 32, column 'price': {float(value):g} {cause}" in line


def test_the_library_names_the_cell_without_an_index_error():
    write("f.csv", "color,big,label", cells(40, "1e39", 20, empty=3, category=True))
    ds = Dataset.prepare(load_csv("f.csv"))
    assert ds.X.shape[1] == 4  # three one-hot columns, then big
    with pytest.raises(DataError, match=r"^f\.csv: line 22, column 'big': 1e\+39 is too large for float32"):
        check_dtype(ds, np.float32)
    check_dtype(ds, np.float64)
