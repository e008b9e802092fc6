"""The training rows as minibatches: where they live, their sample weights and their fingerprint.

Data is copied to the network's device once when it fits there; otherwise (a memory-mapped file or
another row source on the CPU, data larger than the GPU's free memory, or ``stream=True``) it stays
on the host and each batch's rows are gathered and copied into the workspace (see gpubp.rows).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ._io import available_memory
from .backend import is_cupy_array, to_numpy
from .data import sample_rows
from .rows import Feeder, in_memory, is_row_source, to_device
from .settings import class_row_weights
from .validation import check_bool, check_sample_weight, check_X, check_Y, label_width

DEVICE_SHARE = 0.8  # on a GPU, data is copied whole when it needs at most this share of the free memory


class BatchSource:
    """(X, Y) of ``net`` (anything with ``device``, ``dtype``, ``sizes`` and ``loss``) in batches of
    ``batch_size`` rows (fewer when there are fewer rows), in the row order an epoch gives.

    ``load(rows, ws)`` puts the rows ``rows`` (indices, as :meth:`device_order` returns them) into
    the workspace's A[0] and Y. ``sample_weight`` (n,) ≥ 0 makes each batch's loss and gradient a
    weighted mean, Σ w_i ℓ_i / Σ w over the batch. ``class_weight`` (a TrainSettings value) weighs
    each row by its class as well: the row weights are the product of the two, as scikit-learn's.
    """

    def __init__(self, net: Any, X: Any, Y: Any, batch_size: int, sample_weight: Any = None,
                 stream: bool | None = None, class_weight: Any = None) -> None:  # fmt: skip
        self.net = net
        dev = net.device
        with dev.use():
            X = check_X(dev, X, net.sizes[0], net.dtype, host=True)
            Y = check_Y(dev, Y, X.shape[0], net.sizes[-1], net.loss, net.dtype, host=True)
            self.stream = self._streams(X, Y, stream, batch_size)
            onehot = label_width(Y, net.loss, net.sizes[-1])
            if self.stream:  # rows gathered per batch on the host, copied into the workspace
                self.X, self.Y = X, Y
                feed_X = Feeder(dev, X, net.dtype, tag="X")
                feed_Y = Feeder(dev, Y, net.dtype, onehot, tag="Y")

                def load(rows: Any, ws: Any) -> None:  # host gather → staging buffer → the workspace
                    feed_X(rows, ws.A[0])
                    feed_Y(rows, ws.Y)
            else:  # copied once (nothing is copied for an in-memory array already on the device)
                self.X, self.Y = to_device(dev, X, net.dtype), to_device(dev, Y, net.dtype, onehot)
                take, Xd, Yd = dev.take_rows, self.X, self.Y

                def load(rows: Any, ws: Any) -> None:
                    take(Xd, rows, ws.A[0])
                    take(Yd, rows, ws.Y)

        self.load = load
        self.n = self.X.shape[0]
        self._host_data = (X, Y)  # what the fingerprint is taken of (no copy)
        self._rows_hash: str | None = None  # that fingerprint, once taken (a save every epoch reuses it)
        self.batch = min(batch_size, self.n)
        self.sample_weight = None if sample_weight is None else check_sample_weight(sample_weight, self.n)
        by_class = class_weights_of(net, Y, class_weight, self.sample_weight)
        if by_class is not None:
            self.sample_weight = by_class if self.sample_weight is None else self.sample_weight * by_class

    @property
    def n_batches(self) -> int:
        return int(-(-self.n // self.batch))

    def device_order(self, order: np.ndarray) -> Any:
        """An epoch's row order as ``load`` takes it: on the device unless the rows stream from the host."""
        return order if self.stream else self.net.device.asarray(order)

    def totals(self, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The batches of an epoch in row order ``order``: (rows, weight sums), each (n_batches,)
        float64; without sample weights the sums are the rows."""
        starts = np.arange(0, self.n, self.batch)
        sizes = (np.minimum(starts + self.batch, self.n) - starts).astype(np.float64)
        if self.sample_weight is None:
            return sizes, sizes
        return sizes, np.add.reduceat(self.sample_weight[order], starts)

    def counted_rows(self, order: np.ndarray | None) -> int:
        """The rows an epoch's mean loss is over: all n, less those of batches whose weights are all 0
        (such a batch adds no loss, no gradient and no decay)."""
        if self.sample_weight is None:
            return int(self.n)
        sizes, sums = self.totals(order)
        return int(sizes[sums > 0].sum())

    def row_weights(self, order: np.ndarray | None) -> tuple[Any, np.ndarray]:
        """For the row order ``order``: row weights B·w_i/Σw per batch (device, (n, 1)) or None, and
        each batch's weight sum (its size without sample weights), on the host."""
        sizes, sums = self.totals(order)
        if self.sample_weight is None:
            return None, sums
        w = self.sample_weight[order]
        # an all-zero batch adds nothing
        scale = np.repeat(sizes / np.where(sums > 0, sums, 1.0), sizes.astype(np.int64))
        return self.net.device.asarray((w * scale).reshape(-1, 1), dtype=self.net.dtype), sums

    def _streams(self, X: Any, Y: Any, stream: bool | None, batch_size: int) -> bool:
        """Whether batches stream from the host: asked for, or a row source on the CPU (unless its rows
        are already in memory, a decompressed file, and a copy in the network's dtype fits in half the
        memory available), or data that would not fit in DEVICE_SHARE of the GPU's free memory (less
        the workspace)."""
        if is_cupy_array(X) or is_cupy_array(Y):
            if stream:
                raise ValueError("stream=True needs host data; X or Y is already on the GPU")
            return False
        if stream is not None:
            return check_bool("stream", stream)
        free = self.net.device.memory_free()
        if free is None:  # the CPU: never load a file or a foreign array-like whole into memory
            if is_row_source(X) and in_memory(X) and not is_row_source(Y):
                have = available_memory()
                return have is None or X.shape[0] * X.shape[1] * self.net.dtype.itemsize > have // 2
            return is_row_source(X) or is_row_source(Y)
        sizes, item = self.net.sizes, self.net.dtype.itemsize
        need = X.shape[0] * (sizes[0] + sizes[-1]) * item
        workspace = 2 * min(batch_size, X.shape[0]) * sum(sizes) * item
        return bool(need > DEVICE_SHARE * free - workspace)

    def fingerprint(self) -> str:
        """A hash of the rows as they are trained on: a sample of X in the network's dtype and of Y
        as targets (class labels one-hot), so the same data given as float64 or float32, as labels or
        as one-hot rows, on the host or the GPU, matches; other rows (almost always) do not.

        Not :func:`gpubp.data.fingerprint`, which identifies a data *file* as read (raw values and
        labels, before the split): a checkpoint of ``gpubp train`` holds both, the file's to find the
        data again and this one to refuse resuming on other rows."""
        if self._rows_hash is None:
            X, Y = self._host_data
            net = self.net
            idx = sample_rows(self.n)
            xs = to_numpy(X[idx], net.dtype)
            ys = to_numpy(Y[idx])
            width = label_width(ys, net.loss, net.sizes[-1])
            if width is not None:
                ys = np.eye(width)[ys.astype(np.int64)]
            ys = ys.astype(net.dtype).reshape(len(idx), -1)
            h = hashlib.sha256(f"{self.n}x{xs.shape[1:]}".encode())
            h.update(np.ascontiguousarray(xs).tobytes())
            h.update(np.ascontiguousarray(ys).tobytes())
            self._rows_hash = f"{self.n} rows:{h.hexdigest()[:16]}"
        return self._rows_hash


def class_weights_of(net: Any, Y: Any, class_weight: Any, sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """Each row's class weight (n,) for ``net``'s checked targets ``Y`` (None without class weights);
    "balanced" counts the rows by their ``sample_weight``."""
    if class_weight is None:
        return None
    return class_row_weights(class_weight, *_class_indices(Y, net.loss, net.sizes[-1]), sample_weight)


def _class_indices(Y: Any, loss: str, n_outputs: int) -> tuple[np.ndarray, int]:
    """(each row's class index (n,), the number of classes) of checked targets ``Y``: labels, 0/1
    for one output, or one-hot rows; other targets have no class to weigh by (a ValueError)."""
    Y = to_numpy(Y[:] if is_row_source(Y) else Y)
    if Y.ndim == 1 and loss == "cross_entropy":
        return Y.astype(np.int64), n_outputs
    Y = Y.reshape(len(Y), -1)
    if Y.shape[1] == 1 and np.isin(Y, (0, 1)).all():
        return Y[:, 0].astype(np.int64), 2
    if Y.shape[1] > 1 and np.isin(Y, (0, 1)).all() and (Y.sum(axis=1) == 1).all():
        return Y.argmax(axis=1), Y.shape[1]
    raise ValueError("class_weight needs one class per row (class labels, 0/1 targets or one-hot rows); these "
                     "targets are numbers or several labels per row")  # fmt: skip
