"""Numbers as people write them (issue #26, case 6): thousands separators of either mark are never
read as decimals; --decimal, --thousands and --encoding; every refusal names the file, the line, the
column and the cause, with advice that works."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

from gpubp.data import DataError, load_data


def write(tmp_path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_points_between_groups_beside_decimal_commas_are_thousands(tmp_path):
    # '3.249' was read as 3.249 in a ';' file whose other numbers had decimal commas: it is 3249
    path = write(tmp_path, "eu.csv", "amount;rate;label\n3.249;0,5;a\n12.500;1,25;b\n820;2,0;a\n1.022,64;3;b\n")
    raw = load_data(path)
    np.testing.assert_array_equal(raw.X, [[3249, 0.5], [12500, 1.25], [820, 2.0], [1022.64, 3]])
    assert any("points between digit groups are thousands separators" in n for n in raw.notes)


@pytest.mark.parametrize("delimiter", [None, ";"])
def test_both_marks_in_one_number_are_read_right(tmp_path, delimiter):
    # '1.022,64' had been refused asking for --delimiter, even with --delimiter ';'
    path = write(tmp_path, "eu.csv", "amount;label\n1.022,64;a\n7,5;b\n2.000.000,01;a\n")
    np.testing.assert_array_equal(load_data(path, delimiter=delimiter).X[:, 0], [1022.64, 7.5, 2000000.01])
    us = write(tmp_path, "us.csv", 'amount,label\n"1,022.64",a\n7.5,b\n"2,000,000.01",a\n')
    np.testing.assert_array_equal(load_data(us).X[:, 0], [1022.64, 7.5, 2000000.01])


def test_one_group_with_nothing_to_tell_is_asked_about(tmp_path):
    path = write(tmp_path, "eu.csv", "amount;n;label\n3.249;2;a\n12.500;3;b\n820;4;a\n")
    with pytest.raises(DataError) as err:
        load_data(path)
    message = str(err.value)
    assert message.startswith(f"{path}: '3.249' may be a decimal point or a thousands separator (3.249 or 3249; "
                              "line 2, column 'amount')")  # fmt: skip
    assert "--decimal '.' or --thousands '.'" in message
    np.testing.assert_array_equal(load_data(path, thousands=".").X[:, 0], [3249, 12500, 820])
    np.testing.assert_array_equal(load_data(path, decimal=".").X[:, 0], [3.249, 12.5, 820])


def test_decimal_points_in_a_semicolon_file_stay_decimals(tmp_path):
    # the UCI wine-quality files: ';' between cells, '.' decimals, some with three digits after the point
    path = write(tmp_path, "wine.csv", "acid;chlorides;density;quality\n7.4;0.076;0.9978;5\n7.8;1.098;0.9968;5\n")
    np.testing.assert_array_equal(load_data(path).X, [[7.4, 0.076, 0.9978], [7.8, 1.098, 0.9968]])


def test_us_thousands_in_quotes_are_read_as_thousands(tmp_path):
    # '"130,285"' had been refused with advice (--delimiter ';') that led to a second refusal
    path = write(tmp_path, "us.csv", 'sqft,price\n1200,"130,285"\n"2,400","1,250,000"\n900,"99,000"\n')
    raw = load_data(path, "price")
    np.testing.assert_array_equal(raw.X[:, 0], [1200, 2400, 900])
    np.testing.assert_array_equal(raw.y, [130285, 1250000, 99000])  # the target too: a number, not text


def test_a_decimal_comma_in_a_comma_file_is_read_with_the_advice_given(tmp_path):
    path = write(tmp_path, "q.csv", 'a,b,label\n"1,5",2,0\n"3,5",4,1\n')
    with pytest.raises(
        DataError, match=r"line 2, column 'a': not a number: '1,5' \(a decimal comma: give --decimal ','"
    ):
        load_data(path)
    assert load_data(path, decimal=",").X.tolist() == [[1.5, 2], [3.5, 4]]


def test_separators_are_read_strictly_and_named_by_line_and_column(tmp_path):
    # pandas' own thousands= reads '3.2.49' as 3249; past the sampled lines too, each cell is checked
    rows = "".join(f"{1000 + i:,}".replace(",", ".") + f";{i},5;a\n" for i in range(80))
    path = write(tmp_path, "eu.csv", "amount;rate;label\n" + rows + "3.2.49;1,5;b\n")
    with pytest.raises(DataError) as err:
        load_data(path)
    assert str(err.value).startswith(f"{path}: line 82, column 'amount': not a number: '3.2.49'")
    good = write(tmp_path, "ok.csv", "amount;rate;label\n" + rows)
    assert load_data(good).X[79].tolist() == [1079, 79.5]


def test_the_encoding_option_reads_a_spreadsheets_export(tmp_path):
    path = write(tmp_path, "fr.csv", "prix;ville\n1,5;Orléans\n2,5;Besançon\n", encoding="cp1252")
    with pytest.raises(DataError, match=r"not a text CSV file in UTF-8 \(line 2: byte 0xe9\): if it is text, give "
                                        r"its encoding with --encoding"):  # fmt: skip
        load_data(path, "ville")
    raw = load_data(path, "ville", encoding="cp1252")
    assert raw.y.tolist() == ["Orléans", "Besançon"]


def test_the_options_are_checked_and_the_model_reads_its_file_as_trained(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    amounts = rng.integers(1000, 9000, 200)
    label = np.where(amounts > 5000, "high", "low")
    text = "amount;n;label\n" + "".join(f"{a // 1000}.{a % 1000:03d};{i % 7};{c}\n" for i, (a, c) in
                                        enumerate(zip(amounts, label)))  # fmt: skip
    (tmp_path / "eu.csv").write_text(text)
    line = refused(capsys, "train", "--data", "eu.csv", "--epochs", "1")
    assert "may be a decimal point or a thousands separator" in line
    assert "--thousands '.'" in line
    # SGD: 40 epochs fit closer than a CSV's default Adam at 0.001, and this test is about reading the numbers
    code, out, err = cli(capsys, "train", "--data", "eu.csv", "--thousands", ".", "--epochs", "40", "--hidden", "8",
                         "--optimizer", "sgd", "--save", "m.npz", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["test_accuracy"] > 0.9  # 3249 against 5000: the amounts read as thousands
    code, out, err = cli(capsys, "evaluate", "m.npz", "--json")  # the model's file, read as it was trained
    assert code == 0, err
    (tmp_path / "next.csv").write_text(text)  # a new file in the same notation: read as the model's was
    code, out, err = cli(capsys, "predict", "m.npz", "--data", "next.csv", "--out", "p.csv")
    assert code == 0, err
    predicted = pd.read_csv("p.csv")["prediction"].to_numpy()
    assert (predicted == label).mean() > 0.9  # 3.249 read as 3249 again: below 5000, 'low'
    assert "--thousands" in refused(capsys, "train", "--data", "eu.csv", "--thousands", "x")
    assert "--encoding: unknown encoding 'nope'" in refused(capsys, "train", "--data", "eu.csv", "--encoding", "nope")
    assert "same mark" in refused(capsys, "train", "--data", "eu.csv", "--thousands", ".", "--decimal", ".")
    assert "applies to CSV files" in refused(capsys, "train", "--decimal", ",")
