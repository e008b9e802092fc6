"""The flat parameter store: layout, views, copies into it, and the two-call optimiser step."""

from __future__ import annotations

import numpy as np
import pytest
from cpu_kernels import CPU_NUMPY

import gpubp
from gpubp import kernels
from gpubp.training import Trainer


def test_weights_and_biases_are_views_of_one_flat_buffer():
    net = gpubp.MLP([4, 5, 3], device="cpu", dtype="float64", seed=0)
    store = net.params
    assert store.theta.shape == (4 * 5 + 5 * 3 + 5 + 3,)
    assert [W.shape for W in net.weights] == [(5, 4), (3, 5)]
    assert [b.shape for b in net.biases] == [(5,), (3,)]
    for arr in net.weights + net.biases:
        assert np.shares_memory(arr, store.theta)
    for arr in net.dW + net.db:
        assert np.shares_memory(arr, store.grad)
    # all weights, then all biases: W_1 row-major, W_2, b_1, b_2
    expected = np.concatenate([W.ravel() for W in net.weights] + list(net.biases))
    np.testing.assert_array_equal(store.theta, expected)
    np.testing.assert_array_equal(store.weight_part(store.theta), expected[:35])
    np.testing.assert_array_equal(store.bias_part(store.theta), expected[35:])


def test_set_parameters_copies_into_the_store_so_a_trainer_made_before_still_trains_the_net(rng):
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    net = gpubp.MLP([4, 5, 3], "tanh", device="cpu", dtype="float64", seed=0)
    weights_list, theta = net.weights, net.params.theta
    trainer = Trainer(net, X, y, batch_size=20, lr=0.1, momentum=0.9, shuffle=False)
    new_W = [rng.normal(size=W.shape) for W in net.weights]
    new_b = [rng.normal(size=b.shape) for b in net.biases]
    net.set_parameters(new_W, new_b)
    assert net.weights is weights_list  # nothing rebound
    assert net.params.theta is theta
    np.testing.assert_array_equal(net.weights[1], new_W[1])
    _, grads = net.loss_and_gradients(X, y)
    trainer.run(1)
    for W0, b0, W1, b1, (dW, db) in zip(new_W, new_b, net.weights, net.biases, grads):
        np.testing.assert_allclose(W1, W0 - 0.1 * dW, rtol=1e-13, atol=1e-15)  # first momentum step: v = g
        np.testing.assert_allclose(b1, b0 - 0.1 * db, rtol=1e-13, atol=1e-15)


def test_moving_to_the_same_device_keeps_the_store():
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    store = net.params
    assert net.to("cpu") is net
    assert net.params is store


def test_a_trainer_refuses_a_network_that_moved_to_another_store(rng):
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=5)
    from gpubp.params import ParamStore

    net.params = ParamStore(net.device, net.sizes, net.dtype)  # what to() does for another device
    with pytest.raises(RuntimeError, match="moved to another device"):
        trainer.run(1)


@pytest.mark.parametrize(
    ("sizes", "kwargs", "name"),
    [
        ([6, 8, 8, 8, 3], {}, "sgd_update"),
        ([6, 8, 8, 8, 3], {"momentum": 0.9, "weight_decay": 1e-3}, "momentum_update"),
        ([6, 8, 3], {"momentum": 0.9, "nesterov": True}, "nesterov_update"),
        ([6, 8, 8, 8, 8, 3], {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3}, "adam_update"),
    ],
)
def test_an_optimiser_step_is_two_kernel_calls_whatever_the_depth(sizes, kwargs, name, rng, cpu):
    X, y = rng.normal(size=(30, sizes[0])), rng.integers(0, sizes[-1], 30)
    net = gpubp.MLP(sizes, "relu", device=cpu, seed=0)
    trainer = Trainer(net, X, y, batch_size=10, **{"lr": 0.01, **kwargs})
    calls = []
    real = trainer.optimizer._update
    trainer.optimizer._update = lambda *args: (calls.append(args), real(*args))
    trainer.run(1)  # 3 steps
    kernel = getattr(kernels, name)
    at = -2 if name == "sgd_update" else -3  # an array of θ's size in each signature
    n_w = net.params.n_weights
    wd = kwargs.get("weight_decay", 0.0)
    if cpu.jit and kernel.loop is not None:
        # compiled loops, like the GPU's kernels, take the two slices: weights (decayed), then biases
        assert real is kernel.host()
        assert len(calls) == 3 * 2
    else:
        # the NumPy twins: one update over all of θ (the weights' decay added before it; see the next test)
        assert real is kernel.numpy
        assert len(calls) == 3
        assert [(args[at].size, float(args[1])) for args in calls] == [(net.params.size, 0.0)] * 3
        trainer.optimizer.whole = False  # the per-slice path (the GPU's)
        calls.clear()
        trainer.run(2)
        assert len(calls) == 3 * 2
    assert [args[at].size for args in calls[:2]] == [n_w, net.params.size - n_w]  # all weights, then all biases
    assert [float(args[1]) for args in calls[:2]] == [pytest.approx(wd), 0.0]  # biases never decayed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "sgd", "weight_decay": 0.1},
        {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.1},
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        {"optimizer": "adam", "weight_decay": 0.1},
    ],
)
def test_one_update_over_all_of_theta_equals_the_per_slice_update(kwargs, rng):
    """The NumPy twins' one SGD or Adam update over θ (the weights' decay added first) is the per-slice
    update exactly."""
    X, y = rng.normal(size=(30, 6)), rng.integers(0, 3, 30)
    runs = []
    for whole in (True, False):
        net = gpubp.MLP([6, 8, 8, 3], "relu", device=CPU_NUMPY, seed=0)
        trainer = Trainer(net, X, y, batch_size=10, lr=0.01, **kwargs)
        if not whole:
            trainer.optimizer.whole = False
        trainer.run(3)
        runs.append((net.params.theta.copy(), *(f.copy() for f in trainer.optimizer.flat.values())))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weight_decay_reaches_the_weights_only_on_either_path():
    from gpubp.optim import SGD
    from gpubp.params import ParamStore

    for whole in (True, False):
        store = ParamStore(gpubp.backend.CPU, [3, 2], np.float64)
        store.theta[...] = 1.0
        opt = SGD(store, lr=1.0, weight_decay=0.5)
        opt.whole = whole
        opt.step()  # a zero gradient: only the decay moves anything
        np.testing.assert_array_equal(store.weights[0], 0.5)
        np.testing.assert_array_equal(store.biases[0], 1.0)


def test_snapshots_and_optimiser_state_are_one_flat_buffer_each(rng):
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    net = gpubp.MLP([4, 5, 3], device="cpu", seed=0)
    trainer = Trainer(net, X, y, batch_size=5, optimizer="adam", lr=1e-3, validation_data=(X, y), patience=2)
    size = net.params.size
    assert trainer._last_good.shape == trainer.stopping.best.shape == (size,)
    assert trainer.optimizer.flat["m"].shape == trainer.optimizer.flat["v"].shape == (size,)
    trainer.run(2)
    state = trainer.state_dict()  # the file keeps one array per parameter, [W_1, b_1, W_2, b_2]
    assert [a.shape for a in state["optimizer"]["m"]] == [(5, 4), (5,), (3, 5), (3,)]
    assert [a.shape for a in state["best"]] == [(5, 4), (5,), (3, 5), (3,)]
