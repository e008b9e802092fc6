"""The same network in PyTorch: autograd's gradients and torch.optim's steps must match ours.

PyTorch is not a dependency of gpubp; ``make test`` installs it (the Makefile's TORCH_SPEC). Where it does
not import, these tests skip with the reason, and with GPUBP_REQUIRE_TORCH=1 (set by CI) fail instead, so a
run cannot turn green by skipping them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpubp


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        why = f"PyTorch is not installed ({exc}): the comparison with autograd needs it (make install adds it)"
        if os.environ.get("GPUBP_REQUIRE_TORCH") == "1":
            pytest.fail(f"GPUBP_REQUIRE_TORCH=1 but {why}", pytrace=False)
        pytest.skip(why, allow_module_level=True)
    return torch


torch = _import_torch()


def torch_twin(net: gpubp.MLP):
    """nn.Sequential with gpubp's weights, float64, and the loss gpubp uses (mean over the batch)."""
    act = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU,
           "identity": torch.nn.Identity}  # fmt: skip
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases), start=1):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(W, dtype=np.float64)))
            lin.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float64)))
        layers.append(lin)
        if l < net.L:
            layers.append(act[net.activation]())
    return torch.nn.Sequential(*layers)


def torch_loss(model, net, X, Y):
    Z = model(torch.from_numpy(X))
    Yt = torch.from_numpy(Y)
    if net.loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(Z, Yt.argmax(dim=1))
    if net.loss == "bce":
        return torch.nn.functional.binary_cross_entropy_with_logits(Z, Yt, reduction="sum") / len(X)
    A = {"identity": Z, "sigmoid": torch.sigmoid(Z), "tanh": torch.tanh(Z), "relu": torch.relu(Z),
         "softmax": torch.softmax(Z, dim=1)}[net.output]  # fmt: skip
    return 0.5 * ((A - Yt) ** 2).sum() / len(X)


CASES = [("relu", "cross_entropy", None), ("tanh", "bce", None), ("sigmoid", "mse", "sigmoid"),
         ("relu", "mse", "softmax"), ("identity", "mse", None)]  # fmt: skip


@pytest.mark.parametrize(("activation", "loss", "output"), CASES, ids=[f"{a}-{l}-{o}" for a, l, o in CASES])
def test_gradients_equal_autograd(activation, loss, output, rng):
    net = gpubp.MLP([5, 7, 6, 3], activation, output, loss, device="cpu", dtype="float64", seed=2)
    X = rng.normal(size=(9, 5))
    Y = np.eye(3)[rng.integers(0, 3, 9)] if loss != "mse" else rng.normal(size=(9, 3))
    ours, grads = net.loss_and_gradients(X, Y)
    model = torch_twin(net)
    theirs = torch_loss(model, net, X, Y)
    theirs.backward()
    assert ours == pytest.approx(theirs.item(), rel=1e-12)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for (dW, db), lin in zip(grads, linears):
        np.testing.assert_allclose(dW, lin.weight.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, lin.bias.grad.numpy(), rtol=1e-10, atol=1e-14)


OPTIMIZERS = {
    "momentum": ({"momentum": 0.9}, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "nesterov": (
        {"momentum": 0.9, "nesterov": True},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    ),
    "adam": ({"optimizer": "adam", "lr": 0.01}, lambda p: torch.optim.Adam(p, lr=0.01)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_equal_torch_optim(name, rng):
    """Five full-batch steps, with weight decay on the weights only (biases in their own group)."""
    ours_kw, make = OPTIMIZERS[name]
    net = gpubp.MLP([4, 6, 3], "tanh", device="cpu", dtype="float64", seed=5)
    X, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model = torch_twin(net)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
    opt = make([{"params": weights, "weight_decay": 1e-2}, {"params": biases, "weight_decay": 0.0}])
    for _ in range(5):
        opt.zero_grad()
        torch_loss(model, net, X, np.eye(3)[y]).backward()
        opt.step()
    net.fit(X, y, epochs=5, batch_size=12, shuffle=False, weight_decay=1e-2, **{"lr": 0.1, **ours_kw})
    for ours, theirs in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-13)
