"""Optimisers against their formulas, step by step, in float64."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp


def data(rng, n=12):
    return rng.normal(size=(n, 4)), rng.integers(0, 3, n)


def reference_run(X, y, steps, rule, lr, weight_decay=0.0, **kw):
    """Full-batch training written out from the formulas, on a float64 twin of the network."""
    net = gpubp.MLP([4, 5, 3], "tanh", device="cpu", dtype="float64", seed=11)
    params = [p for W, b in zip(net.weights, net.biases) for p in (W, b)]
    is_weight = [True, False] * net.L
    state = [{"v": np.zeros_like(p), "m": np.zeros_like(p)} for p in params]
    for t in range(1, steps + 1):
        _, grads = net.loss_and_gradients(X, y)
        grads = [g for pair in grads for g in pair]
        for p, g, s, decay in zip(params, grads, state, is_weight):
            d = g + weight_decay * p if decay else g  # λW on weights only
            if rule == "sgd":
                p -= lr * d
            elif rule == "momentum":  # v ← μv + g; W ← W − ηv
                s["v"] = kw["mu"] * s["v"] + d
                p -= lr * s["v"]
            elif rule == "nesterov":  # v ← μv + g; W ← W − η(g + μv)
                s["v"] = kw["mu"] * s["v"] + d
                p -= lr * (d + kw["mu"] * s["v"])
            elif rule == "adam":
                b1, b2, eps = 0.9, 0.999, 1e-8
                s["m"] = b1 * s["m"] + (1 - b1) * d
                s["v"] = b2 * s["v"] + (1 - b2) * d * d
                m_hat = s["m"] / (1 - b1**t)
                v_hat = s["v"] / (1 - b2**t)
                p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return net


CASES = {
    "sgd": ({}, {}),
    "momentum": ({"mu": 0.9}, {"momentum": 0.9}),
    "nesterov": ({"mu": 0.8}, {"momentum": 0.8, "nesterov": True}),
    "adam": ({}, {"optimizer": "adam"}),
}


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("rule", list(CASES))
def test_optimizer_follows_its_formula(rule, weight_decay, rng):
    X, y = data(rng)
    ref_kw, fit_kw = CASES[rule]
    lr = 0.01 if rule == "adam" else 0.1
    ref = reference_run(X, y, 5, rule, lr, weight_decay, **ref_kw)
    net = gpubp.MLP([4, 5, 3], "tanh", device="cpu", dtype="float64", seed=11)
    net.fit(X, y, epochs=5, batch_size=len(X), lr=lr, shuffle=False, weight_decay=weight_decay, **fit_kw)
    for got, want in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_one_sgd_step_is_w_minus_lr_grad(rng):
    X, y = data(rng)
    net = gpubp.MLP([4, 5, 3], "relu", device="cpu", dtype="float64", seed=2)
    before = [W.copy() for W in net.weights], [b.copy() for b in net.biases]
    _, grads = net.loss_and_gradients(X, y)
    net.fit(X, y, epochs=1, batch_size=len(X), lr=0.3, shuffle=False)
    for W0, b0, W1, b1, (dW, db) in zip(*before, net.weights, net.biases, grads):
        np.testing.assert_allclose(W1, W0 - 0.3 * dW, rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(b1, b0 - 0.3 * db, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("rule", list(CASES))
def test_weight_decay_leaves_biases_alone(rule, cpu, rng):
    """One step from non-zero biases, with and without λ: both runs see the same gradient, so the biases
    must come out equal (a decayed bias would differ by about η·λ·b) and the weights must not."""
    X, y = data(rng)
    nets = [gpubp.MLP([4, 5, 3], device=cpu, dtype="float64", seed=5) for _ in range(2)]
    biases = [rng.normal(size=b.shape) for b in nets[0].biases]
    for net, weight_decay in zip(nets, (0.0, 0.5)):
        net.set_parameters(list(net.weights), biases)
        net.fit(X, y, epochs=1, batch_size=len(X), lr=0.1, shuffle=False, weight_decay=weight_decay, **CASES[rule][1])
    a, b = nets
    for ba, bb in zip(a.biases, b.biases):
        np.testing.assert_array_equal(ba, bb)
    for Wa, Wb in zip(a.weights, b.weights):
        assert not np.allclose(Wa, Wb)


def tiny_store():
    """θ of a 3-2 float64 network on the NumPy twins: W (2, 3) and b (2,), eight values."""
    from cpu_kernels import CPU_NUMPY

    return gpubp.MLP([3, 2], device=CPU_NUMPY, dtype="float64", seed=0).params


def test_adam_defaults_are_pytorchs_and_decay_nothing():
    """Built directly: β 0.9/0.999, ε 1e-8, no weight decay: a zero gradient moves nothing."""
    from gpubp.optim import Adam

    store = tiny_store()
    theta0 = store.theta.copy()
    store.grad[...] = 0
    adam = Adam(store, lr=0.1)
    assert (adam.beta1, adam.beta2, float(adam.eps), adam.eps_before_correction) == (0.9, 0.999, 1e-8, False)
    adam.step()
    np.testing.assert_array_equal(store.theta, theta0)


def test_adam_with_eps_before_the_correction_is_scikit_learns_step():
    """scikit-learn's Adam: lr_t = η √(1−β2ᵗ)/(1−β1ᵗ), W −= lr_t m / (√v + ε), with ε outside the correction."""
    from gpubp.optim import Adam

    store = tiny_store()
    g0 = np.array([3e-8, -1e-7, 2e-9, 5e-8, -4e-9, 1e-8, 2e-8, -6e-8])  # near ε, so where ε sits shows
    want = store.theta.copy()
    adam = Adam(store, lr=0.01, eps_before_correction=True)
    m, v = np.zeros(8), np.zeros(8)
    for t in (1, 2):
        store.grad[...] = g0  # the twins use the gradient as scratch
        adam.step()
        m = 0.9 * m + 0.1 * g0
        v = 0.999 * v + 0.001 * g0 * g0
        want -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(store.theta, want, rtol=1e-12)


def test_reset_and_state_dict_round_trip(rng):
    from gpubp.optim import Adam

    X, y = data(rng)
    net = gpubp.MLP([4, 5, 3], "tanh", device="cpu", dtype="float64", seed=1)
    opt = Adam(net.params, lr=0.01)
    for _ in range(3):
        net.loss_and_gradients(X, y)
        opt.step()
    state = opt.state_dict()
    twin = Adam(net.params, lr=0.01)
    twin.load_state_dict({"t": state["t"], **{k: state[k].reshape(1, -1) for k in ("m", "v")}})  # any shape
    assert twin.t == 3
    for k in ("m", "v"):
        assert twin.flat[k].dtype == np.float64
        np.testing.assert_array_equal(twin.flat[k], state[k])
    with pytest.raises(ValueError, match=r"^optimiser state 'm' has 3 values, expected 43$"):
        twin.load_state_dict({"t": 1, "m": np.zeros(3), "v": np.zeros(3)})
    opt.reset()
    assert opt.t == 0
    assert not opt.flat["m"].any()
    assert not opt.flat["v"].any()


def test_sgd_defaults_are_plain_and_steps_are_counted():
    from gpubp.optim import SGD

    store = tiny_store()
    theta0 = store.theta.copy()
    sgd = SGD(store, lr=0.1)
    for _ in range(2):
        store.grad[...] = 0.5  # the twins use the gradient as scratch
        sgd.step()
    np.testing.assert_allclose(store.theta, theta0 - 2 * 0.1 * 0.5, rtol=1e-15)
    assert sgd.t == 2
    assert sgd.state_dict() == {"t": 2}
