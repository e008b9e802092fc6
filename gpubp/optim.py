"""Optimisers: SGD (plain, momentum, Nesterov) and Adam, with PyTorch's conventions.

- SGD with momentum μ: v ← μv + g; W ← W − ηv (``torch.optim.SGD``, dampening 0).
- Nesterov: v ← μv + g; W ← W − η(g + μv).
- Adam: PyTorch's defaults (β1 0.9, β2 0.999, ε 1e-8) and bias correction.
- ``weight_decay`` λ adds λW to the gradient of the *weights* only; biases are never decayed.
  (PyTorch decays every parameter it is given; pass the biases separately there to compare.)

Each update is one fused kernel call per parameter array, in place. Given a ParamStore
(:func:`make_optimizer`), the arrays are two flat slices, all weights (decayed) and all biases (not),
so a step is two kernel calls whatever the depth (with the NumPy twins on the CPU: the weights' decay, then
one NumPy update over all of θ, the same numbers with half the calls). The state (velocity, m, v) is one flat buffer per
slot, with the same layout as the parameters, on the network's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels as K
from .backend import Device
from .params import ParamStore

OPTIMIZERS = ("sgd", "adam")


class Optimizer:
    """Updates ``params`` in place from ``grads`` (same order, same shapes) on ``device``.

    ``decay_mask[i]`` says whether params[i] gets weight decay; by default matrices (weights) do
    and vectors (biases) do not.
    """

    #: names of the state buffers, saved in checkpoints
    slots: tuple[str, ...] = ()

    def __init__(self, device: Device, params: list[Any], grads: list[Any], lr: float,
                 weight_decay: float, decay_mask: list[bool] | None = None) -> None:  # fmt: skip
        if decay_mask is None:
            decay_mask = [p.ndim >= 2 for p in params]
        if not len(params) == len(grads) == len(decay_mask):
            raise ValueError(f"params, grads and decay_mask differ in length: "
                             f"{len(params)}, {len(grads)}, {len(decay_mask)}")  # fmt: skip
        self.device = device
        self.params = params
        self.grads = grads
        self.dtype = params[0].dtype.type
        self.lr = self.dtype(lr)
        self.t = 0  # steps taken
        self._decay_mask = list(decay_mask)
        self.set_weight_decay(weight_decay)
        # one flat buffer per slot; state[slot][i] is the view shaped like params[i]
        self.flat: dict[str, Any] = {}
        self.state: dict[str, list[Any]] = {}
        with device.use():
            for slot in self.slots:
                flat = self.flat[slot] = device.xp.zeros(sum(p.size for p in params), params[0].dtype)
                views, at = [], 0
                for p in params:
                    views.append(flat[at : at + p.size].reshape(p.shape))
                    at += p.size
                self.state[slot] = views

    def set_lr(self, lr: float) -> None:
        """A new η from the next step on (scikit-learn's invscaling and adaptive schedules)."""
        self.lr = self.dtype(lr)

    def set_weight_decay(self, weight_decay: float) -> None:
        """λ for the parameters the decay mask selects (scikit-learn's alpha changes per batch)."""
        zero, wd = self.dtype(0), self.dtype(weight_decay)
        self._wd = [wd if d else zero for d in self._decay_mask]

    def step(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the history: step count and state buffers back to zero."""
        self.t = 0
        for flat in self.flat.values():
            flat.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """Step count and each slot's flat state buffer as a NumPy array."""
        return {"t": self.t, **{slot: self.device.to_host(flat) for slot, flat in self.flat.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of state_dict (flat arrays of the same size)."""
        self.t = int(state["t"])
        for slot, flat in self.flat.items():
            saved = np.asarray(state[slot]).reshape(-1)
            if saved.shape != flat.shape:
                raise ValueError(f"optimiser state {slot!r} has {saved.size} values, expected {flat.size}")
            flat[...] = self.device.asarray(saved, dtype=flat.dtype)


class SGD(Optimizer):
    def __init__(self, device: Device, params: list[Any], grads: list[Any], lr: float,
                 momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 decay_mask: list[bool] | None = None) -> None:  # fmt: skip
        self.slots = ("velocity",) if momentum else ()
        super().__init__(device, params, grads, lr, weight_decay, decay_mask)
        self.mu = self.dtype(momentum)
        self.nesterov = nesterov
        self.whole: tuple[Any, Any] | None = None  # (θ, ∂L/∂θ) when params are its [weights, biases] slices
        self._zero = self.dtype(0)
        kernel = K.sgd_update if not momentum else K.nesterov_update if nesterov else K.momentum_update
        self._update = device.kernel(kernel)
        # one call per slice (CUDA, a compiled loop): two calls a step; a NumPy twin is cheaper over all of θ
        self._fused = self._update is not kernel.numpy

    def step(self) -> None:
        self.t += 1
        lr, update = self.lr, self._update
        if self.whole is not None and not self._fused:
            # NumPy: the weights' decay, then one update over all of θ (same numbers as per slice:
            # the update is elementwise); per slice the biases cost as many NumPy calls as the weights
            theta, grad = self.whole
            _decay_weights(self)
            if not self.slots:
                update(lr, self._zero, grad, theta)
            else:
                update(lr, self._zero, self.mu, grad, theta, self.flat["velocity"])
            return
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
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 eps_before_correction: bool = False) -> None:  # fmt: skip
        super().__init__(device, params, grads, lr, weight_decay, decay_mask)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = self.dtype(eps)
        # False: ε after the bias correction of √v (PyTorch); True: before it, m̂ ⋅ √(1−β2ᵗ) / (√v + ε) (scikit-learn)
        self.eps_before_correction = eps_before_correction
        self._update = device.kernel(K.adam_update)
        self._fused = self._update is not K.adam_update.numpy  # as SGD's
        self.whole: tuple[Any, Any] | None = None  # (θ, ∂L/∂θ) when params are its [weights, biases] slices

    def step(self) -> None:
        self.t += 1
        dt = self.dtype
        # bias corrections in float64 on the host, then one scalar of the array dtype each
        step_size = dt(float(self.lr) / (1.0 - self.beta1**self.t))
        sqrt_bc2 = dt(math.sqrt(1.0 - self.beta2**self.t))
        b1, b2 = dt(self.beta1), dt(self.beta2)
        eps = dt(float(self.eps) / float(sqrt_bc2)) if self.eps_before_correction else self.eps
        if self.whole is not None and not self._fused:
            # NumPy: the weights' decay, then one update over all of θ; per slice, the biases' few values
            # cost as many NumPy calls as the weights (~5 µs a step on a small network)
            theta, grad = self.whole
            _decay_weights(self)
            self._update(step_size, dt(0), b1, b2, eps, sqrt_bc2, grad, theta, self.flat["m"], self.flat["v"])
            return
        for g, w, m, v, wd in zip(self.grads, self.params, self.state["m"], self.state["v"], self._wd):
            self._update(step_size, wd, b1, b2, eps, sqrt_bc2, g, w, m, v)


def _decay_weights(opt: Optimizer) -> None:
    """∂L/∂W += λW on the weights' slice (NumPy), as the kernels' twins do before their update."""
    wd = opt._wd[0]
    if wd:
        s = K.scratch_like(opt.params[0])
        np.multiply(opt.params[0], wd, out=s)
        opt.grads[0] += s


def make_optimizer(store: ParamStore, settings: Any) -> Optimizer:
    """The optimiser ``settings`` (a :class:`~gpubp.settings.TrainSettings`, checked there) name, over a
    ParamStore: two flat slices, all weights (with weight decay) and all biases (without)."""
    theta, grad = store.theta, store.grad
    params = [store.weight_part(theta), store.bias_part(theta)]
    grads = [store.weight_part(grad), store.bias_part(grad)]
    decay = [True, False]
    s = settings
    if s.optimizer == "sgd":
        opt: Optimizer = SGD(store.device, params, grads, s.lr, s.momentum, s.nesterov, s.weight_decay, decay)
    elif s.optimizer == "adam":
        opt = Adam(store.device, params, grads, s.lr, s.weight_decay, decay, betas=s.betas, eps=s.eps,
                   eps_before_correction=s.eps_before_correction)  # fmt: skip
    else:
        raise ValueError(f"unknown optimizer {s.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    opt.whole = (theta, grad)
    return opt
