"""The command on a user's own files (issue: "your own CSV, read right"): columns by name, every
row predicted, outputs that never replace inputs, and options that never contradict each other."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

import gpubp
from gpubp.cli import main

# SGD: 20 epochs of 16 units are too few steps for the Adam at η 0.001 a CSV table gets by default
FAST = ("--epochs", "20", "--hidden", "16", "--optimizer", "sgd")


@pytest.fixture
def wine(tmp_path, monkeypatch):
    from sklearn.datasets import load_wine

    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    frame = load_wine(as_frame=True).frame
    frame.to_csv("wine.csv", index=False)
    return frame


def test_columns_in_another_order_give_the_same_answers(capsys, wine):
    # columns had been matched by position: 33 % instead of 97 %, every row class 0 (#1)
    assert cli(capsys, "train", "--data", "wine.csv", *FAST, "--save", "m.npz")[0] == 0
    reordered = wine[wine.columns[::-1]]
    reordered.to_csv("reordered.csv", index=False)
    scores = [json.loads(cli(capsys, "evaluate", "m.npz", "--data", f, "--split", "all", "--json")[1])["accuracy"]
              for f in ("wine.csv", "reordered.csv")]  # fmt: skip
    assert scores[0] == scores[1] > 0.9
    for f in ("wine.csv", "reordered.csv"):
        cli(capsys, "predict", "m.npz", "--data", f, "--out", f"p-{f}")
    first, second = pd.read_csv("p-wine.csv"), pd.read_csv("p-reordered.csv")
    pd.testing.assert_frame_equal(first, second)
    model = gpubp.load("m.npz", device="cpu")
    np.testing.assert_array_equal(model.predict(reordered), first["prediction"])  # the library, the same answers
    np.testing.assert_array_equal(model.predict(wine.drop(columns="target").to_numpy()), first["prediction"])


def test_predict_writes_every_row_in_order(capsys, wine):
    # predict had written only the 36 held-out rows of the training file (#13)
    cli(capsys, "train", "--data", "wine.csv", *FAST, "--save", "m.npz")
    _code, out, _ = cli(capsys, "predict", "m.npz", "--data", "wine.csv", "--out", "p.csv")
    assert "178 predictions, one per row of wine.csv in its order" in out
    assert pd.read_csv("p.csv")["row"].tolist() == list(range(178))


def test_a_missing_feature_is_refused_by_name(capsys, wine):
    # the label had become a feature and --label-column target was ignored (#2)
    cli(capsys, "train", "--data", "wine.csv", *FAST, "--save", "m.npz")
    wine.drop(columns="ash").to_csv("short.csv", index=False)
    line = refused(capsys, "evaluate", "m.npz", "--data", "short.csv", "--label-column", "target")
    assert "no column 'ash', which the model was trained on" in line
    # an extra column is named in the log and ignored
    wine.assign(batch=7).to_csv("extra.csv", index=False)
    code, _, err = cli(capsys, "evaluate", "m.npz", "--data", "extra.csv")
    assert code == 0
    assert "columns not in the model, ignored: batch" in err


def test_the_training_rows_are_recognised_in_another_format(capsys, wine):
    # the same rows as .npz with integer labels had been scored whole, training rows included (#7)
    cli(capsys, "train", "--data", "wine.csv", *FAST, "--save", "m.npz")
    np.savez("wine.npz", X=wine.drop(columns="target").to_numpy(), y=wine["target"].to_numpy())
    for data in ("wine.csv", "wine.npz"):
        result = json.loads(cli(capsys, "evaluate", "m.npz", "--data", data, "--json")[1])
        assert (result["rows"], result["split"]) == (36, "test"), data


def test_outputs_never_replace_inputs(capsys, wine, tmp_path):
    # train --save d.npz on --data d.npz had replaced the data; predict --out on its --data too (#8)
    np.savez("d.npz", X=wine.drop(columns="target").to_numpy(), y=wine["target"].to_numpy())
    before = (tmp_path / "d.npz").read_bytes()
    assert "is the data being read" in refused(capsys, "train", "--data", "d.npz", "--save", "./d.npz", *FAST)
    assert (tmp_path / "d.npz").read_bytes() == before
    cli(capsys, "train", "--data", "wine.csv", *FAST, "--save", "m.npz")
    os.symlink("wine.csv", "link.csv")
    for option, path in (("--out", "link.csv"), ("--out", str(tmp_path / "wine.csv")), ("--out", "./m.npz")):
        line = refused(capsys, "predict", "m.npz", "--data", "wine.csv", option, path)
        assert line.startswith(f"gpubp predict: error: {option} {path} is the ")
    assert "is the model being read" in refused(capsys, "evaluate", "m.npz", "--data", "wine.csv", "--plot", "m.npz")
    assert "is the data being read" in refused(capsys, "train", "--data", "wine.csv", "--plot", "wine.csv", *FAST)


def test_replacing_the_default_model_file_is_said(capsys, wine):
    assert "replacing" not in cli(capsys, "train", "--data", "wine.csv", *FAST)[1]
    assert (
        "model saved to gpubp-model.npz (replacing the file of an earlier run)"
        in cli(capsys, "train", "--data", "wine.csv", *FAST)[1]
    )


def test_a_tab_file_with_the_delimiter_named(capsys, wine):
    wine.to_csv("wine.txt", sep="\t", index=False)
    code, out, _ = cli(capsys, "train", "--data", "wine.txt", "--delimiter", "tab", *FAST, "--no-save")
    assert code == 0
    assert "13 features, 3 classes, label: 'target'" in out
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", "wine.txt", "--delimiter", "ab"])
    assert stop.value.code == 2
    assert "expected one character such as ',' ';' or 'tab', got 'ab'" in capsys.readouterr().err


def test_the_predictions_csv_is_quoted_and_says_what_its_numbers_are(capsys, wine):
    # a class named 'Iris setosa, L.' had split the header (#9); mse outputs had been called p_ (#10)
    names = np.array(["Iris setosa, L.", 'say "hi"', "plain"])
    wine.assign(target=names[wine["target"]]).to_csv("named.csv", index=False)
    cli(capsys, "train", "--data", "named.csv", *FAST, "--save", "m.npz")
    cli(capsys, "predict", "m.npz", "--data", "named.csv", "--out", "p.csv")
    got = pd.read_csv("p.csv")
    assert list(got.columns) == ["row", "prediction", *(f"p_{n}" for n in sorted(names))]
    assert set(got["prediction"]) <= set(names)
    np.testing.assert_allclose(got.iloc[:, 2:].sum(axis=1), 1, atol=1e-4)  # probabilities: a softmax's rows
    cli(capsys, "train", "--data", "named.csv", *FAST, "--loss", "mse", "--save", "mse.npz")
    cli(capsys, "predict", "mse.npz", "--data", "named.csv", "--out", "q.csv")
    assert list(pd.read_csv("q.csv").columns) == ["row", "prediction", "output_0", "output_1", "output_2"]


def test_the_best_validation_epoch_is_the_saved_model(capsys, wine):
    # the last epoch had been kept: R² swung from -1.8 to 0.4 and the test R² was -0.25 (#12)
    _code, out, err = cli(capsys, "train", "--data", "wine.csv", "--epochs", "25", "--hidden", "16", "--lr", "0.5",
                         "--save", "m.npz", "--json")  # fmt: skip
    result = json.loads(out)
    val = result["history"]["val_loss"]
    best = int(np.argmin(val)) + 1
    assert (result["kept_epoch"], result["kept"]) == (best, "best validation loss")
    assert best < 25, "the test needs a run whose last epoch is not its best (raise --lr)"
    assert f"kept the weights of epoch {best} of 25, the best validation loss" in err
    model = gpubp.load("m.npz", device="cpu")
    ds = gpubp.data.Dataset.prepare("wine.csv")
    loss = model.net.evaluate(ds.features("val"), ds.targets("val"))["loss"]
    assert loss == pytest.approx(min(val), rel=1e-5)
    last = json.loads(cli(capsys, "train", "--data", "wine.csv", "--epochs", "25", "--hidden", "16", "--lr", "0.5",
                          "--no-keep-best", "--no-save", "--json")[1])  # fmt: skip
    assert (last["kept_epoch"], last["kept"]) == (25, "last epoch")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--no-save", "--save", "m.npz"), "--no-save contradicts --save m.npz"),  # had saved nothing (#13)
        (("--no-keep-best", "--patience", "3"), "--no-keep-best contradicts --patience"),
        (("--label-column", "target"), "label_column (--label-column) applies to CSV files"),
        (("--delimiter", ";"), "delimiter (--delimiter) applies to CSV files"),
        (("--optimizer", "adam", "--momentum", "0.9"), "--momentum applies to --optimizer sgd"),
        (("--patience", "2", "--val-fraction", "0"), "--patience needs validation rows"),
        (("--task", "regress", "--loss", "bce"), "--task regress trains with --loss mse"),
        (("--split-seed", "3", "--val-fraction", "0", "--test-fraction", "0"), "--split-seed seeds the"),
        (("--task", "regress", "--momentum", "0.9"), "unless --optimizer sgd is given"),
    ],
)
def test_contradictory_options_are_refused_in_one_line(capsys, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    assert fragment in refused(capsys, "train", "--epochs", "1", *args)
    assert not os.listdir(tmp_path)


def test_test_fraction_is_refused_where_the_data_has_its_own_test_files(capsys, tmp_path, rng):
    from test_data import write_idx

    images = rng.integers(0, 256, (40, 3, 3)).astype(np.uint8)
    labels = (images.reshape(40, -1).mean(axis=1) > 127).astype(np.uint8)
    for name, part in (("train", slice(0, 30)), ("t10k", slice(30, 40))):
        write_idx(tmp_path / f"{name}-images-idx3-ubyte", images[part])
        write_idx(tmp_path / f"{name}-labels-idx1-ubyte", labels[part])
    line = refused(capsys, "train", "--data", tmp_path, "--test-fraction", "0.3", "--no-save")
    assert "--test-fraction: " in line
    assert "has its own test files" in line


def test_after_divergence_the_saved_model_is_the_best_validation_epoch(capsys, wine, monkeypatch):
    import gpubp.training as T

    original = T.Trainer._epoch_loss

    def diverge_in_epoch_12(self, acc, t0):
        loss = original(self, acc, t0)
        if self.epoch == 11:
            self.net.xp.copyto(self.store.theta, self._last_good)
            raise T.TrainingDivergedError("training diverged: injected; the weights from the start were kept")
        return loss

    monkeypatch.setattr(T.Trainer, "_epoch_loss", diverge_in_epoch_12)
    code, out, err = cli(capsys, "train", "--data", "wine.csv", "--epochs", "25", "--hidden", "16", "--lr", "0.5",
                         "--save", "m.npz", "--json")  # fmt: skip
    assert code == 1
    result = json.loads(out)
    val = result["history"]["val_loss"]
    best = int(np.argmin(val)) + 1
    assert best < 11, "the test needs a run whose last epoch is not its best (raise --lr)"
    assert (result["kept_epoch"], result["kept"]) == (best, "best validation loss")
    assert f"m.npz holds the weights of epoch {best}, the best validation loss" in err
    model = gpubp.load("m.npz", device="cpu")
    ds = gpubp.data.Dataset.prepare("wine.csv")
    assert model.net.evaluate(ds.features("val"), ds.targets("val"))["loss"] == pytest.approx(min(val), rel=1e-5)
