"""Optimisers: SGD (plain, momentum, Nesterov) and Adam, with PyTorch's conventions.

- SGD with momentum μ: v ← μv + g; W ← W − ηv (``torch.optim.SGD``, dampening 0).
- Nesterov: v ← μv + g; W ← W − η(g + μv).
- Adam: PyTorch's defaults (β1 0.9, β2 0.999, ε 1e-8) and bias correction.
- ``weight_decay`` λ adds λW to the gradient of the *weights* only; biases are never decayed.
  (PyTorch decays every parameter it is given; pass the biases separately there to compare.)

An optimiser works on a ParamStore: two flat slices, all weights (decayed) and all biases (not), so a
step is two fused kernel calls whatever the depth, in place (with the NumPy twins on the CPU: the
weights' decay, then one NumPy update over all of θ, the same numbers with half the calls). The state
(velocity, m, v) is one flat buffer per slot, with θ's layout, on the network's device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels as K
from .params import ParamStore

OPTIMIZERS = ("sgd", "adam")


class Optimizer:
    """Updates θ of ``store`` (a :class:`~gpubp.params.ParamStore`) in place from its gradient: all
    the weights with weight decay λ, all the biases without.

    With kernels that run one call per slice (CUDA, compiled loops) a step is two calls, one per
    slice. With the NumPy twins (``whole``) it is the weights' decay, then one update over all of θ:
    the same numbers (the update is elementwise) with half the calls.
    """

    #: names of the state buffers, saved in checkpoints
    slots: tuple[str, ...] = ()

    def __init__(self, store: ParamStore, lr: float, weight_decay: float, kernel: K.Kernel) -> None:
        self.device = store.device
        self.store = store
        self.dtype = store.dtype.type
        self.lr = self.dtype(lr)
        self.t = 0  # steps taken
        self._zero = self.dtype(0)
        self.set_weight_decay(weight_decay)
        self.flat: dict[str, Any] = {slot: store.zeros() for slot in self.slots}  # one buffer per slot, θ's layout
        self._update = self.device.kernel(kernel, self.dtype)
        self.whole = self._update is kernel.numpy  # a NumPy twin: one update over all of θ
        # (θ slice, gradient slice, state slices, decayed?): all weights, then all biases
        self._slices = [(part(store.theta), part(store.grad), [part(f) for f in self.flat.values()], decayed)
                        for part, decayed in ((store.weight_part, True), (store.bias_part, False))]  # fmt: skip

    def set_lr(self, lr: float) -> None:
        """A new η from the next step on (scikit-learn's invscaling and adaptive schedules)."""
        self.lr = self.dtype(lr)

    def set_weight_decay(self, weight_decay: float) -> None:
        """λ for the weights (scikit-learn's alpha changes per batch); the biases are never decayed."""
        self.wd = self.dtype(weight_decay)

    def step(self) -> None:
        """One update from the gradient in ``store.grad``, which it leaves meaningless (scratch)."""
        self.t += 1
        scalars = self._scalars()
        if self.whole:
            W, gW, _, _ = self._slices[0]
            K.add_decay(gW, W, self.wd)
            self._update(*scalars(self._zero), self.store.grad, self.store.theta, *self.flat.values())
            return
        for w, g, state, decayed in self._slices:
            self._update(*scalars(self.wd if decayed else self._zero), g, w, *state)

    def _scalars(self) -> Any:
        """This step's scalar arguments of the update kernel, as a function of λ."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the history: step count and state buffers back to zero."""
        self.t = 0
        with self.device.use():
            for flat in self.flat.values():
                flat.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """Step count and each slot's flat state buffer as a NumPy array."""
        return {"t": self.t, **{slot: self.device.to_host(flat) for slot, flat in self.flat.items()}}

    def numbers(self) -> dict[str, float]:
        """The state's scalars by name (sent from rank 0 to the others with the flat buffers)."""
        return {"t": self.t}

    def set_numbers(self, numbers: dict[str, float]) -> None:
        """The inverse of :meth:`numbers`."""
        self.t = int(numbers["t"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of state_dict (flat arrays of the same size)."""
        self.t = int(state["t"])
        with self.device.use():  # the copy on the optimiser's device's stream, after the upload it reads
            for slot, flat in self.flat.items():
                saved = np.asarray(state[slot]).reshape(-1)
                if saved.shape != flat.shape:
                    raise ValueError(f"optimiser state {slot!r} has {saved.size} values, expected {flat.size}")
                flat[...] = self.device.asarray(saved, dtype=flat.dtype)


class SGD(Optimizer):
    def __init__(self, store: ParamStore, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:  # fmt: skip
        self.slots = ("velocity",) if momentum else ()
        kernel = K.sgd_update if not momentum else K.nesterov_update if nesterov else K.momentum_update
        super().__init__(store, lr, weight_decay, kernel)
        self.mu = self.dtype(momentum)

    def _scalars(self) -> Any:
        lr, mu = self.lr, self.mu
        if not self.slots:
            return lambda wd: (lr, wd)
        return lambda wd: (lr, wd, mu)


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, store: ParamStore, lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 eps_before_correction: bool = False) -> None:  # fmt: skip
        super().__init__(store, lr, weight_decay, K.adam_update)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = self.dtype(eps)
        # False: ε after the bias correction of √v (PyTorch); True: before it, m̂ ⋅ √(1−β2ᵗ) / (√v + ε) (scikit-learn)
        self.eps_before_correction = eps_before_correction

    def _scalars(self) -> Any:
        dt = self.dtype
        # bias corrections in float64 on the host, then one scalar of the array dtype each
        step_size = dt(float(self.lr) / (1.0 - self.beta1**self.t))
        sqrt_bc2 = dt(math.sqrt(1.0 - self.beta2**self.t))
        b1, b2 = dt(self.beta1), dt(self.beta2)
        eps = dt(float(self.eps) / float(sqrt_bc2)) if self.eps_before_correction else self.eps
        return lambda wd: (step_size, wd, b1, b2, eps, sqrt_bc2)


def make_optimizer(store: ParamStore, settings: Any) -> Optimizer:
    """The optimiser ``settings`` (a :class:`~gpubp.settings.TrainSettings`, checked there) name, over a
    ParamStore: two flat slices, all weights (with weight decay) and all biases (without)."""
    s = settings
    if s.optimizer == "sgd":
        return SGD(store, s.lr, s.momentum, s.nesterov, s.weight_decay)
    if s.optimizer == "adam":
        return Adam(
            store, s.lr, s.weight_decay, betas=s.betas, eps=s.eps, eps_before_correction=s.eps_before_correction
        )
    raise ValueError(f"unknown optimizer {s.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
