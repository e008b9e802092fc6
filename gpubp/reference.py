"""Backprop as the lecture writes it: lists ``Z``, ``A`` and ``delta``, one line per equation, in NumPy.

This module is for reading next to the slides. It keeps every Z_l, computes each derivative from Z (with the
activations' formulas of :data:`gpubp.kernels.ACTIVATIONS`, evaluated on whole arrays), and
writes the output error as the chain rule gives it, ∇_{A_L} L through g'_L, without the cancellations that
make it A_L − Y. :class:`gpubp.MLP` computes the same numbers another way, to allocate nothing per step:
it keeps no Z (each g' is written from A_l), adds the bias inside the activation kernel, reuses
preallocated buffers, and takes Δ_L = (A_L − Y)/B directly for the matched output/loss pairs. The tests
hold the two equal on every activation/output/loss pair the network allows, in float64.

Rows of every matrix are examples; W_l has shape (n_l, n_{l-1}) and b_l shape (n_l,), as in
:mod:`gpubp.network`. L is the mean loss over the B rows of the batch. With A_0 = X and l = 1..L::

    Z_l = A_{l-1} W_lᵀ + b_l,   A_l = g_l(Z_l)                            forward
    Δ_L = ∇_{A_L} L ⊙ g'_L(Z_L)   (for a softmax output: the Jacobian's product, J_softmaxᵀ ∇_{A_L} L)   (1)
    Δ_l = (Δ_{l+1} W_{l+1}) ⊙ g'_l(Z_l)                                   (2)
    ∂L/∂b_l = Σ_rows Δ_l                                                   (3)
    ∂L/∂W_l = Δ_lᵀ A_{l-1}                                                 (4)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .formula import evaluate, var
from .kernels import ACTIVATIONS

__all__ = ["backprop", "forward", "g", "g_prime", "loss_gradient", "loss_value"]


def _activation(name: str) -> Any:
    act = ACTIVATIONS.get(name)
    if act is None:
        raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
    return act


def g(name: str, Z: np.ndarray) -> np.ndarray:
    """The activation ``name`` applied to Z (softmax row by row): the formula of :data:`gpubp.kernels.ACTIVATIONS`
    that the network's kernels are rendered from, evaluated here on whole arrays."""
    act = _activation(name)
    if act.g is None:  # softmax
        E = np.exp(Z - Z.max(axis=1, keepdims=True))  # the row max changes nothing but keeps exp finite
        return E / E.sum(axis=1, keepdims=True)
    return np.array(evaluate(act.g(var("z")), {"z": Z}), dtype=Z.dtype)


def g_prime(name: str, Z: np.ndarray) -> np.ndarray:
    """g'(Z) elementwise: the registry's δ ⊙ g' with δ = 1 and a = g(Z). Softmax has no elementwise derivative
    (each output depends on the whole row): :func:`backprop` multiplies by its Jacobian instead."""
    act = _activation(name)
    if act.g is None:
        raise ValueError(f"{name!r} has no elementwise derivative")
    if act.backward is None:  # g' = 1
        return np.ones_like(Z)
    ones = np.ones_like(Z)
    return np.array(evaluate(act.backward(var("delta"), var("a")), {"delta": ones, "a": g(name, Z)}), dtype=Z.dtype)


def loss_value(loss: str, A_L: np.ndarray, Y: np.ndarray) -> float:
    """L = (1/B) Σ_rows ℓ: ``mse`` ℓ = ½ Σ_j (a_j − y_j)², ``cross_entropy`` ℓ = −Σ_j y_j log a_j,
    ``bce`` ℓ = −Σ_j [y_j log a_j + (1 − y_j) log(1 − a_j)]."""
    B = A_L.shape[0]
    if loss == "mse":
        return float(0.5 * np.sum((A_L - Y) ** 2) / B)
    if loss == "cross_entropy":
        return float(-np.sum(Y * np.log(A_L)) / B)
    if loss == "bce":
        return float(-np.sum(Y * np.log(A_L) + (1 - Y) * np.log(1 - A_L)) / B)
    raise ValueError(f"unknown loss {loss!r}")


def loss_gradient(loss: str, A_L: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """∇_{A_L} L, the derivative of :func:`loss_value` with respect to each output, shape (B, n_L)."""
    B = A_L.shape[0]
    if loss == "mse":
        return (A_L - Y) / B
    if loss == "cross_entropy":
        return -Y / A_L / B
    if loss == "bce":
        return (A_L - Y) / (A_L * (1 - A_L)) / B
    raise ValueError(f"unknown loss {loss!r}")


def forward(weights: list[np.ndarray], biases: list[np.ndarray], X: np.ndarray, activation: str,
            output: str) -> tuple[list[Any], list[np.ndarray]]:  # fmt: skip
    """(Z, A): Z = [None, Z_1, ..., Z_L] and A = [A_0 = X, A_1, ..., A_L]; hidden layers use
    ``activation``, the last one ``output``."""
    L = len(weights)
    Z: list[Any] = [None]
    A = [np.asarray(X, dtype=np.float64)]
    for l in range(1, L + 1):
        Z.append(A[l - 1] @ weights[l - 1].T + biases[l - 1])
        A.append(g(activation if l < L else output, Z[l]))
    return Z, A


def backprop(weights: list[np.ndarray], biases: list[np.ndarray], X: np.ndarray, Y: np.ndarray,
             activation: str = "sigmoid", output: str = "sigmoid", loss: str = "mse") -> dict[str, Any]:  # fmt: skip
    """One forward and backward pass over the batch X (B, n_0) with targets Y (B, n_L), in float64.

    Returns ``loss`` (the mean), ``Z`` and ``A`` as :func:`forward` gives them, ``delta`` =
    [None, Δ_1, ..., Δ_L] (Δ_l has the shape of A_l and the 1/B of the mean in it), and ``dW``, ``db``
    with ∂L/∂W_l, ∂L/∂b_l at index l − 1, the layout of ``MLP.weights``.
    """
    weights = [np.asarray(W, dtype=np.float64) for W in weights]
    biases = [np.asarray(b, dtype=np.float64) for b in biases]
    Y = np.asarray(Y, dtype=np.float64)
    L = len(weights)
    Z, A = forward(weights, biases, X, activation, output)

    delta: list[Any] = [None] * (L + 1)
    grad_A = loss_gradient(loss, A[L], Y)
    if output == "softmax":  # (1) with J_softmax = diag(a) − a aᵀ per row: a ⊙ (∇ − (∇·a))
        delta[L] = A[L] * (grad_A - np.sum(grad_A * A[L], axis=1, keepdims=True))
    else:
        delta[L] = grad_A * g_prime(output, Z[L])  # (1)
    for l in range(L - 1, 0, -1):
        delta[l] = (delta[l + 1] @ weights[l]) * g_prime(activation, Z[l])  # (2); weights[l] is W_{l+1}

    db = [delta[l].sum(axis=0) for l in range(1, L + 1)]  # (3)
    dW = [delta[l].T @ A[l - 1] for l in range(1, L + 1)]  # (4)
    return {"loss": loss_value(loss, A[L], Y), "Z": Z, "A": A, "delta": delta, "dW": dW, "db": db}
