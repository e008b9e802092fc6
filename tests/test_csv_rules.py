"""CSV files that read two ways: each rule of docs/data-formats.md that decides by evidence, and
each case where the evidence is not enough and the file is refused naming the option that decides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpubp.columns import Columns
from gpubp.data import DataError, Dataset, RawData, load_data, row_hashes, scored_rows


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- delimiter and decimal mark -------------------------------------------------------------------


def test_a_one_column_file_with_decimal_commas_is_one_column(tmp_path):
    # 'x' over 1,5: ',' split the rows but not the header, and pandas made the extra cell an index
    cols = Columns.of(["x"], 1, "y", 1)
    raw = load_data(write(tmp_path, "p.csv", "x\n1,50\n2,50\n3,25\n"), columns=cols)
    np.testing.assert_array_equal(raw.X[:, 0], [1.5, 2.5, 3.25])


def test_a_delimiter_tie_goes_to_the_reading_whose_cells_are_numbers(tmp_path):
    # ',' and ';' both split '1,5;2' into two cells: only ';' gives numbers ('5;2' is no label)
    raw = load_data(write(tmp_path, "s.csv", "1,5;2\n2,5;3\n3,5;2\n"))
    np.testing.assert_array_equal(raw.X[:, 0], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(raw.y, [2, 3, 2])
    raw = load_data(write(tmp_path, "i.csv", "5,1;3,5;1,4;0,2;0\n4,9;3,0;1,4;0,2;0\n6,0;3,0;4,8;1,8;2\n"))
    np.testing.assert_array_equal(raw.X[0], [5.1, 3.5, 1.4, 0.2])


def test_two_plausible_readings_are_refused_naming_delimiter(tmp_path):
    # '1,5' alone on a line: one number with a decimal comma, or two whole numbers
    path = write(tmp_path, "o.csv", "1,5\n2,5\n3,25\n")
    with pytest.raises(DataError, match=r"',' \(2 columns\) or ';' \(1 column, decimal commas\): choose with "
                                         r"--delimiter"):  # fmt: skip
        load_data(path)
    assert load_data(path, delimiter=",").X.shape == (3, 1)


def test_a_cell_holding_another_delimiter_hints_at_delimiter(tmp_path):
    path = write(tmp_path, "i.csv", "5,1;3,5;0\n4,9;3,0;1\n")
    with pytest.raises(DataError, match=r"not a number: '1;3'.*choose the delimiter with --delimiter"):
        load_data(path, delimiter=",")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a\tb\tlabel\n1,234\t2\t0\n2,345\t3\t1\n", "'1,234' may be a decimal comma or a thousands separator"),
        (
            "a\tb\tlabel\n1,5\t0.5\t0\n2,5\t1.5\t1\n",
            r"both as '1,5' \(a decimal comma\) on line 2, column 'a' and '0.5' on line 2, column 'b'",
        ),
        (
            "a\tb\tlabel\n1,5\t2\t0\n1,250,000\t3\t1\n",
            r"both as '1,5' \(a decimal comma\) on line 2, column 'a' and '1,250,000' on line 3, column 'a'",
        ),
    ],
)
def test_decimal_commas_must_read_one_way(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_data(write(tmp_path, "t.tsv", text))


def test_thousands_separators_beside_decimal_points(tmp_path):
    raw = load_data(write(tmp_path, "t.tsv", "price\tarea\tlabel\n1,250\t0.5\t0\n2,400\t1.5\t1\n980\t2.5\t1\n"))
    np.testing.assert_array_equal(raw.X[:, 0], [1250, 2400, 980])
    assert any("thousands separators" in n for n in raw.notes)


# -- header -----------------------------------------------------------------------------------


def test_a_models_numeric_names_in_another_order_are_a_header(tmp_path):
    # pandas' columns 0..3 written reversed had been read as a data row, then matched by position
    cols = Columns.of(["0", "1", "2", "3"], 4, "label", 4)
    raw = load_data(write(tmp_path, "r.csv", "3,2,1,0,label\n0.2,1.4,3.5,5.1,0\n0.3,1.5,3.0,4.9,1\n"), columns=cols)
    np.testing.assert_array_equal(raw.X, [[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.5, 0.3]])
    np.testing.assert_array_equal(raw.y, [0, 1])
    raw = load_data(write(tmp_path, "f.csv", "3,2,1,0\n0.2,1.4,3.5,5.1\n"), columns=cols)
    np.testing.assert_array_equal(raw.X, [[5.1, 3.5, 1.4, 0.2]])


@pytest.mark.parametrize(
    "text",
    ["0,1,2,3,species\n5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n6.0,3.0,4.8,1.8,virginica\n",
     "400,500,600,species\n0.1,0.2,0.3,a\n0.2,0.3,0.4,b\n0.3,0.3,0.1,a\n"],
)  # fmt: skip
def test_names_of_numbers_over_fractions_and_a_label_name_are_a_header(tmp_path, text):
    raw = load_data(write(tmp_path, "h.csv", text))
    assert raw.label_column == "species"
    assert raw.X.shape[0] == text.count("\n") - 1
    assert "species" not in set(raw.y)


def test_a_sample_of_whole_numbers_above_its_class_is_data(tmp_path):
    raw = load_data(write(tmp_path, "d.csv", "5,3,1,0,setosa\n5.1,3.5,1.4,0.2,setosa\n"))
    assert raw.X.shape == (2, 4)


def test_a_first_line_that_cannot_be_told_is_refused_naming_header(tmp_path):
    # 0,1,2 above whole numbers: pandas' names or a sample; names of numbers and a new text cell over integers
    for text in ("0,1,2\n3,4,1\n5,6,0\n", "0,1,2,kind\n1,2,3,a\n4,5,6,b\n"):
        path = write(tmp_path, "u.csv", text)
        with pytest.raises(DataError, match=r"cannot tell whether the first line .* --header or --no-header"):
            load_data(path)
        assert load_data(path, header=False).X.shape[0] == 3
        assert load_data(path, header=True).X.shape[0] == 2


def test_an_empty_cell_is_no_header_evidence(tmp_path):
    path = write(tmp_path, "m.csv", "5.1,,1.4,setosa\n4.9,3.0,1.4,setosa\n6.0,3.0,4.8,virginica\n")
    raw = load_data(path)  # the first line is data, its empty cell a missing value (gpubp.tables fills it)
    assert raw.feature_names is None
    assert len(raw.y) == 3
    assert np.isnan(raw.frame.iloc[0, 1])


def test_a_first_line_longer_than_64_kib_is_read_whole(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 6000))
    frame = pd.DataFrame(X).assign(label=["a", "b", "a", "b"])
    frame.to_csv(tmp_path / "w.csv", header=False, index=False)
    assert (tmp_path / "w.csv").stat().st_size > 4 * (1 << 16)
    raw = load_data(str(tmp_path / "w.csv"))
    assert raw.X.shape == (4, 6000)
    np.testing.assert_array_equal(raw.y, ["a", "b", "a", "b"])


# -- index and label columns ----------------------------------------------------------------------


def test_an_unnamed_first_column_is_dropped_as_an_index_or_refused(tmp_path):
    # pd.concat leaves an index with repeated values: it had become a feature
    raw = load_data(write(tmp_path, "c.csv", ",a,b,label\n0,1.0,2.0,0\n1,1.5,2.5,1\n0,2.0,3.0,0\n"))
    assert raw.feature_names == ["a", "b"]
    assert any("pandas index: dropped" in n and "repeated" in n for n in raw.notes)
    with pytest.raises(DataError, match="the first column has no name in the header and does not hold whole"):
        load_data(write(tmp_path, "t.csv", ",a,b,label\n0.5,1.0,2.0,0\n1.5,1.5,2.5,1\n"))


def test_the_label_name_is_chosen_in_an_order_of_preference_and_said(tmp_path):
    raw = load_data(write(tmp_path, "xy.csv", "x,y,class\n0.1,0.5,0\n0.2,0.7,1\n0.3,0.9,0\n"))
    assert raw.label_column == "class"
    assert raw.feature_names == ["x", "y"]
    assert any("label column 'class', chosen over 'y'" in n for n in raw.notes)


def test_labels_are_compared_as_written(tmp_path):
    raw = load_data(write(tmp_path, "n.csv", "a,b,region\n1,2,EU\n2,3,NA\n3,4,None\n4,5,True\n"))
    np.testing.assert_array_equal(raw.y, ["EU", "NA", "None", "True"])
    raw = load_data(write(tmp_path, "t.csv", "a,b,label\n1,2,True\n2,3,False\n"))
    np.testing.assert_array_equal(raw.y, ["True", "False"])
    raw = load_data(write(tmp_path, "f.csv", "a,b,label\n1,NA,0\n2,3,1\n"))  # a feature's NA is missing
    np.testing.assert_array_equal(raw.frame["b"], [np.nan, 3])


def test_spaces_after_commas_read_alike_by_the_command_and_model_predict(tmp_path):
    raw = load_data(write(tmp_path, "s.csv", "a, b, label\n0.1, -0.1, 1\n0.6, 0.1, 0\n"))
    assert raw.feature_names == ["a", "b"]
    np.testing.assert_array_equal(raw.X, [[0.1, -0.1], [0.6, 0.1]])


# -- the rows a model was trained on --------------------------------------------------------------


def test_the_same_rows_stored_as_float32_are_recognised(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = np.arange(60) % 2
    ds = Dataset.prepare(RawData(X, y, "x64"), test_fraction=0.2)
    # the held-out rows are found by their row hashes (features rounded to float32), stored in the model
    hashes = {"heldout": row_hashes(ds.X, ds.test), "trained": row_hashes(ds.X, np.concatenate([ds.train, ds.val]))}
    _, _, rows, which, _ = scored_rows(RawData(X.astype(np.float32).astype(np.float64), y, "x32"), hashes=hashes)
    assert which == "test"
    assert rows.tolist() == ds.test.tolist()
    # a model saved before the hashes (a fingerprint alone) cannot tell: every row
    assert scored_rows(RawData(X, y, "x64"))[3] == "all"


def test_model_predict_matches_integer_column_names_as_the_command_does(tmp_path, monkeypatch):
    import gpubp
    from gpubp.cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 4))
    frame = pd.DataFrame(X).assign(label=(X[:, 0] > 0).astype(int))  # columns 0, 1, 2, 3, 'label'
    frame.to_csv("f.csv", index=False)
    assert main(["train", "--data", "f.csv", "--epochs", "5", "--hidden", "8", "--save", "m.npz", "--quiet"]) == 0
    model = gpubp.load("m.npz", device="cpu")
    reordered = frame[[3, 2, 1, 0]]  # integer names, reordered: matched by str(name), not by position
    np.testing.assert_array_equal(model.predict(reordered), model.predict(X))
    reordered.to_csv("r.csv", index=False)
    assert main(["predict", "m.npz", "--data", "r.csv", "--out", "p.csv", "--quiet"]) == 0
    np.testing.assert_array_equal(pd.read_csv("p.csv")["prediction"], model.predict(X))


def test_gradcheck_reads_the_csv_with_the_options_given(tmp_path, monkeypatch, capsys):
    from gpubp.cli import main

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "s.csv", "".join(f"{i},5;{i % 3},25;{i % 2}\n" for i in range(30)))
    # --delimiter and --header had been dropped by gradcheck: ';' read here, ',' refused as two readings
    assert main(["gradcheck", "--data", "s.csv", "--delimiter", ",", "--hidden", "4"]) == 2
    assert "choose the delimiter with --delimiter" in capsys.readouterr().err
    assert main(["gradcheck", "--data", "s.csv", "--delimiter", ";", "--no-header", "--hidden", "4"]) == 0
