"""ONNX export: the graphs ONNX Runtime runs give ``predict``'s answers (labels identical, values to 1e-5)."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from test_cli import assert_one_line_error, run, run_process

from gpubp import MLP, Model
from gpubp.activations import HIDDEN
from gpubp.columns import Columns
from gpubp.data import Scaler, load_digits
from gpubp.export import OPSET
from gpubp.labels import Labels

onnx = pytest.importorskip("onnx", reason="needs the onnx extra")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra")

RTOL = 1e-5  # float32


def close(actual, desired, rtol=RTOL):
    """Within ``rtol`` relative; values near 0 (a sum that cancels) within rtol/10 of the largest value."""
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=0.1 * rtol * np.abs(desired).max())


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def outputs(proto, X):
    s = session(proto)
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {"X": np.asarray(X, np.float32)})))


def data(rng, n=120, d=6):
    X = rng.normal(3.0, 2.0, size=(n, d))  # unscaled: the graph's scaler matters
    return X, (X[:, 0] - X[:, 1] + 0.5 * X[:, 2] > 3.0).astype(int) + (X[:, 3] > 3.0)


def fitted_model(rng, labels, activation="relu", dtype="float32", loss="cross_entropy", output=None, hidden=(7, 5)):
    """A briefly trained classifier Model over raw rows, its classes ``labels``."""
    X, k = data(rng)
    classes = np.asarray(labels)
    n_out = 1 if loss == "bce" else len(classes)
    net = MLP([X.shape[1], *hidden, n_out], activation, output, loss, device="cpu", dtype=dtype, seed=1)
    scaler = Scaler("standard").fit(X)
    Z = scaler.transform(X)
    idx = k % len(classes)
    Y = idx if loss == "cross_entropy" else (idx[:, None] if n_out == 1 else np.eye(n_out)[idx])
    net.fit(Z, Y, epochs=3, batch_size=16, lr=0.05)
    return Model(net, scaler, Labels(classes)), X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", HIDDEN)
def test_classifier_every_hidden_activation(rng, activation, dtype):
    model, X = fitted_model(rng, [0, 1, 2], activation, dtype)
    out = outputs(model.to_onnx(), X)
    np.testing.assert_array_equal(out["label"], model.predict(X))
    close(out["probabilities"], model.predict_proba(X))
    assert out["probabilities"].dtype == np.dtype(dtype)


@pytest.mark.parametrize(
    ("loss", "output"),
    [("cross_entropy", "softmax"), ("bce", "sigmoid"),
     *[("mse", out) for out in ("sigmoid", "tanh", "relu", "identity", "softmax")]],
)  # fmt: skip
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classifier_every_output_and_loss(rng, loss, output, dtype):
    labels = ["no", "yes"] if loss == "bce" else ["no", "maybe", "yes"]
    model, X = fitted_model(rng, labels, "tanh", dtype, loss, output)
    out = outputs(model.to_onnx(), X)
    np.testing.assert_array_equal(out["label"], model.predict(X))
    close(out["probabilities"], model.predict_proba(X))


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [3, 7, 11], [-1, 1], ["ünï", "çødé"], [1.5, 2.5, 4.0]])
def test_the_users_own_labels_come_out(rng, labels):
    model, X = fitted_model(rng, labels, loss="bce" if len(labels) == 2 else "cross_entropy")
    out = outputs(model.to_onnx(), X)
    want = model.predict(X)
    assert len(set(want.tolist())) > 1, "the check needs rows of more than one class"
    assert out["label"].tolist() == want.tolist()  # strings as strings, integers as integers
    proto = model.to_onnx()
    assert json.loads({p.key: p.value for p in proto.metadata_props}["classes"]) == list(labels)


@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_in_the_targets_units(rng, n_targets, dtype):
    X, _ = data(rng)
    y = np.stack([100 + 40 * X[:, 0] - 7 * X[:, 1], X[:, 2] * 1e3], axis=1)[:, :n_targets]
    net = MLP([X.shape[1], 8, n_targets], "tanh", loss="mse", device="cpu", dtype=dtype, seed=2)
    scaler, target = Scaler("minmax").fit(X), Scaler("standard").fit(y)
    net.fit(scaler.transform(X), target.transform(y), epochs=5, batch_size=16, lr=0.01)
    model = Model(net, scaler, None, target)
    out = outputs(model.to_onnx(), X)
    want = model.predict(X)
    assert out["value"].shape == want.shape
    close(out["value"], want)
    assert np.abs(want).max() > 50  # the values are in the target's units, not standardised


@pytest.mark.parametrize(("loss", "n_out"), [("cross_entropy", 3), ("bce", 1), ("bce", 3), ("mse", 2)])
def test_bare_network_outputs_and_predict(rng, loss, n_out):
    net = MLP([5, 6, n_out], "sigmoid", loss=loss, device="cpu", seed=3)
    X = rng.normal(size=(50, 5)).astype(np.float32)
    out = outputs(net.to_onnx(feature_names=list("abcde")), X)
    close(out["outputs"], net.forward(X))
    if loss == "mse":
        assert "label" not in out
    else:
        np.testing.assert_array_equal(out["label"], net.predict(X))


def test_graph_is_checked_states_its_opset_and_names_the_features(rng, tmp_path):
    model, X = fitted_model(rng, [0, 1, 2])
    model.settings["columns"] = Columns.of(["age", "height", "weight", "x", "y", "z"], 6).to_dict()
    path = tmp_path / "m.onnx"
    model.to_onnx(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    (x,) = proto.graph.input
    dims = x.type.tensor_type.shape.dim
    assert x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[0].dim_param
    assert dims[1].dim_value == 6
    assert "age, height, weight" in x.doc_string
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["feature_names"])[:3] == ["age", "height", "weight"]
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Gemm") == 3
    assert "Sub" in ops
    assert "Div" in ops
    for batch in (1, 7, 300):  # any batch size
        rows = np.resize(X, (batch, X.shape[1]))
        assert outputs(proto, rows)["label"].shape == (batch,)


def test_wrong_feature_names_are_refused():
    with pytest.raises(ValueError, match="feature_names has 2 names, the network takes 3"):
        MLP([3, 2], device="cpu").to_onnx(feature_names=["a", "b"])


def test_without_onnx_one_line_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'gpubp\[onnx\]'"):
        MLP([3, 2], device="cpu").to_onnx()


def test_cli_without_onnx_exits_2_with_one_line(tmp_path):
    run("train", "--epochs", "1", "--save", "m.npz", "--quiet", cwd=tmp_path)
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "onnx.py").write_text("raise ImportError('no onnx here')\n")
    # a fresh process, where onnx cannot import
    hidden = {"PYTHONPATH": str(blocker)}
    proc = run_process("export", "m.npz", "--onnx", "m.onnx", cwd=tmp_path, check=None, env=hidden)
    assert_one_line_error(proc, "pip install 'gpubp[onnx]'")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_equals_gpubp_predict_on_every_row(tmp_path):
    raw = load_digits()
    X, y = raw.X, raw.y
    np.savez(tmp_path / "d.npz", X=X, y=y)
    run("train", "--epochs", "2", "--save", "m.npz", "--quiet", cwd=tmp_path)
    proc = run("export", "m.npz", "--onnx", "m.onnx", cwd=tmp_path)
    assert "m.onnx" in proc.stdout
    assert f"opset {OPSET}" in proc.stdout
    run("predict", "m.npz", "--data", "d.npz", "--out", "p.csv", cwd=tmp_path)  # every row of the file
    with open(tmp_path / "p.csv") as f:
        predicted = [int(r["prediction"]) for r in csv.DictReader(f)]
    out = outputs(onnx.load(str(tmp_path / "m.onnx")), X)
    assert out["label"].tolist() == predicted
    assert len(predicted) == len(X)


def test_cli_export_of_a_csv_model_keeps_labels_and_column_names(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    kind = np.where(X[:, 0] + X[:, 1] > 0, "spam", "ham")
    with open(tmp_path / "d.csv", "w") as f:
        f.write("width,depth,speed,kind\n")
        f.writelines(f"{a:.6f},{b:.6f},{c:.6f},{k}\n" for (a, b, c), k in zip(X, kind))
    run("train", "--data", "d.csv", "--epochs", "3", "--save", "m.npz", "--quiet", cwd=tmp_path)
    run("export", "m.npz", "--onnx", "m.onnx", cwd=tmp_path)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["feature_names"]) == ["width", "depth", "speed"]
    model = Model.from_file(tmp_path / "m.npz", device="cpu")
    out = outputs(proto, X)
    assert out["label"].tolist() == model.predict(X).tolist()
    assert set(out["label"].tolist()) == {"spam", "ham"}


def test_cli_export_refuses_what_it_cannot_write(tmp_path):
    proc = run("export", "nothing.npz", "--onnx", "m.onnx", cwd=tmp_path, check=None)
    assert_one_line_error(proc, "nothing.npz")
    run("train", "--epochs", "1", "--save", "m.npz", "--quiet", cwd=tmp_path)
    proc = run("export", "m.npz", "--onnx", "no/such/folder/m.onnx", cwd=tmp_path, check=None)
    assert_one_line_error(proc, "--onnx")


# -- scikit-learn estimators through skl2onnx's own MLP converters ------------------------------------------------


@pytest.fixture
def skl2onnx():
    module = pytest.importorskip("skl2onnx", reason="needs the onnx extra")
    from gpubp.sklearn import register_onnx_converters

    register_onnx_converters()
    return module


@pytest.mark.parametrize("target", ["strings", "integers", "binary"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pipeline_with_a_gpubp_classifier_converts_as_one_graph(rng, skl2onnx, target, dtype):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gpubp.sklearn import MLPClassifier

    X, k = data(rng, n=200)
    y = {"strings": np.array(["low", "mid", "high"])[k], "integers": k * 10 - 5, "binary": k > 0}[target]
    pipe = make_pipeline(StandardScaler(), MLPClassifier((9, 4), activation="tanh", max_iter=20, device="cpu",
                                                         dtype=dtype, random_state=0))  # fmt: skip
    with pytest.warns(ConvergenceWarning):  # after 20 iterations
        pipe.fit(X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32), options={"zipmap": False})
    assert {n.op_type for n in proto.graph.node} >= {"Scaler", "MatMul", "Tanh"}  # scaler and network, one graph
    s = session(proto)
    label, proba = s.run(None, {s.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_array_equal(label, pipe.predict(X))
    close(proba, pipe.predict_proba(X))


def test_pipeline_with_a_gpubp_regressor_converts(rng, skl2onnx):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gpubp.sklearn import MLPRegressor

    X, _ = data(rng, n=200)
    y = 3 * X[:, 0] - X[:, 1]
    pipe = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, device="cpu",
                                                        random_state=0))  # fmt: skip
    with pytest.warns(ConvergenceWarning):
        pipe.fit(X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))
    s = session(proto)
    (value,) = s.run(None, {s.get_inputs()[0].name: X.astype(np.float32)})
    close(value[:, 0], pipe.predict(X))
    two = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, device="cpu", random_state=0)
    with pytest.warns(ConvergenceWarning):
        two.fit(X, np.stack([y, -y], axis=1))
    with pytest.raises(ValueError, match="has 2"):
        skl2onnx.to_onnx(two, X[:1].astype(np.float32))


@pytest.mark.gpu
def test_a_network_trained_on_a_gpu_exports_the_same(rng):
    model, X = fitted_model(rng, ["a", "b", "c"])
    gpu = MLP(model.net.sizes, "relu", device="gpu", seed=1)
    gpu.set_parameters(model.net.weights, model.net.biases)
    on_gpu = Model(gpu, model.scaler, model.labels)
    out = outputs(on_gpu.to_onnx(), X)
    np.testing.assert_array_equal(out["label"], on_gpu.predict(X))
    close(out["probabilities"], on_gpu.predict_proba(X))
    assert outputs(model.to_onnx(), X)["label"].tolist() == out["label"].tolist()


def test_cli_exports_a_bare_network_file(tmp_path, rng):
    net = MLP([4, 5, 3], "tanh", device="cpu", seed=0)
    net.save(str(tmp_path / "net.npz"))
    proc = run("export", "net.npz", "--onnx", "net.onnx", cwd=tmp_path)
    assert "bare network" in proc.stdout
    X = rng.normal(size=(20, 4)).astype(np.float32)
    out = outputs(onnx.load(str(tmp_path / "net.onnx")), X)
    close(out["outputs"], net.forward(X))
    np.testing.assert_array_equal(out["label"], net.predict(X))
