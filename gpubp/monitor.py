"""Watching a run: per-layer gradient statistics, and TensorBoard logs of every epoch.

Both are callback objects for ``fit(..., callback=...)`` / ``Trainer.run(epochs, callback=...)``: the
trainer hands itself to ``attach(trainer)`` before the first batch, then calls ``obj(net, row)`` after
each epoch with the history row (``row["epoch"]`` is the step every value is logged at).

:class:`GradientStats` sets the trainer's ``probe``, called inside each step between the δ recursion
and the update, where the gradient already sits on the device. It adds to a small device array, per
layer l: ‖∂L/∂W_l‖, ‖∂L/∂b_l‖ (Frobenius/Euclidean norms of the batch mean's gradient, weight decay not
included) and mean |Δ_l| (the mean absolute entry of Δ_l, the 1/B of the batch mean in it, as
``net.trace``'s ``delta``). Nothing is read to the host inside the epoch: the sums are read once, at
its end, and divided by the epoch's number of batches. Under ``mpiexec`` the norms are those of the
global batch and Δ_l that of rank 0's share of it.

:class:`TensorBoard` writes, per epoch, the train loss, the validation loss and metric, the learning
rate and samples/s through tensorboardX (the ``tensorboard`` extra); with ``gradients=True`` also the
statistics above and a histogram of each W_l (one more host read per epoch: all of θ at once). Under
``mpiexec`` rank 0 alone writes. A resumed run (a trainer restored from a checkpoint) continues the
same log: the first epoch it logs is the checkpoint's next one, and any later steps an interrupted run
had left in the folder are purged (TensorBoard's ``purge_step``).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

INSTALL_HINT = "TensorBoard logs need tensorboardX: pip install 'gpubp[tensorboard]'"


class GradientStats:
    """Per layer and epoch, the mean over the epoch's batches of ‖∂L/∂W_l‖, ‖∂L/∂b_l‖ and mean |Δ_l|.

    After each epoch: ``history["epoch"]`` the epochs, ``history["W_norm"][e][l-1]``,
    ``history["b_norm"][e][l-1]`` and ``history["delta_mean_abs"][e][l-1]`` the values of layer l."""

    KEYS = ("W_norm", "b_norm", "delta_mean_abs")

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {"epoch": [], **{k: [] for k in self.KEYS}}
        self.trainer: Any = None
        self._acc: Any = None
        self._batches = 0

    def attach(self, trainer: Any) -> None:
        """Start accumulating in ``trainer``'s steps (rank 0 only: the other ranks' probes stay unset)."""
        self.trainer = trainer
        if trainer.comm.rank != 0:
            return
        net, store = trainer.net, trainer.store
        self.L = net.L
        self._xp, self._device = net.xp, net.device
        # [∂L/∂W_1, ∂L/∂b_1, …] as flat views of the store's gradient: a norm is then one dot product
        self._grads = [g.reshape(-1) for g in store.pieces(store.grad)]
        with net.device.use():
            self._acc = net.xp.zeros(3 * self.L, np.float64)  # [‖dW_1‖, ‖db_1‖, …, mean|Δ_1|, …] summed
        self._batches = 0
        trainer.probe = self._probe

    def _probe(self, ws: Any) -> None:
        xp, L = self._xp, self.L
        squares = xp.stack([xp.dot(g, g) for g in self._grads])
        self._acc[: 2 * L] += xp.sqrt(squares)
        self._acc[2 * L :] += xp.stack([xp.abs(ws.delta[l]).mean() for l in range(1, L + 1)])
        self._batches += 1

    def end_epoch(self, epoch: int) -> dict[str, list[float]] | None:
        """The epoch's means (one host read), recorded in ``history`` and returned; None before any batch."""
        if self._acc is None or self._batches == 0:
            return None
        values = np.array(self._device.to_host(self._acc), np.float64) / self._batches  # a copy: on the CPU
        self._acc.fill(0)  # to_host hands back the array itself
        self._batches = 0
        L = self.L
        out = {"W_norm": values[0 : 2 * L : 2].tolist(), "b_norm": values[1 : 2 * L : 2].tolist(),
               "delta_mean_abs": values[2 * L :].tolist()}  # fmt: skip
        self.history["epoch"].append(int(epoch))
        for key in self.KEYS:
            self.history[key].append(out[key])
        return out

    def __call__(self, net: Any, row: dict[str, float]) -> bool:
        self.end_epoch(int(row["epoch"]))
        return False


class TensorBoard:
    """A callback that writes each epoch to TensorBoard event files in ``logdir``.

    ``gradients``: False, True (a :class:`GradientStats` of its own) or a GradientStats to share (its
    ``history`` then also feeds ``--plot``). Use as ``net.fit(..., callback=TensorBoard("runs/a"))``;
    ``close()`` (or a ``with`` block) flushes and closes the files (each epoch is flushed anyway)."""

    def __init__(self, logdir: str | os.PathLike[str], gradients: bool | GradientStats = False) -> None:
        require_tensorboardx()
        self.logdir = os.fspath(logdir)
        if not self.logdir:
            raise ValueError("logdir must name a folder, got an empty string")
        if isinstance(gradients, GradientStats):
            self.gradients: GradientStats | None = gradients
        elif isinstance(gradients, bool):
            self.gradients = GradientStats() if gradients else None
        else:
            raise TypeError(f"gradients must be a bool or a GradientStats, got {type(gradients).__name__}")
        self.trainer: Any = None
        self.writer: Any = None
        self._purge: int | None = None
        self._writes = True

    def attach(self, trainer: Any) -> None:
        """Given by the trainer at the start of ``run``: rank 0 writes, a resumed run continues its log."""
        self.trainer = trainer
        self._writes = trainer.comm.rank == 0
        if self.gradients is not None:
            self.gradients.attach(trainer)
        if self._writes and self.writer is None and (trainer.epoch > 0 or trainer.position > 0):
            self._purge = trainer.epoch + 1  # steps from here on, left by the run that stopped, are replaced

    def _writer(self, net: Any) -> Any:
        if self.writer is None:
            from tensorboardX import SummaryWriter

            # tensorboardX names the file by the second and the host: a resumed run starting in the second the
            # last one started would truncate its file; the nanoseconds keep both, and sort them in time
            self.writer = SummaryWriter(logdir=self.logdir, purge_step=self._purge, flush_secs=30,
                                        filename_suffix=f".{time.time_ns()}")  # fmt: skip
            if self.gradients is not None:
                self.writer.add_custom_scalars(_layout(net.L))
        return self.writer

    def __call__(self, net: Any, row: dict[str, float]) -> bool:
        """Write epoch ``row["epoch"]``; never stops training."""
        if not self._writes:
            return False
        step = int(row["epoch"])
        w = self._writer(net)
        w.add_scalar("loss/train", row["train_loss"], step)
        if "val_loss" in row:
            w.add_scalar("loss/validation", row["val_loss"], step)
        for key, tag in (("val_accuracy", "validation/accuracy"), ("val_r2", "validation/r2")):
            if key in row:
                w.add_scalar(tag, row[key], step)
        if self.trainer is not None:
            w.add_scalar("lr", float(self.trainer.optimizer.lr), step)
        if math.isfinite(row.get("samples_per_s", math.nan)):
            w.add_scalar("samples_per_s", row["samples_per_s"], step)
        if self.gradients is not None:
            stats = self.gradients.end_epoch(step)
            if stats is not None:
                for l in range(1, len(stats["W_norm"]) + 1):
                    w.add_scalar(f"gradients/W_{l}", stats["W_norm"][l - 1], step)
                    w.add_scalar(f"gradients/b_{l}", stats["b_norm"][l - 1], step)
                    w.add_scalar(f"delta/layer_{l}", stats["delta_mean_abs"][l - 1], step)
            theta = net.device.to_host(net.params.theta)  # every W_l in one read
            for l, W in enumerate(net.params.views(theta)[0], start=1):
                w.add_histogram(f"weights/W_{l}", W, step)
        w.flush()
        return False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def require_tensorboardx() -> None:
    """Raise a RuntimeError that says how to install tensorboardX, if it is missing."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None


def _layout(L: int) -> dict[str, Any]:
    """TensorBoard's Custom Scalars page: every layer on one chart, so the δ recursion can be compared
    across layers (how Δ shrinks through sigmoid layers and not through relu ones)."""
    return {"δ recursion, per layer": {
        "mean |Δ_l|": ["Multiline", [f"delta/layer_{l}" for l in range(1, L + 1)]],
        "‖∂L/∂W_l‖": ["Multiline", [f"gradients/W_{l}" for l in range(1, L + 1)]],
        "‖∂L/∂b_l‖": ["Multiline", [f"gradients/b_{l}" for l in range(1, L + 1)]],
    }}  # fmt: skip
