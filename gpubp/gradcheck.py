"""Backprop against central differences, in float64: the proof that the δ recursion is right."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import CPU, is_cupy_array, to_numpy
from .network import MLP, Workspace
from .rows import materialise


def _float64_copy(net: Any) -> Any:
    """``net`` in float64 on the CPU. A CPU network's copy keeps its device and so its kernel set (the NumPy
    twins or the compiled loops): the check must run the kernels the network trains with. A GPU network's
    copy runs the CPU's default set (the CUDA bodies are compared with the twins in the GPU tests)."""
    device = CPU if net.device.is_gpu else net.device
    twin = MLP(net.sizes, net.activation, net.output, net.loss, net.init, device=device, dtype="float64")
    twin.set_parameters([to_numpy(W) for W in net.weights], [to_numpy(b) for b in net.biases])
    return twin


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / (‖a‖ + ‖b‖), 0 when both are 0: scale-free and safe for tiny gradients."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def central_differences(param: np.ndarray, loss: Any, eps: float) -> np.ndarray:
    """∂loss/∂param entry by entry, (loss(θ + ε) − loss(θ − ε)) / 2ε; ``param`` (a NumPy view into
    the parameters ``loss()`` reads) is changed in place and restored."""
    numeric = np.empty_like(param)
    for idx in np.ndindex(param.shape):
        keep = param[idx]
        param[idx] = keep + eps
        up = loss()
        param[idx] = keep - eps
        down = loss()
        param[idx] = keep
        numeric[idx] = (up - down) / (2 * eps)
    return numeric


def gradcheck_layers(net: Any, X: Any, Y: Any, eps: float = 1e-6) -> list[dict[str, Any]]:
    """Per layer: relative error of ∂L/∂W_l and ∂L/∂b_l, backprop vs central differences.

    Computed on a float64 CPU copy of ``net`` that runs the same CPU kernels as ``net`` (the network itself
    is not changed).
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    twin = _float64_copy(net)
    X = twin.checked_X(materialise(X.get() if is_cupy_array(X) else X))  # the twin is on the CPU
    Y = twin.checked_Y(materialise(Y.get() if is_cupy_array(Y) else Y), X.shape[0])
    _, grads = twin.loss_and_gradients(X, Y)
    ws = Workspace(twin.device, twin.sizes, X.shape[0], twin.dtype)
    ws.A[0][...] = X

    def loss() -> float:
        twin.forward_into(ws.A)
        return float(twin.loss_sum(ws.A[twin.L], Y, ws.terms)) / X.shape[0]

    rows = []
    for l, (dW, db) in enumerate(grads, start=1):
        row: dict[str, Any] = {"layer": l}
        for name, param, grad in (("W", twin.weights[l - 1], dW), ("b", twin.biases[l - 1], db)):
            row[name] = _rel_error(grad, central_differences(param, loss, eps))
            row[f"{name}_shape"] = param.shape
        rows.append(row)
    return rows


def gradcheck(net: Any, X: Any, Y: Any, eps: float = 1e-6) -> float:
    """The largest relative error between backprop and central differences, over all W_l, b_l.

    Relative error of one array: ‖g_backprop − g_numeric‖ / (‖g_backprop‖ + ‖g_numeric‖),
    computed in float64. Below ~1e-7 means the gradients agree. The central difference has a
    truncation error ~h² and a rounding error ~1e-16/h: for deep sigmoid networks, whose first
    layers have tiny gradients, ``eps=1e-5`` (near the float64 optimum ε^(1/3)) is the sharper test.
    """
    return max(max(r["W"], r["b"]) for r in gradcheck_layers(net, X, Y, eps))
