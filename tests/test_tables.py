"""Tables as they come (issue 26's cases 1, 2, 3 and 9): text categories, missing cells, identifiers
and R's files, each rule of docs/data-formats.md "Columns of a table" with a test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

import gpubp
from gpubp.data import Dataset, load_data
from gpubp.tables import MISSING_LEVEL, Table


def people(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A Titanic-like table: a text category, a number with gaps, a boolean, a date; the label
    follows sex and age."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n)
    age = rng.normal(30, 12, n).round(1)
    colour = rng.choice(["red", "green", "blue"], n)
    y = np.where((sex == "female") ^ (age > 40), "yes", "no")
    return pd.DataFrame({"sex": sex, "age": age, "colour": colour, "survived": y})


def write(frame: pd.DataFrame, path, **options) -> str:
    frame.to_csv(path, index=False, **options)
    return str(path)


# -- case 1: text columns of a few levels are categories ----------------------------------------


def test_a_text_column_is_a_category_one_hot_and_said_in_the_log(capsys, tmp_path):
    data = write(people(), tmp_path / "p.csv")
    code, out, err = cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "8",
                         "--save", tmp_path / "m.npz")  # fmt: skip
    assert code == 0, err
    assert "column 'sex': category, 2 levels (female, male), one-hot" in out
    assert "column 'colour': category, 3 levels (blue, green, red), one-hot" in out
    assert "column 'age'" not in out  # a number without missing cells needs no line
    assert "MLP([6, 256, 2]" in out  # 2 + 1 + 3 inputs
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    assert accuracy > 90  # the label follows sex: the category is used, not dropped


def test_model_predict_takes_the_raw_dataframe_and_the_csv_as_the_command(capsys, tmp_path):
    frame = people()
    data = write(frame, tmp_path / "p.csv")
    assert cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "3",
               "--save", tmp_path / "m.npz", "--quiet")[0] == 0  # fmt: skip
    assert cli(capsys, "predict", tmp_path / "m.npz", "--data", data, "--out", tmp_path / "p_out.csv")[0] == 0
    command = pd.read_csv(tmp_path / "p_out.csv")["prediction"].to_numpy()
    model = gpubp.load(tmp_path / "m.npz")
    shuffled = frame[["colour", "survived", "age", "sex"]]  # any order, the label still in
    np.testing.assert_array_equal(model.predict(shuffled), command)
    np.testing.assert_array_equal(model.predict(data), command)
    np.testing.assert_array_equal(model.predict(frame[["sex", "age", "colour"]].to_numpy(dtype=object)), command)


def test_an_unseen_level_at_predict_is_all_zeros_and_counted_naming_the_column(capsys, tmp_path):
    frame = people()
    data = write(frame, tmp_path / "p.csv")
    cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "2", "--save",
        tmp_path / "m.npz", "--quiet")  # fmt: skip
    new = frame.copy()
    new.loc[:4, "colour"] = "purple"
    code, _, err = cli(capsys, "predict", tmp_path / "m.npz", "--data", write(new, tmp_path / "n.csv"), "--out",
                       tmp_path / "o.csv")  # fmt: skip
    assert code == 0, err
    assert "column 'colour': 5 cells hold a level not seen in training ('purple'): encoded as no level" in err
    model = gpubp.load(tmp_path / "m.npz")
    X, notes = model.encode(new[["sex", "age", "colour"]])
    colour = [j for j, f in enumerate(model.table.features) if f.startswith("colour=")]
    assert (X[:5][:, colour] == 0).all()
    assert (X[5:][:, colour].sum(axis=1) == 1).all()
    assert len(notes) == 1


def test_a_column_of_numbers_with_a_stray_word_is_refused_at_its_line_without_label_advice(capsys, tmp_path):
    frame = people(50).astype(object)
    frame.loc[6, "age"] = "old"
    line = refused(capsys, "train", "--data", write(frame, tmp_path / "p.csv"), "--label-column", "survived")
    assert "line 8, column 'age': not a number: 'old'" in line
    assert "--label-column" not in line  # it was given: the old hint misled


# -- case 2: missing cells ----------------------------------------------------------------------


def test_missing_cells_of_every_spelling_are_filled_and_counted_per_column(capsys, tmp_path):
    frame = people().astype(object)
    for i, cell in enumerate(["", "NA", "NaN", "nan", "NULL", "?"]):
        frame.loc[3 + i, "age"] = cell
    frame.loc[[20, 21], "colour"] = ["", "?"]
    code, out, err = cli(capsys, "train", "--data", write(frame, tmp_path / "p.csv"), "--label-column",
                         "survived", "--epochs", "2", "--save", tmp_path / "m.npz")  # fmt: skip
    assert code == 0, err
    age = next(line for line in out.splitlines() if "column 'age'" in line)
    assert "number, " in age
    assert "missing (filled with the training median" in age
    assert "'age missing'" in age
    assert "column 'colour': category, 3 levels" in out
    assert f"missing cells are their own level {MISSING_LEVEL}" in out
    model = gpubp.load(tmp_path / "m.npz")
    assert "age missing" in model.table.features
    assert f"colour={MISSING_LEVEL}" in model.table.features


def test_the_median_is_the_training_rows_and_the_indicator_marks_the_cell():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 100.0], "b": ["x", "y", None, "x"]}, index=[0, 1, 2, 3])
    table = Table.fit(frame.iloc[:3])  # the training rows: 100 is a test row and must not move the median
    X, _ = table.transform(frame)
    assert table.features == ["a", "a missing", "b=x", "b=y", f"b={MISSING_LEVEL}"]
    np.testing.assert_array_equal(X[:, 0], [1.0, 2.0, 3.0, 100.0])
    np.testing.assert_array_equal(X[:, 1], [0, 1, 0, 0])
    np.testing.assert_array_equal(X[:, 2:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    stored = Table.from_dict(table.to_dict())
    np.testing.assert_array_equal(stored.transform(frame)[0], X)


def test_the_scaler_and_the_rules_are_fitted_on_the_training_rows_only(tmp_path):
    frame = people(200)
    frame.loc[::7, "age"] = np.nan
    ds = Dataset.prepare(load_data(write(frame, tmp_path / "p.csv"), "survived"))
    train_ages = frame["age"].to_numpy()[ds.train]
    assert ds.table.rules[1].fill == np.nanmedian(train_ages)
    assert ds.table.rules[1].fill != np.nanmedian(frame["age"].to_numpy())


def test_missing_refuse_counts_per_column_and_names_the_first_line(capsys, tmp_path):
    frame = people(100).astype(object)
    frame.loc[63, "age"] = "?"  # line 65
    frame.loc[1, "colour"] = ""  # line 3
    frame.loc[5, "colour"] = "NA"
    line = refused(capsys, "train", "--data", write(frame, tmp_path / "p.csv"), "--label-column", "survived",
                   "--missing", "refuse")  # fmt: skip
    assert line.startswith(f"gpubp train: error: {tmp_path / 'p.csv'}: line 3: missing cells (--missing refuse)")
    assert "'age' 1 (first at line 65)" in line
    assert "'colour' 2 (first at line 3)" in line


def test_a_boolean_column_with_an_empty_cell_is_a_boolean(tmp_path):
    frame = people(60).astype(object)
    frame["member"] = ["True", "False"] * 30
    frame.loc[0, "member"] = ""
    ds = Dataset.prepare(load_data(write(frame, tmp_path / "p.csv"), "survived"))
    rule = ds.table.rules[3]
    assert (rule.kind, rule.indicator) == ("bool", rule.missing > 0)
    X = ds.X[:, ds.table.features.index("member")]
    assert set(np.unique(X)) <= {0.0, 1.0, rule.fill}


def test_rows_with_an_empty_label_are_left_out_and_counted(tmp_path):
    frame = people(60).astype(object)
    frame.loc[[2, 9], "survived"] = ""
    raw = load_data(write(frame, tmp_path / "p.csv"), "survived")
    assert len(raw.y) == 58
    assert len(raw.frame) == 58
    assert "2 rows with an empty label cell ('survived') left out (lines 4, 11)" in raw.notes


# -- case 3: identifiers, free text, --drop and --features ----------------------------------------


def sorted_with_id(n: int = 300) -> pd.DataFrame:
    frame = people(n).sort_values("survived", kind="stable").reset_index(drop=True)
    frame.insert(0, "PassengerId", np.arange(1, n + 1))
    frame["name"] = [f"Person {i}" for i in range(n)]
    return frame


def test_an_id_column_and_free_text_are_left_out_with_a_line_saying_how_to_keep_them(capsys, tmp_path):
    data = write(sorted_with_id(), tmp_path / "p.csv")
    code, out, err = cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "2", "--no-save")
    assert code == 0, err
    assert ("column 'PassengerId': left out, an identifier (whole numbers, unique and increasing) (to use it, "
            "name it in --features)") in out  # fmt: skip
    assert "column 'name': left out, free text (300 distinct values in 240 rows)" not in out  # counted on train rows
    assert "column 'name': left out, free text (" in out
    assert "MLP([6, 256, 2]" in out


def test_a_column_named_like_an_id_is_left_out_when_nearly_unique(tmp_path):
    frame = people(100)
    frame.insert(0, "customer_id", np.random.default_rng(1).permutation(100) + 1000)
    frame["store_id"] = np.arange(100) % 4  # named like an id, but four stores: a feature
    ds = Dataset.prepare(load_data(write(frame, tmp_path / "p.csv"), "survived"))
    kinds = {r.name: r.kind for r in Table.from_dict(ds.table.to_dict()).rules}
    assert "customer_id" not in kinds
    assert kinds["store_id"] == "number"
    assert any("column 'customer_id': left out, an identifier (named like one" in n for n in ds.notes)


def test_features_keeps_an_id_and_drop_leaves_a_column_out(capsys, tmp_path):
    data = write(sorted_with_id(), tmp_path / "p.csv")
    code, out, _ = cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "1", "--save",
                       tmp_path / "m.npz", "--features", "PassengerId,sex")  # fmt: skip
    assert code == 0
    assert "MLP([3, 256, 2]" in out
    assert "column 'age': left out (not in --features)" in out
    assert gpubp.load(tmp_path / "m.npz").feature_names == ["PassengerId", "sex"]
    code, out, _ = cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "1",
                       "--no-save", "--drop", "colour")  # fmt: skip
    assert code == 0
    assert "column 'colour': left out (--drop)" in out
    assert "MLP([3, 256, 2]" in out
    line = refused(capsys, "train", "--data", data, "--label-column", "survived", "--drop", "colour,nope")
    assert "--drop: no column 'nope'" in line


def test_the_columns_left_out_are_not_needed_at_predict(capsys, tmp_path):
    frame = sorted_with_id()
    cli(capsys, "train", "--data", write(frame, tmp_path / "p.csv"), "--label-column", "survived", "--epochs", "1",
        "--save", tmp_path / "m.npz", "--quiet")  # fmt: skip
    model = gpubp.load(tmp_path / "m.npz")
    assert model.feature_names == ["sex", "age", "colour"]
    assert len(model.predict(frame[["sex", "age", "colour"]])) == len(frame)


def test_dates_become_days_since_1970(tmp_path):
    frame = people(60)
    frame["when"] = ["2024-03-01", "1970-01-11"] * 30
    ds = Dataset.prepare(load_data(write(frame, tmp_path / "p.csv"), "survived"))
    assert ds.table.rules[3].kind == "date"
    assert set(ds.X[:, ds.table.features.index("when")]) == {19783.0, 10.0}


# -- case 9: R's write.csv ------------------------------------------------------------------------


def test_a_file_as_r_writes_it_is_read_with_its_header(capsys, tmp_path):
    rng = np.random.default_rng(0)
    rows = ['"","class","age","sex","survived"']
    for i in range(200):
        cls, age, sex = rng.choice(["1st class", "2nd class", "3rd class"]), rng.choice(["adults", "child"]), \
            rng.choice(["man", "woman"])  # fmt: skip
        survived = "yes" if sex == "woman" else "no"
        rows.append(f'"{i + 1}","{cls}","{age}","{sex}","{survived}"')
    path = tmp_path / "titanic.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, err = cli(capsys, "train", "--data", path, "--label-column", "survived", "--epochs", "3", "--no-save")
    assert code == 0, err
    assert "the first column (no name, whole numbers) is a pandas index: dropped" in out
    assert "column 'sex': category, 2 levels (man, woman)" in out
    assert "MLP([7, 256, 2]" in out


# -- issue 30, item 4: a header's exact name wins -------------------------------------------------


def test_an_exact_header_name_wins_over_a_position(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"1": rng.integers(0, 2, 40), "x": rng.normal(size=40), "y2": rng.normal(size=40)})
    path = write(frame, tmp_path / "h.csv")
    raw = load_data(path, "1")
    assert raw.label_column == "1"
    assert raw.feature_names == ["x", "y2"]
    raw = load_data(path, 1)  # an int (the library's) is a position
    assert raw.label_column == "x"


def test_a_name_in_another_case_is_refused_naming_the_column(tmp_path):
    path = write(people(40), tmp_path / "p.csv")
    with pytest.raises(ValueError, match="no label column 'Survived': did you mean 'survived'"):
        load_data(path, "Survived")


def test_a_missing_cell_where_training_had_none_is_no_level_and_said(tmp_path):
    frame = pd.DataFrame({"a": ["x", "y", "x"], "b": [1.0, 2.0, 3.0]})
    table = Table.fit(frame)
    X, notes = table.transform(pd.DataFrame({"a": ["", "y"], "b": [np.nan, 1.0]}))
    np.testing.assert_array_equal(X, [[0, 0, 2.0], [0, 1, 1.0]])
    assert notes == ["column 'a': 1 missing cells, none in training: encoded as no level",
                     "column 'b': 1 missing cells, none in training: filled with the training median 2"]  # fmt: skip


def test_missing_refuse_holds_at_predict_too(capsys, tmp_path):
    frame = people(100)
    data = write(frame, tmp_path / "p.csv")
    cli(capsys, "train", "--data", data, "--label-column", "survived", "--epochs", "1", "--save", tmp_path / "m.npz",
        "--missing", "refuse", "--quiet")  # fmt: skip
    new = frame.astype(object)
    new.loc[4, "age"] = "NA"
    line = refused(capsys, "predict", tmp_path / "m.npz", "--data", write(new, tmp_path / "n.csv"), "--out", "-")
    assert "line 6: missing cells (--missing refuse): 'age' 1" in line


def test_a_table_run_resumes_with_its_stored_rules(capsys, tmp_path):
    frame = people(200).astype(object)
    frame.loc[::5, "age"] = "?"
    data = write(frame, tmp_path / "p.csv")
    run = ["train", "--data", data, "--label-column", "survived", "--save", tmp_path / "r.npz", "--quiet"]
    assert cli(capsys, *run, "--epochs", "2")[0] == 0
    assert cli(capsys, "train", "--resume", tmp_path / "r.npz", "--epochs", "3", "--quiet")[0] == 0
    assert cli(capsys, *run[:-3], "--save", tmp_path / "s.npz", "--epochs", "3", "--quiet")[0] == 0
    a, b = gpubp.load(tmp_path / "r.npz"), gpubp.load(tmp_path / "s.npz")
    assert a.table.features == b.table.features
    np.testing.assert_array_equal(a.predict_proba(frame), b.predict_proba(frame))


def test_a_missing_cell_on_the_first_line_is_no_header_evidence(capsys, tmp_path):
    frame = people(100).astype(object)
    frame.loc[0, "age"] = "?"  # a text cell above a column of numbers, but a missing one: not a name
    frame.insert(0, "row", range(100))
    data = write(frame, tmp_path / "n.csv", header=False)
    code, out, err = cli(capsys, "train", "--data", data, "--label-column", "-1", "--epochs", "1", "--save",
                         tmp_path / "m.npz")  # fmt: skip
    assert code == 0, err
    assert "100 rows" not in out
    assert "data: column '0': left out, an identifier (whole numbers, unique and increasing)" in out
    assert "column '2': number, 1 missing" in out
    assert cli(capsys, "predict", tmp_path / "m.npz", "--data", data, "--label-column", "-1", "--out",
               tmp_path / "o.csv", "--quiet")[0] == 0  # fmt: skip
    assert len(pd.read_csv(tmp_path / "o.csv")) == 100
