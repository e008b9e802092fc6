"""The lecture's plain backprop (gpubp.reference) against the fused path of MLP, in float64."""

from __future__ import annotations

import numpy as np
import pytest
from test_backprop import PAIRS, X_HAND, Y_HAND, targets

import gpubp
from gpubp import reference
from gpubp.activations import HIDDEN


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize(("loss", "output"), PAIRS, ids=[f"{l}-{o}" for l, o in PAIRS])
def test_reference_equals_the_fused_path(loss, output, activation, depth, cpu, rng):
    """A, Δ, ∂L/∂W, ∂L/∂b and the loss, layer by layer, on every activation/output/loss pair and both kernel sets."""
    sizes = [4] + [5] * (depth - 1) + [3]
    net = gpubp.MLP(sizes, activation, output, loss, device=cpu, dtype="float64", seed=depth)
    biases = [rng.normal(size=b.shape) for b in net.biases]  # non-zero, so a dropped bias is seen
    net.set_parameters(list(net.weights), biases)
    X = rng.normal(size=(6, 4))
    Y = targets(loss, 3, 6, rng)
    fused = net.trace(X, Y)
    ref = reference.backprop(net.weights, net.biases, X, Y, activation, output, loss)
    assert ref["loss"] == pytest.approx(fused["loss"], rel=1e-12)
    for l in range(net.L + 1):
        np.testing.assert_allclose(ref["A"][l], fused["A"][l], rtol=1e-12, atol=1e-15)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(ref["delta"][l], fused["delta"][l], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(ref["dW"][l - 1], fused["dW"][l - 1], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(ref["db"][l - 1], fused["db"][l - 1], rtol=1e-10, atol=1e-15)


def test_reference_gives_the_worked_example():
    """The 2-2-2 sigmoid network of the worked example (see test_backprop): δ² and ∂E/∂w5 by hand."""
    W = [np.array([[0.15, 0.20], [0.25, 0.30]]), np.array([[0.40, 0.45], [0.50, 0.55]])]
    b = [np.array([0.35, 0.35]), np.array([0.60, 0.60])]
    ref = reference.backprop(W, b, X_HAND, Y_HAND, "sigmoid", "sigmoid", "mse")
    np.testing.assert_allclose(ref["Z"][1], [[0.3775, 0.3925]], atol=1e-12)
    np.testing.assert_allclose(ref["A"][2], [[0.75136507, 0.772928465]], atol=1e-9)
    assert ref["loss"] == pytest.approx(0.298371109, abs=1e-9)
    np.testing.assert_allclose(ref["delta"][2], [[0.138498562, -0.038098236]], atol=1e-9)
    assert ref["dW"][1][0, 0] == pytest.approx(0.082167041, abs=1e-9)
    assert ref["db"][0][0] == pytest.approx(0.008771354, abs=1e-9)


def test_softmax_with_mse_is_a_jacobian_product_not_an_elementwise_derivative(rng):
    """The output error of softmax + mse mixes each row's outputs: no elementwise g' gives it."""
    Z = rng.normal(size=(4, 3))
    A, Y = reference.g("softmax", Z), rng.normal(size=(4, 3))
    ref = reference.backprop([np.eye(3)], [np.zeros(3)], Z, Y, output="softmax", loss="mse")
    J = [np.diag(a) - np.outer(a, a) for a in A]  # ∂a_i/∂z_j of each row
    np.testing.assert_allclose(ref["delta"][1], [Jr.T @ r for Jr, r in zip(J, (A - Y) / 4)], rtol=1e-12)
    assert not np.allclose(ref["delta"][1], (A - Y) / 4 * A * (1 - A))


@pytest.mark.parametrize(("call", "args"), [(reference.g, ("swish", np.zeros(2))),
                                            (reference.g_prime, ("softmax", np.zeros(2))),
                                            (reference.loss_value, ("hinge", np.ones(2), np.ones(2))),
                                            (reference.loss_gradient, ("hinge", np.ones(2), np.ones(2)))])  # fmt: skip
def test_unknown_names_are_refused(call, args):
    with pytest.raises(ValueError, match=r"unknown|no elementwise"):
        call(*args)


def test_softmax_backward_stays_in_float32(rng):
    """The Jacobian product of a float32 network is float32 arithmetic throughout (no float64 temporaries)."""
    from gpubp.activations import softmax_backward
    from gpubp.backend import CPU

    a = reference.g("softmax", rng.normal(size=(7, 5))).astype(np.float32)
    delta = rng.normal(size=(7, 5)).astype(np.float32)
    want = (delta - (delta * a).sum(axis=1, keepdims=True)) * a  # the same operations in float32
    softmax_backward(CPU, a, delta)
    assert delta.dtype == np.float32
    np.testing.assert_array_equal(delta, want)
