"""Weight initialisation schemes. Biases always start at zero.

Weights are drawn on the host in float64 from a seeded ``numpy.random.Generator`` and then cast, so
the same seed gives the same starting weights on every device.
"""

from __future__ import annotations

import numpy as np

from .kernels import ACTIVATIONS

INITS = ("xavier", "he", "normal")


def default_init(activation: str) -> str:
    """The hidden activation's own default (:data:`gpubp.kernels.ACTIVATIONS`): He for relu, Xavier (Glorot) for
    sigmoid, tanh and identity."""
    act = ACTIVATIONS.get(activation)
    return "xavier" if act is None else act.init


def init_weight(rng: np.random.Generator, scheme: str, n_out: int, n_in: int) -> np.ndarray:
    """One W_l of shape (n_out, n_in), float64.

    - ``xavier``: U(−r, r), r = √(6 / (n_in + n_out))  (Glorot & Bengio 2010)
    - ``he``: N(0, 2 / n_in)  (He et al. 2015)
    - ``normal``: N(0, 1 / n_in)
    """
    if scheme == "xavier":
        r = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-r, r, size=(n_out, n_in))
    if scheme == "he":
        return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
    if scheme == "normal":
        return rng.normal(0.0, np.sqrt(1.0 / n_in), size=(n_out, n_in))
    raise ValueError(f"unknown init {scheme!r}: expected one of {', '.join(INITS)}")
