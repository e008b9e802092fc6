"""Leaky ReLU, the activation added by one registry entry (gpubp.kernels.ACTIVATIONS): it trains on both CPU
kernel sets, agrees with PyTorch's autograd, and reaches the command, the estimators and the export. The gradient
checks, the reference backprop and the kernels' IEEE comparisons take it from the registry (test_backprop,
test_reference, test_kernels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_calls import cli, refused

import gpubp
from gpubp import MLP, reference
from gpubp.sklearn import MLPClassifier, MLPRegressor


def test_g_and_its_derivative_are_the_lecture_s(rng):
    Z = np.array([[-3.0, -0.0, 0.0, 2.0, -1e-300, np.inf, -np.inf]])
    A = reference.g("leaky_relu", Z)
    np.testing.assert_array_equal(A, np.where(Z > 0, Z, 0.01 * Z))
    assert np.signbit(A[0, 1])  # −0 stays −0
    assert not np.signbit(A[0, 2])
    np.testing.assert_array_equal(reference.g_prime("leaky_relu", Z), [[0.01, 0.01, 0.01, 1.0, 0.01, 1.0, 0.01]])


def test_it_trains_and_both_kernel_sets_agree_bit_for_bit(rng):
    from cpu_kernels import CPU_NUMBA, CPU_NUMPY, need_numba

    need_numba()
    X, y = rng.normal(size=(96, 6)), rng.integers(0, 3, 96)
    nets = [MLP([6, 16, 8, 3], "leaky_relu", device=dev, seed=3) for dev in (CPU_NUMPY, CPU_NUMBA)]
    assert nets[0].init == "he"
    for net in nets:
        net.fit(X, y, epochs=5, batch_size=16, lr=0.05, momentum=0.9)
    assert nets[0].history["train_loss"][-1] < 0.8 * nets[0].history["train_loss"][0]
    for W0, W1 in zip(nets[0].weights, nets[1].weights):
        assert np.array_equal(W0, W1)


def test_gradients_equal_pytorch_autograd(rng):
    torch = pytest.importorskip("torch")
    net = MLP([4, 6, 5, 3], "leaky_relu", device="cpu", dtype="float64", seed=2)
    X, y = rng.normal(size=(9, 4)), rng.integers(0, 3, 9)
    _, grads = net.loss_and_gradients(X, y)
    A = torch.tensor(X)
    params = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
              for W, b in zip(net.weights, net.biases)]  # fmt: skip
    for l, (W, b) in enumerate(params):
        Z = A @ W.T + b
        A = torch.nn.functional.leaky_relu(Z, 0.01) if l < len(params) - 1 else Z
    torch.nn.functional.cross_entropy(A, torch.tensor(y)).backward()
    for (dW, db), (W, b) in zip(grads, params):
        np.testing.assert_allclose(dW, W.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, b.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_the_export_gives_gpubp_s_answers(rng, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = MLP([5, 7, 3], "leaky_relu", device="cpu", seed=0)
    net.fit(rng.normal(size=(40, 5)), rng.integers(0, 3, 40), epochs=2)
    net.to_onnx(tmp_path / "net.onnx")
    X = rng.normal(size=(11, 5)).astype(np.float32) * 3
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": X})))["outputs"]
    np.testing.assert_allclose(got, net.forward(X), rtol=1e-5, atol=1e-6)


def test_the_command_takes_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    np.savetxt("rows.csv", np.column_stack([X, (X[:, 0] > 0).astype(int)]), delimiter=",", fmt="%g",
               header="a,b,c,label", comments="")  # fmt: skip
    code, out, err = cli(capsys, "train", "--data", "rows.csv", "--activation", "leaky_relu", "--hidden", "8",
                         "--epochs", "3", "--save", "m.npz", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
    assert gpubp.load("m.npz").net.activation == "leaky_relu"
    assert "leaky_relu" in refused(capsys, "train", "--data", "rows.csv", "--activation", "swish")
    code, out, err = cli(capsys, "gradcheck", "--hidden", "6,5", "--activation", "leaky_relu", "--rows", "16")
    assert code == 0, err
    assert "PASS" in out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_estimators_take_gpubp_s_name_where_scikit_learn_has_none(rng):
    """scikit-learn's MLPs have no leaky relu: the estimators take gpubp's name; skl2onnx, which converts
    scikit-learn's activations only, refuses such an estimator with the way out."""
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 2, 80)
    clf = MLPClassifier((8,), activation="leaky_relu", max_iter=5, device="cpu", random_state=0).fit(X, y)
    assert clf._net.activation == "leaky_relu"
    assert clf.predict(X).shape == (80,)
    reg = MLPRegressor(hidden_layer_sizes=(8,), activation="leaky_relu", max_iter=5, device="cpu", random_state=0)
    reg.fit(X, X[:, 0])
    assert np.isfinite(reg.predict(X)).all()
    with pytest.raises(ValueError, match=r"must be a str among.*leaky_relu"):
        MLPClassifier(activation="leaky").fit(X, y)
    pytest.importorskip("skl2onnx")
    import skl2onnx

    from gpubp.sklearn import register_onnx_converters

    register_onnx_converters()
    with pytest.raises(ValueError, match=r"skl2onnx converts scikit-learn's activations only, and 'leaky_relu'"):
        skl2onnx.to_onnx(clf, X[:1].astype(np.float32))


def test_a_steady_state_step_allocates_nothing(cpu, rng):
    """The derivative's choice per element (a mask, then two copies) uses kept buffers, on either kernel set."""
    from test_steady_state import test_a_steady_state_cpu_step_allocates_nothing as allocates_nothing

    allocates_nothing([8, 512, 2], 256, "leaky_relu", {"momentum": 0.9}, cpu, rng)  # a mask per step: 128 KiB
