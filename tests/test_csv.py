"""CSV files as people write them: each rule of docs/data-formats.md, with the file that needs it."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from gpubp.columns import Columns
from gpubp.data import DataError, Dataset, load_data


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["target"] = np.array(["setosa", "versicolor", "virginica"])[bunch.target]
    return frame


def write(path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


# -- text, quoting, line ends -----------------------------------------------------------------------


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    # Excel's "CSV UTF-8": the BOM had hidden the label column 'label' (#4)
    raw = load_data(write(tmp_path / "bom.csv", "label,a,b\n1,2,3\n0,4,5\n", "utf-8-sig"))
    assert raw.label_column == "label"
    assert raw.feature_names == ["a", "b"]
    assert raw.y.tolist() == [1, 0]


def test_windows_line_ends_quoting_and_blank_lines(tmp_path):
    path = write(tmp_path / "w.csv", 'a,b,kind\r\n1,2,"Iris setosa, L."\r\n\r\n3,4,"b ""x"""\r\n')
    raw = load_data(path)
    assert raw.X.tolist() == [[1, 2], [3, 4]]
    assert raw.y.tolist() == ["Iris setosa, L.", 'b "x"']


def test_gzipped_files_by_content(tmp_path):
    with gzip.open(tmp_path / "g.csv.gz", "wt") as f:
        f.write("a,b,label\n1,2,0\n3,4,1\n")
    assert load_data(str(tmp_path / "g.csv.gz")).X.tolist() == [[1, 2], [3, 4]]


# -- delimiter and decimal mark ---------------------------------------------------------------------


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolons_tabs_and_decimal_commas(tmp_path, sep):
    # a spreadsheet's export in a decimal-comma locale: was "not a number: '1,5' (… choose it with
    # --label-column)", the wrong advice (issue 21, item 8)
    text = (
        sep.join(["a", "b", "label"]) + "\n" + "\n".join(sep.join(r) for r in [["1,5", "2", "x"], ["3", "-4,25", "y"]])
    )
    raw = load_data(write(tmp_path / "d.csv", text + "\n"))
    assert raw.X.tolist() == [[1.5, 2.0], [3.0, -4.25]]
    assert raw.y.tolist() == ["x", "y"]
    assert any("decimal commas" in n for n in raw.notes)


def test_the_delimiter_can_be_chosen(tmp_path):
    path = write(tmp_path / "p.txt", "a|b|label\n1|2|0\n3|4|1\n")
    assert load_data(path, delimiter="|").X.tolist() == [[1, 2], [3, 4]]


def test_a_decimal_comma_in_a_comma_file_gets_advice_about_the_delimiter(tmp_path):
    path = write(tmp_path / "q.csv", 'a,b,label\n"1,5",2,0\n"3,5",4,1\n')
    with pytest.raises(DataError, match=r"not a number: '1,5' \(a decimal comma") as err:
        load_data(path)
    assert "--label-column" not in str(err.value)


def test_label_column_and_delimiter_apply_to_csv_files_only(tmp_path):
    for option in ({"label_column": "target"}, {"delimiter": ";"}):
        with pytest.raises(DataError, match="applies to CSV files"):
            load_data("digits", **option)


def test_without_pandas_one_line_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DataError, match=r"reading CSV files needs pandas: pip install 'gpubp\[csv\]'"):
        load_data(write(tmp_path / "a.csv", "a,label\n1,0\n"))


# -- the header ---------------------------------------------------------------------------------------


def test_rule_1_text_over_numbers_is_a_header(tmp_path):
    raw = load_data(write(tmp_path / "h.csv", "f1,f2,species\n1,2,cat\n3,4,dog\n"))
    assert raw.feature_names == ["f1", "f2"]
    assert len(raw.X) == 2


def test_rule_2_no_header_and_string_labels(tmp_path, iris):
    # the first row had been taken for a header: 149 of 150 rows, "label: 'setosa'" (#6)
    iris.to_csv(tmp_path / "iris.csv", header=False, index=False)
    raw = load_data(str(tmp_path / "iris.csv"))
    assert raw.X.shape == (150, 4)
    assert raw.feature_names is None
    assert raw.label_column == 4
    assert set(raw.y.tolist()) == {"setosa", "versicolor", "virginica"}


def test_rule_3_a_numeric_header_only_as_pandas_writes_it(tmp_path, rng):
    # pandas' unnamed columns (0..k-1) had been read as a data row: an extra row and class (#5)
    frame = pd.DataFrame(np.column_stack([rng.normal(size=(20, 3)), np.arange(20) % 2]))
    frame.to_csv(tmp_path / "n.csv", index=False)
    raw = load_data(str(tmp_path / "n.csv"))
    assert raw.X.shape == (20, 3)
    assert raw.feature_names == ["0", "1", "2"]
    np.testing.assert_allclose(raw.X, frame.to_numpy()[:, :3])
    frame.to_csv(tmp_path / "i.csv")  # with the index: ",0,1,2,3"
    assert load_data(str(tmp_path / "i.csv")).X.shape == (20, 3)
    # any other first row of numbers is data
    raw = load_data(write(tmp_path / "d.csv", "0,1.5,2.5\n1,3.5,4.5\n"))
    assert raw.X.shape == (2, 2)


def test_rule_4_a_pandas_index_is_dropped_and_said(tmp_path, rng):
    # an index on rows sorted by class had become a feature that gives the label away (#3)
    frame = pd.DataFrame(rng.normal(size=(30, 2)), columns=["a", "b"]).assign(label=np.repeat([0, 1, 2], 10))
    frame.to_csv(tmp_path / "x.csv")
    raw = load_data(str(tmp_path / "x.csv"))
    assert raw.feature_names == ["a", "b"]
    assert any("index" in n for n in raw.notes)
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "shuffled.csv")  # a permuted index: still one
    assert load_data(str(tmp_path / "shuffled.csv")).feature_names == ["a", "b"]
    # a named first column of whole numbers is a feature
    frame.rename_axis("id").to_csv(tmp_path / "named.csv")
    assert load_data(str(tmp_path / "named.csv")).feature_names == ["id", "a", "b"]


def test_rule_5_the_label_column(tmp_path):
    text = "a,Target,b\n1,0,2\n3,1,4\n"
    assert load_data(write(tmp_path / "t.csv", text)).label_column == "Target"  # by name, any case
    assert load_data(write(tmp_path / "l.csv", "a,b,c\n1,2,0\n3,4,1\n")).label_column == "c"  # else the last
    assert load_data(str(tmp_path / "t.csv"), label_column="a").feature_names == ["Target", "b"]
    assert load_data(str(tmp_path / "t.csv"), label_column="0").label_column == "a"  # a position
    assert load_data(str(tmp_path / "t.csv"), label_column="-1").label_column == "b"
    with pytest.raises(DataError, match=r"no label column 'c' \(columns are a, Target, b\)"):
        load_data(str(tmp_path / "t.csv"), label_column="c")


def test_rule_6_labels_numbers_or_text(tmp_path):
    assert load_data(write(tmp_path / "n.csv", "a,label\n1,2\n3,4\n")).y.dtype == np.float64
    assert load_data(write(tmp_path / "t.csv", "a,label\n1,x\n3,4\n")).y.tolist() == ["x", "4"]


# -- columns at evaluate and predict (rules 8, 9) ---------------------------------------------------


def _columns(names, label="target", label_index=None):
    return Columns.of(names, len(names), label, label_index)


def test_rule_8_features_by_name_in_any_order_label_recognised_extras_said(tmp_path, iris):
    cols = _columns(list(iris.columns[:4]), "target", 4)
    frame = iris.assign(row_id=np.arange(150))[["row_id", "target", *iris.columns[3::-1]]]  # reversed, extras
    frame.to_csv(tmp_path / "r.csv", index=False)
    raw = load_data(str(tmp_path / "r.csv"), columns=cols)
    np.testing.assert_array_equal(raw.X, iris.iloc[:, :4].to_numpy())  # in the model's order (#1)
    assert raw.y.tolist() == iris["target"].tolist()  # the label by its stored name
    assert raw.notes == ["columns not in the model, ignored: row_id"]


def test_rule_8_a_missing_feature_is_refused_by_name(tmp_path, iris):
    # the label had become a feature and --label-column was ignored (#2)
    cols = _columns(list(iris.columns[:4]), "target", 4)
    iris.drop(columns="sepal_width").to_csv(tmp_path / "m.csv", index=False)
    for label_column in (None, "target"):
        with pytest.raises(DataError, match=r"m\.csv: no column 'sepal_width', which the model was trained on"):
            load_data(str(tmp_path / "m.csv"), label_column, columns=cols)
    iris.to_csv(tmp_path / "all.csv", index=False)
    with pytest.raises(DataError, match=r"no label column 'kind'"):
        load_data(str(tmp_path / "all.csv"), "kind", columns=cols)


def test_rule_9_without_names_exactly_the_width(tmp_path, iris):
    cols = _columns(list(iris.columns[:4]), "target", 4)
    iris.iloc[:, :4].to_csv(tmp_path / "f.csv", header=False, index=False)
    raw = load_data(str(tmp_path / "f.csv"), columns=cols)
    assert raw.X.shape == (150, 4)
    assert raw.y is None
    iris.to_csv(tmp_path / "l.csv", header=False, index=False)  # the label where the training file had it
    with pytest.raises(DataError, match=r"--label-column INDEX \(it was column 4 at training\)"):
        load_data(str(tmp_path / "l.csv"), columns=cols)  # one more column may be an id as well: not guessed
    assert load_data(str(tmp_path / "l.csv"), 4, columns=cols).y[0] == "setosa"
    iris.iloc[:, :3].to_csv(tmp_path / "s.csv", header=False, index=False)
    with pytest.raises(DataError, match="3 columns and no names to match them by, the model was trained on 4"):
        load_data(str(tmp_path / "s.csv"), columns=cols)
    with pytest.raises(DataError, match="features per row, the model was trained on 4"):
        load_data("digits", columns=cols)


# -- targets ----------------------------------------------------------------------------------------


def test_a_whole_number_target_is_not_214_classes(tmp_path):
    # diabetes (25..346) had been taken as 214 classes with 2 validation rows and 0.00 % accuracy (#11)
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    with pytest.raises(DataError, match=r"classes have fewer than \d+ rows, .* use --task regress"):
        Dataset.prepare(str(tmp_path / "diabetes.csv"))
    assert Dataset.prepare(str(tmp_path / "diabetes.csv"), task="regress").X.shape == (442, 10)
