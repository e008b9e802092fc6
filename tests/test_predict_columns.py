"""A model's file read at predict and evaluate time by the model's own column rules: category levels
that look like numbers keep their text, number columns are read strictly with the model's decimal
mark, and ``Model.predict(path)`` reads a file as ``gpubp predict`` does (its encoding, its marks)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

import gpubp
from gpubp.csvfiles import number_text
from gpubp.data import DataError, load_data
from gpubp.tables import Rule, Table


def floors(path, n: int = 200, seed: int = 0, header: bool = True) -> str:
    """floor takes G/B/M/1/2 and the label is 1 where the floor is 1 or 2: levels that look like numbers."""
    rng = np.random.default_rng(seed)
    floor = rng.choice(["G", "B", "M", "1", "2"], n)
    frame = pd.DataFrame({"floor": floor, "x": rng.random(n).round(3), "label": np.isin(floor, ["1", "2"]).astype(int)})
    frame.to_csv(path, index=False, header=header)
    return str(path)


def trained(capsys, tmp_path, data: str, *options: object) -> str:
    model = tmp_path / "m.npz"
    code, _, err = cli(capsys, "train", "--data", data, "--epochs", "40", "--seed", "0", "--save", model, *options)
    assert code == 0, err
    return str(model)


def one_hot(model, path) -> pd.DataFrame:
    """The network's inputs (before scaling) for the file, as predict makes them, by input name."""
    raw = load_data(str(path), columns=model.columns, labels=False, table=model.table)
    X, _ = model.encode(raw.frame, raw.source, raw.first_line)
    return pd.DataFrame(X, columns=model.table.features)


def test_levels_that_look_like_numbers_keep_their_text_at_predict(capsys, tmp_path):
    model_path = trained(capsys, tmp_path, floors(tmp_path / "cat.csv"))
    model = gpubp.load(model_path)
    assert model.table.rules[0].levels == ["1", "2", "B", "G", "M"]  # the training file's text, never '1.0'
    pred = tmp_path / "pred.csv"
    pred.write_text("floor,x\n1,0.5\n2,0.5\n,0.5\n")
    X = one_hot(model, pred)
    assert X["floor=1"].tolist() == [1, 0, 0]
    assert X["floor=2"].tolist() == [0, 1, 0]
    code, out, err = cli(capsys, "predict", model_path, "--data", pred, "--out", "-")
    assert code == 0, err
    assert "not seen in training" not in err
    # the command and the library give the rows of floors 1 and 2 the class the training rows of them had
    assert pd.read_csv(pd.io.common.StringIO(out))["prediction"].tolist()[:2] == [1, 1]
    assert model.predict(str(pred)).tolist()[:2] == [1, 1]
    p = model.predict_proba(str(pred))[:2, 1]
    assert (p > 0.8).all(), p  # a confident class 1, not the 0.5 of a row with no level


def test_a_level_among_numbers_is_a_level_not_a_number_written_wrongly(capsys, tmp_path):
    model_path = trained(capsys, tmp_path, floors(tmp_path / "cat.csv"))
    pred = tmp_path / "pred.csv"
    pred.write_text("floor,x\n1,0.5\n2,0.5\nG,0.5\n")
    code, out, err = cli(capsys, "predict", model_path, "--data", pred, "--out", "-")
    assert code == 0, err
    assert pd.read_csv(pd.io.common.StringIO(out))["prediction"].tolist() == [1, 1, 0]
    assert one_hot(gpubp.load(model_path), pred)["floor=G"].tolist() == [0, 0, 1]


def test_a_headerless_file_keeps_its_levels_and_its_numeric_labels_at_evaluate(capsys, tmp_path):
    data = floors(tmp_path / "cat.csv", header=False)
    model_path = trained(capsys, tmp_path, data, "--no-header")
    for given in ((), ("--data", data, "--label-column", "2", "--no-header")):
        code, _, err = cli(capsys, "evaluate", model_path, *given, "--split", "all")
        assert code == 0, err
        assert "not seen in training" not in err
    raw = load_data(data, 2, columns=gpubp.load(model_path).columns, header=False,
                    table=gpubp.load(model_path).table)  # fmt: skip
    assert raw.y.dtype == np.float64  # numbers, as at training
    assert set(raw.y.tolist()) == {0.0, 1.0}
    assert set(raw.frame.iloc[:, 0].tolist()) == {"G", "B", "M", "1", "2"}


def decimal_commas(path, n: int = 120, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    amount = rng.random(n) * 4
    frame = pd.DataFrame({"amount": amount.round(2), "x": rng.integers(0, 3, n), "label": (amount > 2).astype(int)})
    frame.to_csv(path, index=False, sep=";", decimal=",")
    return str(path)


@pytest.mark.parametrize(("cells", "line", "cell"), [("1,5\n2.5\n0.75", 3, "2.5"), ("0.25\n0.5\n0.75", 2, "0.25")])
def test_a_number_column_is_read_strictly_with_the_model_decimal_mark(capsys, tmp_path, cells, line, cell):
    model_path = trained(capsys, tmp_path, decimal_commas(tmp_path / "dc.csv"), "--decimal", ",")
    pred = tmp_path / "pred.csv"
    pred.write_text("amount;x\n" + "".join(f"{c};{k}\n" for k, c in enumerate(cells.split("\n"))))
    message = refused(capsys, "predict", model_path, "--data", pred, "--out", "-")
    assert f"line {line}, column 'amount': not a number: '{cell}'" in message
    assert "give --decimal '.'" in message
    with pytest.raises(DataError, match=f"line {line}, column 'amount'"):
        gpubp.load(model_path).predict(str(pred))


def test_decimal_commas_at_predict_are_read_as_the_model_was(capsys, tmp_path):
    model_path = trained(capsys, tmp_path, decimal_commas(tmp_path / "dc.csv"), "--decimal", ",")
    pred = tmp_path / "pred.csv"
    pred.write_text("amount;x\n1,5;1\n0,25;2\n3,75;0\n")
    code, out, err = cli(capsys, "predict", model_path, "--data", pred, "--out", "-")
    assert code == 0, err
    shown = pd.read_csv(pd.io.common.StringIO(out))["prediction"].tolist()
    assert gpubp.load(model_path).predict(str(pred)).tolist() == shown


def test_model_predict_reads_the_file_in_the_model_encoding(capsys, tmp_path):
    rng = np.random.default_rng(0)
    city = rng.choice(["Genève", "Zürich", "Bern"], 100)
    frame = pd.DataFrame({"city": city, "x": rng.random(100).round(3), "label": (city == "Bern").astype(int)})
    data = tmp_path / "lat.csv"
    frame.to_csv(data, index=False, encoding="latin-1")
    model_path = trained(capsys, tmp_path, str(data), "--encoding", "latin-1")
    pred = tmp_path / "pred.csv"
    pred.write_bytes("city,x\nGenève,0.5\nBern,0.2\n".encode("latin-1"))
    code, out, err = cli(capsys, "predict", model_path, "--data", pred, "--out", "-")
    assert code == 0, err
    shown = pd.read_csv(pd.io.common.StringIO(out))["prediction"].tolist()
    assert gpubp.load(model_path).predict(str(pred)).tolist() == shown == [0, 1]


def test_a_table_reads_numbers_written_as_text_strictly_with_the_marks():
    table = Table([Rule("amount", "number", fill=0.0)])
    frame = pd.DataFrame({"amount": ["1,5", "1.250,5", ""]})
    X, _ = table.transform(frame, number=partial(number_text, decimal=",", thousands="."))
    assert X[:2, 0].tolist() == [1.5, 1250.5]
    with pytest.raises(ValueError, match=r"line 1, column 'amount': '1,5' is not a number"):
        table.transform(frame)
    with pytest.raises(ValueError, match=r"line 2, column 'amount': '1.2.5' is not a number"):
        table.transform(pd.DataFrame({"amount": ["1.5", "1.2.5"]}))


def test_feature_names_are_the_raw_columns_the_model_reads(capsys, tmp_path):
    model = gpubp.load(trained(capsys, tmp_path, floors(tmp_path / "cat.csv")))
    assert model.feature_names == ["floor", "x"] == model.table.inputs
    assert model.table.features[:2] == ["floor=1", "floor=2"]


def test_a_long_file_keeps_one_text_for_a_level_that_looks_like_a_number_at_training(tmp_path):
    # pandas types a long file a block of rows at a time (over 262,144 rows): a block of only '1' and
    # empty cells is read as 1.0, a later block with words as text, and '1' would be two levels
    path = tmp_path / "long.csv"
    early = "".join("1,0\n" if i % 10 == 0 else ",0\n" for i in range(270_000))
    path.write_text("floor,label\n" + early + "G,1\n" * 30_000)
    raw = load_data(str(path))
    assert Table.fit(raw.frame).rules[0].levels == ["1", "G", "(missing)"]
