"""ParamStore: every W_l and b_l of a network in one contiguous buffer, with per-layer views.

The flat buffer θ is laid out ``[W_1 … W_L | b_1 … b_L]`` (each W_l row-major, shape (n_l, n_{l-1});
each b_l shape (n_l,)), so all weights are one contiguous slice and all biases another. The
gradient buffer has the same layout. Then an optimiser update is one kernel call per slice (the
weights with weight decay, the biases without), an allreduce is one call over the gradient buffer,
and a snapshot of the weights is one copy.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import numpy as np

from .backend import Device, to_numpy


class ParamStore:
    """θ (``theta``) and ∂L/∂θ (``grad``), flat, on ``device``; ``weights[l-1]``/``biases[l-1]`` are
    views of W_l/b_l into θ and ``dW[l-1]``/``db[l-1]`` the same views into the gradient."""

    def __init__(self, device: Device, sizes: list[int], dtype: np.dtype) -> None:
        self.device, self.sizes, self.dtype = device, list(sizes), np.dtype(dtype)
        self.W_shapes = [(n_out, n_in) for n_in, n_out in itertools.pairwise(sizes)]
        self.n_weights = sum(a * b for a, b in self.W_shapes)
        self.size = self.n_weights + sum(sizes[1:])
        self.theta = self.zeros()
        self.grad = self.zeros()
        self.weights, self.biases = self.views(self.theta)
        self.dW, self.db = self.views(self.grad)

    def zeros(self) -> Any:
        """A new flat buffer of θ's size and dtype on the store's device, filled with 0."""
        with self.device.use():
            return self.device.xp.zeros(self.size, self.dtype)

    def views(self, flat: Any) -> tuple[list[Any], list[Any]]:
        """([W_1 … W_L], [b_1 … b_L]) as views into a flat buffer with θ's layout."""
        Ws, bs, at = [], [], 0
        for shape in self.W_shapes:
            Ws.append(flat[at : at + shape[0] * shape[1]].reshape(shape))
            at += shape[0] * shape[1]
        for shape in self.W_shapes:
            bs.append(flat[at : at + shape[0]])
            at += shape[0]
        return Ws, bs

    def pieces(self, flat: Any) -> list[Any]:
        """Views [W_1, b_1, W_2, b_2, …] of a flat buffer (the order checkpoints store them in)."""
        Ws, bs = self.views(flat)
        return [p for W, b in zip(Ws, bs) for p in (W, b)]

    def weight_part(self, flat: Any) -> Any:
        """The contiguous slice of a flat buffer holding all the weights."""
        return flat[: self.n_weights]

    def bias_part(self, flat: Any) -> Any:
        """The contiguous slice of a flat buffer holding all the biases."""
        return flat[self.n_weights :]

    def assign(self, flat: Any, pieces: list[Any], device: bool = True) -> None:
        """Copy arrays [W_1, b_1, …] (checkpoint order) into a flat buffer with θ's layout: one on
        the store's device, or a NumPy one with ``device=False``."""
        targets = self.pieces(flat)
        if len(pieces) != len(targets):
            raise ValueError(f"expected {len(targets)} arrays (W_1, b_1, …), got {len(pieces)}")
        with self.device.use() if device else contextlib.nullcontext():  # the copy on the store's device's stream
            for target, value in zip(targets, pieces):
                value = self.device.asarray(value, dtype=self.dtype) if device else to_numpy(value, self.dtype)
                if value.size != target.size:
                    raise ValueError(f"expected an array of shape {target.shape}, got {value.shape}")
                target[...] = value.reshape(target.shape)

    def set(self, weights: list[Any], biases: list[Any]) -> None:
        """θ ← the given W_l and b_l (copied into the store; the views stay the same objects)."""
        with self.device.use():  # the copy on the store's device's stream, after the upload it reads
            for target, value in zip(self.weights + self.biases, list(weights) + list(biases)):
                target[...] = self.device.asarray(value, dtype=self.dtype)
