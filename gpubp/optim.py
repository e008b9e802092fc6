"""Optimisers: SGD (plain, momentum, Nesterov) and Adam, with PyTorch's conventions.

- SGD with momentum μ: v ← μv + g; W ← W − ηv (``torch.optim.SGD``, dampening 0).
- Nesterov: v ← μv + g; W ← W − η(g + μv).
- Adam: PyTorch's defaults (β1 0.9, β2 0.999, ε 1e-8) and bias correction.
- ``weight_decay`` λ adds λW to the gradient of the *weights* only; biases are never decayed.
  (PyTorch decays every parameter it is given; pass the biases separately there to compare.)

Each update is one fused kernel per parameter, in place; state lives on the network's device.
"""

from __future__ import annotations

import math
from typing import Any

from . import kernels as K
from .backend import Device

OPTIMIZERS = ("sgd", "adam")


class Optimizer:
    """Updates ``params`` in place from ``grads`` (same order, same shapes) on ``device``."""

    #: names of the per-parameter state buffers, saved in checkpoints
    slots: tuple[str, ...] = ()

    def __init__(self, device: Device, params: list[Any], grads: list[Any], lr: float,
                 weight_decay: float, decay_mask: list[bool]) -> None:  # fmt: skip
        self.device = device
        self.params = params
        self.grads = grads
        self.dtype = params[0].dtype.type
        self.lr = self.dtype(lr)
        self.t = 0  # steps taken
        self._decay_mask = list(decay_mask)
        self.set_weight_decay(weight_decay)
        self.state: dict[str, list[Any]] = {
            slot: [device.xp.zeros_like(p) for p in params] for slot in self.slots
        }

    def set_weight_decay(self, weight_decay: float) -> None:
        """λ for the parameters the decay mask selects (scikit-learn's alpha changes per batch)."""
        zero, wd = self.dtype(0), self.dtype(weight_decay)
        self._wd = [wd if d else zero for d in self._decay_mask]

    def step(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the history: step count and state buffers back to zero."""
        self.t = 0
        for bufs in self.state.values():
            for buf in bufs:
                buf.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """Step count and state buffers as NumPy arrays (for checkpoints)."""
        out: dict[str, Any] = {"t": self.t}
        for slot, bufs in self.state.items():
            out[slot] = [self.device.to_host(b) for b in bufs]
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        for slot, bufs in self.state.items():
            for buf, saved in zip(bufs, state[slot], strict=True):
                buf[...] = self.device.asarray(saved, dtype=buf.dtype)


class SGD(Optimizer):
    def __init__(self, device: Device, params: list[Any], grads: list[Any], lr: float,
                 momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 decay_mask: list[bool] | None = None) -> None:  # fmt: skip
        self.slots = ("velocity",) if momentum else ()
        super().__init__(device, params, grads, lr, weight_decay, decay_mask or [True] * len(params))
        self.mu = self.dtype(momentum)
        self.nesterov = nesterov
        if not momentum:
            self._update = device.kernel(K.sgd_update)
        else:
            self._update = device.kernel(K.nesterov_update if nesterov else K.momentum_update)

    def step(self) -> None:
        self.t += 1
        lr, update = self.lr, self._update
        if not self.slots:
            for g, w, wd in zip(self.grads, self.params, self._wd):
                update(lr, wd, g, w)
            return
        for g, w, v, wd in zip(self.grads, self.params, self.state["velocity"], self._wd):
            update(lr, wd, self.mu, g, w, v)


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, device: Device, params: list[Any], grads: list[Any], lr: float,
                 weight_decay: float = 0.0, decay_mask: list[bool] | None = None,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:  # fmt: skip
        super().__init__(device, params, grads, lr, weight_decay, decay_mask or [True] * len(params))
        self.beta1, self.beta2 = betas
        self.eps = self.dtype(eps)
        # False: ε after the bias correction of √v (PyTorch); True: before it, m̂ ⋅ √(1−β2ᵗ) / (√v + ε) (scikit-learn)
        self.eps_before_correction = False
        self._update = device.kernel(K.adam_update)

    def step(self) -> None:
        self.t += 1
        dt = self.dtype
        # bias corrections in float64 on the host, then one scalar of the array dtype each
        step_size = dt(float(self.lr) / (1.0 - self.beta1**self.t))
        sqrt_bc2 = dt(math.sqrt(1.0 - self.beta2**self.t))
        b1, b2 = dt(self.beta1), dt(self.beta2)
        eps = dt(float(self.eps) / float(sqrt_bc2)) if self.eps_before_correction else self.eps
        for g, w, m, v, wd in zip(self.grads, self.params, self.state["m"], self.state["v"], self._wd):
            self._update(step_size, wd, b1, b2, eps, sqrt_bc2, g, w, m, v)


def make_optimizer(name: str, device: Device, params: list[Any], grads: list[Any], *, lr: float,
                   momentum: float, nesterov: bool, weight_decay: float,
                   decay_mask: list[bool]) -> Optimizer:  # fmt: skip
    """Build the optimiser called ``name`` (``sgd`` or ``adam``); settings are checked upstream."""
    if name == "sgd":
        return SGD(device, params, grads, lr, momentum, nesterov, weight_decay, decay_mask)
    if name == "adam":
        if momentum or nesterov:
            raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam has its own moments")
        return Adam(device, params, grads, lr, weight_decay, decay_mask)
    raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
