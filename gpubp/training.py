"""The training loop: minibatches, shuffling, stopping rules, history, and resumable state.

Data is copied to the network's device once when it fits there; otherwise (a memory-mapped file or
another row source on the CPU, data larger than the GPU's free memory, or ``stream=True``) it stays
on the host and each batch's rows are gathered and copied into the workspace (see gpubp.rows).
Inside an epoch nothing is read back to the host:
the loss is accumulated on the device and read once at the end of the epoch (plus one read for
the validation metrics), so the GPU never waits on Python between batches.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .backend import blas_threads, is_cupy_array, threads_for
from .optim import OPTIMIZERS, make_optimizer
from .rows import Feeder, is_row_source, to_device
from .validation import check_bool, check_choice, check_float, check_int, check_X, check_Y, label_width

DEVICE_SHARE = 0.8  # on a GPU, data is copied whole when it needs at most this share of the free memory


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last finite weights were kept."""


HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_r2", "seconds", "samples_per_s")


class Trainer:
    """Trains ``net`` on (X, Y); ``run(epochs)`` trains until ``epochs`` epochs are complete.

    The state (epoch, position within the epoch, row order, optimiser buffers, RNG) can be saved
    and restored, so a run that is stopped and resumed matches one that never stopped.
    """

    def __init__(self, net: Any, X: Any, Y: Any, *, batch_size: int = 32, lr: float = 0.1,
                 optimizer: str = "sgd", momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, shuffle: bool = True,
                 validation_data: tuple | None = None, patience: int | None = None,
                 stream: bool | None = None) -> None:  # fmt: skip
        """``stream``: None decides (see the module docstring); True keeps host data on the host and
        copies each batch to the device; False copies the training data to the device whole."""
        self.net = net
        dev = net.device
        self.settings = {
            "batch_size": check_int("batch_size", batch_size),
            "lr": check_float("lr", lr, inclusive=False),
            "optimizer": check_choice("optimizer", optimizer, OPTIMIZERS),
            "momentum": check_float("momentum", momentum, maximum=1.0),
            "nesterov": check_bool("nesterov", nesterov),
            "weight_decay": check_float("weight_decay", weight_decay),
            "shuffle": check_bool("shuffle", shuffle),
            "patience": None if patience is None else check_int("patience", patience),
        }
        if self.settings["nesterov"] and self.settings["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0 (as in torch.optim.SGD)")
        if patience is not None and validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data=(X_val, Y_val)")
        with dev.use():
            X = check_X(dev, X, net.sizes[0], net.dtype, host=True)
            Y = check_Y(dev, Y, X.shape[0], net.sizes[-1], net.loss, net.dtype, host=True)
            self.stream = self._streams(X, Y, stream)
            onehot = label_width(Y, net.loss, net.sizes[-1])
            if self.stream:  # rows gathered per batch on the host, copied into the workspace
                self.X, self.Y = X, Y
                self._feed_X = Feeder(dev, X, net.dtype, tag="X")
                self._feed_Y = Feeder(dev, Y, net.dtype, onehot, tag="Y")
            else:  # copied once (nothing is copied for an in-memory array already on the device)
                self.X, self.Y = to_device(dev, X, net.dtype), to_device(dev, Y, net.dtype, onehot)
            self.validation = None
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise TypeError("validation_data must be a pair (X_val, Y_val)")
                Xv = check_X(dev, validation_data[0], net.sizes[0], net.dtype, "X_val")
                Yv = check_Y(dev, validation_data[1], Xv.shape[0], net.sizes[-1], net.loss, net.dtype, "Y_val",
                             host=is_row_source(Xv))  # fmt: skip
                self.validation = (Xv, Yv)  # a row source stays one: evaluated in chunks
            params, grads, decay = [], [], []
            for W, b, dW, db in zip(net.weights, net.biases, net.dW, net.db):
                params += [W, b]
                grads += [dW, db]
                decay += [True, False]  # weight decay on W only, never on b
            s = self.settings
            self.optimizer = make_optimizer(s["optimizer"], dev, params, grads, lr=s["lr"],
                                            momentum=s["momentum"], nesterov=s["nesterov"],
                                            weight_decay=s["weight_decay"], decay_mask=decay)  # fmt: skip
            self._last_good = [dev.xp.empty_like(p) for p in params]
            self._best = [dev.xp.empty_like(p) for p in params] if patience is not None else None
        self.params = params
        self.n = self.X.shape[0]
        self.batch = min(self.settings["batch_size"], self.n)
        self.epoch = 0  # epochs completed
        self.position = 0  # first row of the next batch within the current epoch
        self.order: np.ndarray | None = None  # row order of the current epoch
        self.partial_loss = 0.0  # loss sum and seconds of the current epoch before a resume
        self.partial_seconds = 0.0
        self.best_val = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_early = False
        self.interrupted = False
        self.live: list[Any] | None = None  # the training weights, when the best ones were restored
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS if self._records(k)}
        net.history = self.history

    def _streams(self, X: Any, Y: Any, stream: bool | None) -> bool:
        """Whether batches stream from the host: asked for, or a row source on the CPU, or data
        that would not fit in DEVICE_SHARE of the GPU's free memory (less the workspace)."""
        if is_cupy_array(X) or is_cupy_array(Y):
            if stream:
                raise ValueError("stream=True needs host data; X or Y is already on the GPU")
            return False
        if stream is not None:
            return check_bool("stream", stream)
        free = self.net.device.memory_free()
        if free is None:  # the CPU: never load a file or a foreign array-like whole into memory
            return is_row_source(X) or is_row_source(Y)
        sizes, item = self.net.sizes, self.net.dtype.itemsize
        need = X.shape[0] * (sizes[0] + sizes[-1]) * item
        workspace = 2 * min(self.settings["batch_size"], X.shape[0]) * sum(sizes) * item
        return need > DEVICE_SHARE * free - workspace

    def _records(self, key: str) -> bool:
        if key in ("val_loss", "val_accuracy", "val_r2"):
            if self.validation is None:
                return False
            if key == "val_accuracy":
                return self.net.is_classifier
            if key == "val_r2":
                return not self.net.is_classifier
        return True

    @property
    def n_batches(self) -> int:
        return -(-self.n // self.batch)

    def run(self, epochs: int, callback: Any = None, on_batch: Any = None) -> dict[str, list]:
        """Train until ``epochs`` epochs are complete (or a stopping rule fires)."""
        epochs = check_int("epochs", epochs)
        net, dev = self.net, self.net.device
        xp = dev.xp
        self.interrupted = False
        if self.live is not None and self.epoch < epochs and not self.stopped_early:
            for p, live in zip(self.params, self.live):  # the best weights were restored: go on from
                xp.copyto(p, live)  # where training was, as if it had never stopped
            self.live = None
        # one BLAS thread for small steps on the CPU (faster there); NaN/Inf are caught once per
        # epoch below, so NumPy's floating-point warnings on the way add nothing
        threads = None if dev.is_gpu else threads_for(net.sizes, self.batch)
        with (np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), dev.use(),
              blas_threads(threads)):  # fmt: skip
            fresh_run = True
            while self.epoch < epochs and not self.stopped_early:
                if self.position == 0:
                    self.order = (net.rng.permutation(self.n) if self.settings["shuffle"]
                                  else np.arange(self.n))  # fmt: skip
                    self.partial_loss, self.partial_seconds = 0.0, 0.0
                if self.position == 0 or fresh_run:  # the weights to fall back on if the loss blows up
                    for keep, p in zip(self._last_good, self.params):
                        xp.copyto(keep, p)
                    fresh_run = False
                order = self.order if self.stream else dev.asarray(self.order)
                loss_acc = xp.zeros((), np.float64)
                t0 = time.perf_counter()
                stop = False
                for start in range(self.position, self.n, self.batch):
                    rows = order[start:start + self.batch]
                    ws = net.workspace(rows.shape[0])
                    if self.stream:  # host gather → staging buffer → copy into the workspace
                        self._feed_X(rows, ws.A[0])
                        self._feed_Y(rows, ws.Y)
                    else:
                        dev.take_rows(self.X, rows, ws.A[0])
                        dev.take_rows(self.Y, rows, ws.Y)
                    net._train_step(ws, self.optimizer, loss_acc)
                    self.position = start + rows.shape[0]
                    if on_batch is not None and on_batch(start // self.batch + 1, self.n_batches):
                        stop = True
                        break
                loss_sum = self.partial_loss + dev.item(loss_acc)  # the epoch's one host read
                self.partial_seconds += time.perf_counter() - t0
                if not math.isfinite(loss_sum):
                    self._diverged(loss_sum)
                if self.position < self.n:  # stopped inside the epoch: resumable from here
                    self.partial_loss = loss_sum
                    self.interrupted = stop
                    return self.history
                self._end_epoch(loss_sum, callback)
                if stop:  # stopped on the epoch's last batch: the epoch is complete
                    self.interrupted = True
                    return self.history
            if self._best is not None and self.best_epoch and not self.stopped_early:
                self._restore_best()
        return self.history

    def _diverged(self, loss_sum: float) -> None:
        """Put back the last finite weights, clear the optimiser's (now non-finite) state, raise."""
        xp = self.net.xp
        for keep, p in zip(self._last_good, self.params):
            xp.copyto(p, keep)
        self.optimizer.reset()
        self.position = 0
        raise TrainingDivergedError(
            f"training diverged: the loss became {loss_sum} in epoch {self.epoch + 1}; the weights from the "
            f"start of that epoch were kept and the optimiser state cleared (try a smaller lr)"
        )

    def _end_epoch(self, loss_sum: float, callback: Any) -> None:
        self.position = 0
        self.epoch += 1
        seconds = self.partial_seconds
        row: dict[str, float] = {
            "epoch": self.epoch,
            "train_loss": loss_sum / self.n,
            "seconds": seconds,
            "samples_per_s": self.n / seconds if seconds > 0 else math.inf,
        }
        if self.validation is not None:
            with self.net.device.use():
                result = self.net._evaluate(*self.validation)
            row["val_loss"] = result["loss"]
            row["val_accuracy" if self.net.is_classifier else "val_r2"] = result.get(
                "accuracy", result.get("r2")
            )
        for key in self.history:
            self.history[key].append(row[key])
        if self.validation is not None:
            if row["val_loss"] < self.best_val:
                self.best_val, self.best_epoch, self.bad_epochs = row["val_loss"], self.epoch, 0
                if self._best is not None:
                    for keep, p in zip(self._best, self.params):
                        self.net.xp.copyto(keep, p)
            else:
                self.bad_epochs += 1
                patience = self.settings["patience"]
                if patience is not None and self.bad_epochs >= patience:
                    self.stopped_early = True
                    self._restore_best()
        if callback is not None and callback(self.net, row):
            self.stopped_early = True

    def _restore_best(self) -> None:
        # keep where training was, so that a checkpoint of the best weights can still resume
        self.live = [p.copy() for p in self.params]
        for keep, p in zip(self._best, self.params):
            self.net.xp.copyto(p, keep)

    # -- saving and resuming -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is (NumPy/JSON values)."""
        dev = self.net.device
        return {
            "settings": dict(self.settings),
            "epoch": self.epoch,
            "position": self.position,
            "order": None if self.order is None else np.asarray(self.order),
            "partial_loss": self.partial_loss,
            "partial_seconds": self.partial_seconds,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "best": None if self._best is None else [dev.to_host(b) for b in self._best],
            "live": None if self.live is None else [dev.to_host(p) for p in self.live],
            "rng": self.net.rng.bit_generator.state,
            "optimizer": self.optimizer.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.net.device
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.order = None if state["order"] is None else np.asarray(state["order"])
        if self.order is not None and self.order.shape != (self.n,):
            raise ValueError(
                f"the checkpoint was made on {self.order.shape[0]} training rows, this data has {self.n}"
            )
        self.partial_loss = float(state["partial_loss"])
        self.partial_seconds = float(state["partial_seconds"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
        if self._best is not None and state.get("best") is not None:
            for buf, saved in zip(self._best, state["best"], strict=True):
                buf[...] = dev.asarray(saved, dtype=buf.dtype)
        if state.get("live") is not None:  # the file holds the best weights; training goes on from these
            self.live = [dev.asarray(saved, dtype=p.dtype) for p, saved in zip(self.params, state["live"], strict=True)]
        self.net.rng.bit_generator.state = state["rng"]
        self.optimizer.load_state_dict(state["optimizer"])
        for key in self.history:
            self.history[key][:] = state["history"].get(key, [])

    def save(self, path: str, meta: dict[str, Any] | None = None, arrays: dict[str, Any] | None = None) -> None:
        """Write a training checkpoint: the network (as ``net.save`` does) and this trainer's state,
        atomically; :meth:`restore` or :meth:`Trainer.resume` continue from it exactly."""
        from .checkpoint import pack_state, save_model

        state, state_arrays = pack_state(self.state_dict())
        save_model(self.net, path, meta={**(meta or {}), "trainer": state},
                   arrays={**(arrays or {}), **state_arrays})  # fmt: skip

    def restore(self, path: str) -> None:
        """Continue from the checkpoint at ``path``: its weights (copied into this network's
        arrays) and training state. The network's shape and the training rows must match."""
        from .checkpoint import read_file, unpack_state

        config, params, meta, extra = read_file(path)
        if "trainer" not in meta:
            raise ValueError(f"{path} is a model but not a training checkpoint (no training state)")
        if config["sizes"] != list(self.net.sizes):
            raise ValueError(f"{path} holds a {config['sizes']} network, this trainer's is {list(self.net.sizes)}")
        dev = self.net.device
        for l, (W, b) in enumerate(zip(self.net.weights, self.net.biases), start=1):
            W[...] = dev.asarray(params[f"W_{l}"], dtype=W.dtype)
            b[...] = dev.asarray(params[f"b_{l}"], dtype=b.dtype)
        self.load_state_dict(unpack_state(meta["trainer"], extra))

    @classmethod
    def resume(cls, path: str, X: Any, Y: Any, *, validation_data: tuple | None = None,
               device: str | None = "auto") -> Trainer:  # fmt: skip
        """A Trainer that continues the run saved by :meth:`save` in ``path``, on the same (X, Y)
        (and validation data); its network is ``trainer.net``. Then ``trainer.run(total_epochs)``."""
        from .checkpoint import read_file
        from .network import load

        _, _, meta, _ = read_file(path)
        if "trainer" not in meta:
            raise ValueError(f"{path} is a model but not a training checkpoint (no training state)")
        trainer = cls(load(path, device=device), X, Y, validation_data=validation_data, **meta["trainer"]["settings"])
        trainer.restore(path)
        return trainer
