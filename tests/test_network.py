"""MLP's small contracts: parameters in and out, its config, probabilities, weighted losses."""

from __future__ import annotations

import numpy as np
import pytest

import gpubp


def small(loss: str = "cross_entropy", **kw) -> gpubp.MLP:
    return gpubp.MLP([4, 5, 3], "tanh", loss=loss, device="cpu", dtype="float64", seed=3, **kw)


def test_set_parameters_refuses_wrong_counts_and_shapes():
    net = small()
    W, b = list(net.weights), list(net.biases)
    with pytest.raises(ValueError, match=r"^expected 2 weight matrices and 2 bias vectors, got 1 and 2$"):
        net.set_parameters(W[:1], b)
    with pytest.raises(ValueError, match=r"^expected 2 weight matrices and 2 bias vectors, got 2 and 1$"):
        net.set_parameters(W, b[:1])
    with pytest.raises(ValueError, match=r"^b_2 must have shape \(3,\), got \(4,\)$"):
        net.set_parameters(W, [b[0], np.zeros(4)])
    with pytest.raises(ValueError, match=r"^W_1 contains NaN or infinite values$"):
        net.set_parameters([np.full_like(W[0], np.inf), W[1]], b)


def test_config_rebuilds_the_network():
    net = small(init="normal")
    twin = gpubp.MLP(**net.config(), device="cpu")
    assert twin.config() == net.config()
    assert set(net.config()) == {"sizes", "activation", "output", "loss", "init", "dtype", "seed"}
    for W, V in zip(net.weights, twin.weights):
        np.testing.assert_array_equal(W, V)  # same seed, same init: the same weights


def test_predict_proba_is_the_classifiers_output(rng):
    net, X = small(), rng.normal(size=(5, 4))
    np.testing.assert_array_equal(net.predict_proba(X), net.forward(X))
    with pytest.raises(ValueError, match=r"^predict_proba needs a classifier \(loss 'cross_entropy' or 'bce'\); use"):
        small("mse").predict_proba(X)


def test_sample_weights_give_the_weighted_mean(rng):
    """L = Σ w_i ℓ_i / Σ w and its gradient, against one-row passes; float32 weights are read in float64."""
    net = small()
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    w = np.array([0.1, 0.7, 0.3, 0.0, 1.9, 0.2], dtype=np.float32)
    rows = [net.loss_and_gradients(X[i : i + 1], y[i : i + 1]) for i in range(6)]
    w64 = w.astype(np.float64) / w.astype(np.float64).sum()
    loss, grads = net.loss_and_gradients(X, y, sample_weight=w)
    assert loss == pytest.approx(sum(wi * r[0] for wi, r in zip(w64, rows)), rel=1e-14)
    for l, (dW, db) in enumerate(grads):
        np.testing.assert_allclose(dW, sum(wi * r[1][l][0] for wi, r in zip(w64, rows)), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, sum(wi * r[1][l][1] for wi, r in zip(w64, rows)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "w",
    [[1.0] * 5, [1.0, 1.0, np.nan, 1.0, 1.0, 1.0], [1.0, 1.0, -0.5, 1.0, 1.0, 1.0], [0.0] * 6],
    ids=["length", "nan", "negative", "zero-sum"],
)
def test_bad_sample_weights_are_refused(w, rng):
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    with pytest.raises(
        ValueError, match=r"^sample_weight must (be 6 |be finite and >= 0, got sample_weight\[2\]|have a positive sum)"
    ):
        small().loss_and_gradients(X, y, sample_weight=np.array(w))


def test_to_moves_between_devices_and_keeps_the_weights():
    """Two CPU devices (the NumPy twins, the compiled loops) stand in for two GPUs."""
    from cpu_kernels import CPU_NUMBA, CPU_NUMPY

    net = gpubp.MLP([4, 5, 3], "tanh", device=CPU_NUMPY, dtype="float64", seed=3)
    W, b, store = [W.copy() for W in net.weights], [b.copy() for b in net.biases], net.params
    assert net.to(CPU_NUMPY) is net
    assert net.params is store  # the same device: nothing rebuilt, optimisers made before keep working
    net.to(CPU_NUMBA)
    assert net.device is CPU_NUMBA
    assert net.params is not store
    for got, want in zip(net.weights + net.biases, W + b):
        np.testing.assert_array_equal(got, want)


def test_load_gives_back_the_saved_network(tmp_path, rng):
    from cpu_kernels import CPU_NUMPY

    net = gpubp.MLP([4, 5, 3], "relu", "tanh", "mse", init="normal", device="cpu", dtype="float64", seed=4)
    net.save(str(tmp_path / "m.npz"))
    for loaded in (gpubp.network.load(str(tmp_path / "m.npz")), gpubp.network.load(str(tmp_path / "m.npz"), CPU_NUMPY)):
        assert loaded.config() == net.config()
        X = rng.normal(size=(3, 4))
        np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    assert loaded.device is CPU_NUMPY


def test_r2_follows_scikit_learn_on_constant_and_small_targets(rng):
    """Per output, then averaged: constant targets score 1 when fitted exactly and 0 otherwise; small
    targets (Σ(y − ȳ)² < 1) score 1 − Σ(y − a)²/Σ(y − ȳ)² as any others."""
    net = gpubp.MLP([2, 4], "identity", "identity", "mse", device="cpu", dtype="float64")
    net.set_parameters([np.zeros((4, 2))], [np.array([0.5, -2.0, 0.25, 0.0])])  # A_L = b on every row
    Y = np.column_stack([np.full(8, 0.5), np.full(8, -2.0), np.full(8, 0.75), rng.normal(scale=0.01, size=8)])
    y3 = Y[:, 3]
    want = np.mean([1.0, 1.0, 0.0, 1 - np.sum(y3**2) / np.sum((y3 - y3.mean()) ** 2)])
    assert net.evaluate(rng.normal(size=(8, 2)), Y)["r2"] == pytest.approx(want, rel=1e-12)


def test_sample_weights_summing_below_one_are_fine(rng):
    net = small()
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    loss, _ = net.loss_and_gradients(X, y, sample_weight=np.full(6, 0.1))
    assert loss == pytest.approx(net.loss_and_gradients(X, y)[0], rel=1e-14)  # equal weights: the plain mean


def test_pickle_keeps_config_weights_generator_and_history(rng, monkeypatch):
    import pickle

    net = small(init="normal")
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    net.fit(X, y, epochs=2, batch_size=4)
    monkeypatch.setenv("GPUBP_DEVICE", "gpu:7")  # the pickled device is used, not the default
    twin = pickle.loads(pickle.dumps(net))
    assert twin.config() == net.config()
    assert twin.device is net.device
    assert twin.history == net.history
    assert twin.rng.bit_generator.state == net.rng.bit_generator.state
    for got, want in zip(twin.weights + twin.biases, net.weights + net.biases):
        np.testing.assert_array_equal(got, want)
    assert repr(twin) == ("MLP([4, 5, 3], activation='tanh', output='softmax', loss='cross_entropy', "
                          "device='cpu', dtype='float64')")  # fmt: skip


def test_unpickling_where_the_device_is_missing_warns_and_uses_the_cpu(monkeypatch):
    from gpubp.backend import gpu_unavailable_reason

    if gpu_unavailable_reason() is None:
        pytest.skip("a GPU answers here, so a network saved on gpu:0 is restored there")
    state = small().__getstate__()
    state["device"] = "gpu:0"
    monkeypatch.setenv("GPUBP_DEVICE", "gpu:7")  # the CPU, not the default device
    net = gpubp.MLP.__new__(gpubp.MLP)
    with pytest.warns(UserWarning, match=r"saved on gpu:0, which is not usable here .*; it runs on the CPU"):
        net.__setstate__(state)
    assert net.device.name == "cpu"
    assert net.config() == small().config()


def test_fit_defaults_are_ten_epochs_of_32_rows_at_lr_0_1(rng):
    X, y = rng.normal(size=(70, 4)), rng.integers(0, 3, 70)
    a, b = small(), small()
    history = a.fit(X, y)
    assert history is a.history
    b.fit(X, y, epochs=10, batch_size=32, lr=0.1, optimizer="sgd", momentum=0.0, shuffle=True, distributed=False)
    assert len(history["epoch"]) == 10
    for got, want in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match=r"^distributed must be"):
        small().fit(X, y, distributed="yes")
    seen = []
    small().fit(X, y, epochs=1, batch_size=10, on_batch=lambda batch, n: seen.append((batch, n)))
    assert seen == [(b, 7) for b in range(1, 8)]


def test_an_unknown_dtype_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"^unknown dtype 'float16': expected one of float32, float64$"):
        gpubp.MLP([2, 2], dtype="float16")
