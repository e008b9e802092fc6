"""A model trained on a table exports to one ONNX graph with an input per raw column (as skl2onnx
gives a ColumnTransformer), which ONNX Runtime runs to gpubp's own answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_calls import cli, refused

import gpubp

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n)
    age = rng.normal(30, 12, n).round(1)
    frame = pd.DataFrame({"sex": sex, "age": age, "colour": rng.choice(["red", "green", "blue"], n),
                          "member": rng.choice(["True", "False"], n),
                          "survived": np.where((sex == "female") ^ (age > 40), "yes", "no")})  # fmt: skip
    frame = frame.astype(object)
    frame.loc[::9, "age"] = "NA"
    frame.loc[::11, "colour"] = ""
    frame.loc[::13, "member"] = "?"
    return frame


def feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for name in ("sex", "colour", "member"):
        out[name] = frame[name].fillna("").astype(str).to_numpy(dtype=object).reshape(-1, 1)
    out["age"] = pd.to_numeric(frame["age"], errors="coerce").to_numpy(np.float32).reshape(-1, 1)
    return out


def test_the_graph_takes_the_raw_columns_and_gives_the_models_answers(capsys, tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert cli(capsys, "train", "--data", tmp_path / "t.csv", "--label-column", "survived", "--epochs", "3",
               "--save", tmp_path / "m.npz", "--quiet", "--dtype", "float64")[0] == 0  # fmt: skip
    code, out, err = cli(capsys, "export", tmp_path / "m.npz", "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    assert "inputs sex (N, 1), age (N, 1), colour (N, 1), member (N, 1)" in out
    new = table(80, seed=1)
    new.loc[:2, "colour"] = "purple"  # unseen: all zeros in both
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    label, proba = session.run(["label", "probabilities"], feeds(new))
    model = gpubp.load(tmp_path / "m.npz")
    np.testing.assert_allclose(proba, model.predict_proba(new), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(label, model.predict(new))


def test_a_date_column_is_refused_in_one_line_saying_why(capsys, tmp_path):
    frame = table(100)
    frame["when"] = ["2024-03-01", "2024-05-02"] * 50
    frame.to_csv(tmp_path / "t.csv", index=False)
    cli(capsys, "train", "--data", tmp_path / "t.csv", "--label-column", "survived", "--epochs", "1", "--save",
        tmp_path / "m.npz", "--quiet")  # fmt: skip
    line = refused(capsys, "export", tmp_path / "m.npz", "--onnx", tmp_path / "m.onnx")
    assert "date column 'when'" in line
    assert "--drop when" in line


def test_export_says_the_opset_the_file_has(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    import onnx

    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = cli(capsys, "train", "--data", tmp_path / "t.csv", "--label-column", "survived", "--epochs", "2",
                       "--save", tmp_path / "m.npz")  # fmt: skip
    assert code == 0, err
    code, out, err = cli(capsys, "export", tmp_path / "m.npz", "--onnx", tmp_path / "m.onnx")
    assert code == 0, err
    version = next(o.version for o in onnx.load(str(tmp_path / "m.onnx")).opset_import if o.domain in ("", "ai.onnx"))
    assert version == 19  # Equal on strings
    assert f"ONNX opset {version};" in out  # it had printed 17, the opset of a graph without text columns
