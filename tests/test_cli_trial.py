"""What a new user's trial of the command found (#18): outputs against every input, the rows an
evaluation scores, messages that name the option or file and give advice that works."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_calls import cli, refused

FAST = ("--epochs", "5", "--hidden", "8")


@pytest.fixture
def iris(tmp_path, monkeypatch):
    from sklearn.datasets import load_iris

    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    frame = load_iris(as_frame=True).frame
    frame.columns = ["a", "b", "c", "d", "species"]
    frame.to_csv("iris.csv", index=False)
    return frame


def test_a_resumed_run_never_writes_over_the_data_its_checkpoint_names(capsys, iris, tmp_path):
    # train --resume m.npz --save data.csv had replaced the training data with the model, exit 0
    assert cli(capsys, "train", "--data", "iris.csv", *FAST, "--save", "m.npz")[0] == 0
    before = (tmp_path / "iris.csv").read_bytes()
    line = refused(capsys, "train", "--resume", "m.npz", "--epochs", "6", "--save", "iris.csv")
    assert "--save iris.csv is the data being read" in line
    assert (tmp_path / "iris.csv").read_bytes() == before


def test_the_held_out_rows_are_found_by_content(capsys, iris):
    # edited labels had moved the stratified split (training rows scored as held out); the same rows
    # shuffled had been "not the data the model was trained on" and every row scored (#18)
    cli(capsys, "train", "--data", "iris.csv", *FAST, "--save", "m.npz")
    first = json.loads(cli(capsys, "evaluate", "m.npz", "--data", "iris.csv", "--json")[1])
    assert (first["rows"], first["split"]) == (30, "test")
    edited = iris.copy()
    edited.loc[::7, "species"] = (edited.loc[::7, "species"] + 1) % 3
    edited.to_csv("edited.csv", index=False)
    shuffled = iris.sample(frac=1, random_state=1)
    shuffled.to_csv("shuffled.csv", index=False)
    np.savez("iris32.npz", X=iris.drop(columns="species").to_numpy(np.float32), y=iris["species"].to_numpy())
    for data in ("edited.csv", "shuffled.csv", "iris32.npz"):
        result = json.loads(cli(capsys, "evaluate", "m.npz", "--data", data, "--json")[1])
        assert (result["rows"], result["split"]) == (30, "test"), data
        assert "held out from training" in result["which_rows"], data
    held = json.loads(cli(capsys, "evaluate", "m.npz", "--data", "shuffled.csv", "--json")[1])
    assert held["accuracy"] == first["accuracy"]


def test_messages_name_the_file_the_option_and_advice_that_works(capsys, iris):
    iris[["species"]].to_csv("labels.csv", index=False)
    line = refused(capsys, "train", "--data", "labels.csv", *FAST, "--no-save")
    assert "labels.csv: no feature columns" in line
    assert "sizes" not in line
    line = refused(capsys, "train", "--weight-decay", "-1", *FAST, "--no-save")
    assert line.startswith("gpubp train: error: argument --weight-decay: ")
    assert line.endswith("(see gpubp train --help)")
    cli(capsys, "train", "--data", "iris.csv", *FAST, "--save", "m.npz")
    iris.rename(columns={"species": "target"}).to_csv("renamed.csv", index=False)
    code, _, err = cli(capsys, "evaluate", "m.npz", "--data", "renamed.csv")  # a notice of the ignored column first
    line = err.strip().splitlines()[-1]
    assert code == 2
    assert "give --label-column target" in line
    code, out, _ = cli(capsys, "evaluate", "m.npz", "--data", "renamed.csv", "--label-column", "target", "--json")
    assert code == 0
    assert json.loads(out)["rows"] == 30
    iris.drop(columns="species").to_csv("unlabelled.csv", index=False)
    line = refused(capsys, "evaluate", "m.npz", "--data", "unlabelled.csv")
    assert "--split all" not in line
    assert "use predict" in line


def test_a_model_without_column_names_says_it_takes_a_header_by_position(capsys, iris):
    iris.to_csv("nohdr.csv", index=False, header=False)
    cli(capsys, "train", "--data", "nohdr.csv", *FAST, "--save", "m.npz")
    iris.drop(columns="species").to_csv("features.csv", index=False)
    code, _, err = cli(capsys, "predict", "m.npz", "--data", "features.csv", "--out", "p.csv")
    assert code == 0
    assert "no column names: the columns are taken by position" in err
    iris.drop(columns=["a", "b"]).to_csv("narrow.csv", index=False)  # a header of another width: refused
    assert cli(capsys, "predict", "m.npz", "--data", "narrow.csv", "--out", "p.csv")[0] == 2


def test_one_prediction_and_a_file_sharing_no_column(capsys, iris):
    cli(capsys, "train", "--data", "iris.csv", *FAST, "--save", "m.npz")
    iris.iloc[:1].to_csv("one.csv", index=False)
    assert (
        "wrote 1 prediction, one per row" in cli(capsys, "predict", "m.npz", "--data", "one.csv", "--out", "p.csv")[1]
    )
    iris.iloc[:3].set_axis(["p", "q", "r", "s", "species"], axis=1).to_csv("other.csv", index=False)
    line = refused(capsys, "predict", "m.npz", "--data", "other.csv", "--out", "p.csv")
    assert (
        "other.csv: no column in common with the model: the file has p, q, r, s, species, the model needs a, b" in line
    )
