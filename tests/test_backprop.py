"""Backprop against central differences, and against a network worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp
from gpubp.activations import HIDDEN

# every output/loss pairing the API allows
PAIRS = [("cross_entropy", "softmax"), ("bce", "sigmoid")] + [("mse", o) for o in (*HIDDEN, "softmax")]


def targets(loss: str, n_out: int, batch: int, rng: np.random.Generator, labels: bool = False):
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, batch)
        return y if labels else np.eye(n_out)[y]
    if loss == "bce":
        return rng.integers(0, 2, (batch, n_out)).astype(float)
    return rng.normal(size=(batch, n_out))


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize(("loss", "output"), PAIRS, ids=[f"{l}-{o}" for l, o in PAIRS])
def test_gradients_match_central_differences(loss, output, activation, depth, batch, rng, cpu):
    sizes = [3] + [4] * (depth - 1) + [3]
    net = gpubp.MLP(sizes, activation, output, loss, device=cpu, dtype="float64", seed=depth)
    X = rng.normal(size=(batch, 3))
    Y = targets(loss, 3, batch, rng)
    # h = 1e-5 sits near the optimal central-difference step for float64, ε^(1/3) ≈ 6e-6: with
    # h = 1e-6 the rounding of the loss (≈1e-16 / h) dominates for the tiny first-layer gradients
    # of a 4-deep sigmoid net (‖∂L/∂W_1‖ ≈ 3e-3), measured at up to 3.5e-7 there.
    assert gpubp.gradcheck(net, X, Y, eps=1e-5) <= 1e-7


def test_gradcheck_detects_a_wrong_gradient(rng, monkeypatch):
    """The check can fail: break σ' and it must notice."""
    from gpubp import kernels

    net = gpubp.MLP([3, 4, 2], "sigmoid", device="cpu", dtype="float64", seed=0)
    X, Y = rng.normal(size=(4, 3)), rng.integers(0, 2, 4)
    monkeypatch.setattr(kernels.delta_sigmoid, "numpy", lambda a, delta: None)  # g' = 1: wrong
    monkeypatch.setattr(kernels.delta_sigmoid, "_host", lambda a, delta: None)  # the compiled loop too
    broken = gpubp.MLP([3, 4, 2], "sigmoid", device="cpu", dtype="float64", seed=0)
    assert gpubp.gradcheck(broken, X, Y) > 1e-2
    monkeypatch.undo()
    assert gpubp.gradcheck(net, X, Y) <= 1e-7


def test_gradcheck_runs_the_networks_own_kernels(cpu, rng, monkeypatch):
    """tanh' = 1 + a² planted in one kernel set: the check of a network running that set fails, the check of
    one running the other set passes. The float64 copy must keep the network's kernels, not the CPU's default."""
    from gpubp import kernels

    def wrong(a, delta):
        delta *= 1 + a * a

    X, Y = rng.normal(size=(4, 3)), rng.integers(0, 2, 4)
    planted_in_own = "_host" if cpu.jit else "numpy"
    monkeypatch.setattr(kernels.delta_tanh, planted_in_own, wrong)
    assert gpubp.gradcheck(gpubp.MLP([3, 4, 2], "tanh", device=cpu, dtype="float64", seed=0), X, Y) > 1e-2
    monkeypatch.undo()
    if cpu.jit:
        kernels.delta_tanh.host()  # compiled before the twin is swapped, so the loop is the real one
    monkeypatch.setattr(kernels.delta_tanh, "numpy" if cpu.jit else "_host", wrong)
    assert gpubp.gradcheck(gpubp.MLP([3, 4, 2], "tanh", device=cpu, dtype="float64", seed=0), X, Y) <= 1e-7


def test_integer_labels_give_the_same_gradients_as_one_hot(rng):
    net = gpubp.MLP([4, 5, 3], "tanh", device="cpu", dtype="float64", seed=3)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    loss_a, grads_a = net.loss_and_gradients(X, y)
    loss_b, grads_b = net.loss_and_gradients(X, np.eye(3)[y])
    assert loss_a == pytest.approx(loss_b, rel=1e-15)
    for (dWa, dba), (dWb, dbb) in zip(grads_a, grads_b):
        np.testing.assert_array_equal(dWa, dWb)
        np.testing.assert_array_equal(dba, dbb)


def hand_worked_net(device) -> gpubp.MLP:
    """The classic 2-2-2 sigmoid network with squared error (M. Mazur, "A Step by Step
    Backpropagation Example"): inputs 0.05, 0.10, targets 0.01, 0.99."""
    net = gpubp.MLP([2, 2, 2], "sigmoid", "sigmoid", "mse", device=device, dtype="float64")
    net.set_parameters([np.array([[0.15, 0.20], [0.25, 0.30]]), np.array([[0.40, 0.45], [0.50, 0.55]])],
                        [np.array([0.35, 0.35]), np.array([0.60, 0.60])])  # fmt: skip
    return net


X_HAND = np.array([[0.05, 0.10]])
Y_HAND = np.array([[0.01, 0.99]])


def test_hand_worked_forward_pass(cpu):
    net = hand_worked_net(cpu)
    # z¹ = W¹x + b¹ = (0.3775, 0.3925); a¹ = σ(z¹)
    # z² = W²a¹ + b² ; a² = σ(z²) = (0.75136507, 0.772928465)
    np.testing.assert_allclose(net.forward(X_HAND), [[0.75136507, 0.772928465]], atol=1e-9)
    loss, _ = net.loss_and_gradients(X_HAND, Y_HAND)
    # E = ½(0.01 − 0.75136507)² + ½(0.99 − 0.772928465)² = 0.298371109
    assert loss == pytest.approx(0.298371109, abs=1e-9)


def test_hand_worked_deltas_and_gradients(cpu):
    net = hand_worked_net(cpu)
    _, [(dW1, db1), (dW2, db2)] = net.loss_and_gradients(X_HAND, Y_HAND)
    # δ² = (a² − y) ⊙ σ'(z²) = (a² − y) ⊙ a²(1 − a²);  with B = 1, ∂L/∂b² = δ²
    delta2 = np.array([0.138498562, -0.038098236])
    np.testing.assert_allclose(db2, delta2, atol=1e-9)
    # ∂L/∂W² = δ²ᵀ a¹ with a¹ = (0.593269992, 0.596884378): ∂E/∂w5 = 0.082167041
    np.testing.assert_allclose(dW2, np.outer(delta2, [0.593269992, 0.596884378]), atol=1e-9)
    assert dW2[0, 0] == pytest.approx(0.082167041, abs=1e-9)
    # δ¹ = (W²)ᵀδ² ⊙ σ'(z¹): 0.036350306 · 0.241300709 = 0.008771354 for the first hidden unit
    assert db1[0] == pytest.approx(0.008771354, abs=1e-9)
    # ∂L/∂W¹ = δ¹ᵀ x
    np.testing.assert_allclose(dW1, np.outer(db1, X_HAND[0]), rtol=1e-12)


def test_hand_worked_sgd_step(cpu):
    """One step with η = 0.5 gives the weights of the worked example."""
    net = hand_worked_net(cpu)
    net.fit(X_HAND, Y_HAND, epochs=1, batch_size=1, lr=0.5, shuffle=False)
    np.testing.assert_allclose(net.weights[1], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=1e-8)
    np.testing.assert_allclose(net.weights[0], [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=1e-8)


@pytest.mark.parametrize("activation", HIDDEN)
def test_float32_agrees_with_float64(activation, rng):
    X, y = rng.normal(size=(16, 5)), rng.integers(0, 3, 16)
    nets = {dt: gpubp.MLP([5, 8, 3], activation, device="cpu", dtype=dt, seed=7) for dt in ("float32", "float64")}
    out = {dt: net.loss_and_gradients(X, y) for dt, net in nets.items()}
    assert out["float32"][0] == pytest.approx(out["float64"][0], rel=1e-5)
    for (dW32, db32), (dW64, db64) in zip(out["float32"][1], out["float64"][1]):
        assert dW32.dtype == np.float32
        assert db32.dtype == np.float32
        np.testing.assert_allclose(dW32, dW64, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(db32, db64, rtol=1e-4, atol=1e-6)


def test_softmax_is_stable_for_huge_logits():
    net = gpubp.MLP([1, 3], output="softmax", device="cpu", dtype="float32")
    net.set_parameters([np.array([[1e4], [0.0], [-1e4]])], [np.zeros(3)])
    out = net.forward(np.array([[1.0]], np.float32))
    np.testing.assert_allclose(out, [[1.0, 0.0, 0.0]])
    loss, _ = net.loss_and_gradients(np.array([[1.0]], np.float32), np.array([2]))
    assert np.isfinite(loss)
    assert loss > 80


def test_trace_shows_the_lecture_quantities(cpu):
    net = hand_worked_net(cpu)
    t = net.trace(X_HAND, Y_HAND)
    np.testing.assert_allclose(t["A"][1], [[0.593269992, 0.596884378]], atol=1e-9)
    np.testing.assert_allclose(t["delta"][2], [[0.138498562, -0.038098236]], atol=1e-9)
    # Δ¹ = (Δ² W²) ⊙ σ'(z¹), written out here rather than taken from the library
    a1 = t["A"][1]
    np.testing.assert_allclose(t["delta"][1], (t["delta"][2] @ net.weights[1]) * a1 * (1 - a1), rtol=1e-14)
    loss, grads = net.loss_and_gradients(X_HAND, Y_HAND)
    assert t["loss"] == loss
    for l, (dW, db) in enumerate(grads):
        np.testing.assert_array_equal(t["dW"][l], dW)
        np.testing.assert_array_equal(t["db"][l], db)


def test_a_trace_is_a_copy_that_training_does_not_change(cpu):
    net = hand_worked_net(cpu)
    t = net.trace(X_HAND, Y_HAND)
    kept = {key: [None if a is None else a.copy() for a in t[key]] for key in ("A", "delta", "dW", "db")}
    net.fit(np.vstack([X_HAND, -X_HAND]), np.concatenate([Y_HAND, 1 - Y_HAND]), epochs=2, batch_size=1)
    for key, arrays in kept.items():
        for a, b in zip(arrays, t[key]):
            if a is not None:
                np.testing.assert_array_equal(b, a, err_msg=key)


def test_set_parameters_checks_shapes_and_values():
    net = gpubp.MLP([2, 3, 1], loss="mse", device="cpu")
    with pytest.raises(ValueError, match=r"W_1 must have shape \(3, 2\), got \(2, 3\)"):
        net.set_parameters([np.zeros((2, 3)), np.zeros((1, 3))], [np.zeros(3), np.zeros(1)])
    with pytest.raises(ValueError, match="expected 2 weight matrices"):
        net.set_parameters([np.zeros((3, 2))], [np.zeros(3)])
    with pytest.raises(ValueError, match="b_2 contains NaN"):
        net.set_parameters([np.zeros((3, 2)), np.zeros((1, 3))], [np.zeros(3), np.array([np.nan])])


def test_the_lecture_example_script_prints_the_worked_numbers():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "lecture_example.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    # Mazur's published values: A_2, E, ∂E/∂w5, new w5..w8 and new w1
    for number in ("0.75136507", "0.298371109", "0.082167041", "0.35891648", "0.408666186", "0.51130127",
                   "0.561370121", "0.149780716"):  # fmt: skip
        assert number in out
    # the bias gradients are shown (∂E/∂b_2 = Δ_2 for one row) and the biases move
    assert "∂E/∂b_2 = Σ_rows Δ_2 = [ 0.138498562 -0.038098237]" in out
    assert "b_2 = [0.530750719 0.619049118]" in out  # 0.60 − 0.5 Δ_2
