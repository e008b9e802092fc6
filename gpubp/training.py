"""The training loop: minibatches, shuffling, stopping rules, history, and resumable state.

Data is copied to the network's device once when it fits there; otherwise (a memory-mapped file or
another row source on the CPU, data larger than the GPU's free memory, or ``stream=True``) it stays
on the host and each batch's rows are gathered and copied into the workspace (see gpubp.rows).
Inside an epoch nothing is read back to the host:
the loss is accumulated on the device and read once at the end of the epoch (plus one read for
the validation metrics), so the GPU never waits on Python between batches.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import blas_threads, is_cupy_array, threads_for, to_numpy
from .data import sample_rows
from .optim import make_optimizer
from .parallel import Communicator, Local, agree, on_every_rank
from .rows import Feeder, is_row_source, to_device
from .settings import TrainSettings
from .validation import check_bool, check_int, check_X, check_Y, label_width

DEVICE_SHARE = 0.8  # on a GPU, data is copied whole when it needs at most this share of the free memory


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last finite weights were kept."""


HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_r2", "seconds", "samples_per_s")


class Trainer:
    """Trains ``net`` on (X, Y); ``run(epochs)`` trains until ``epochs`` epochs are complete.

    The state (epoch, position within the epoch, row order, optimiser buffers, RNG) can be saved
    and restored, so a run that is stopped and resumed matches one that never stopped.
    """

    def __init__(self, net: Any, X: Any, Y: Any, settings: TrainSettings | None = None, *,
                 validation_data: tuple | None = None, stream: bool | None = None, sample_weight: Any = None,
                 comm: Communicator | None = None, **options: Any) -> None:  # fmt: skip
        """``settings``: a :class:`~gpubp.settings.TrainSettings` (default: its defaults), with any of
        its fields given as keywords changed (``Trainer(net, X, Y, lr=0.05)``).
        ``stream``: None decides (see the module docstring); True keeps host data on the host and
        copies each batch to the device; False copies the training data to the device whole.
        ``sample_weight``: see :meth:`set_data`. ``comm``: the other ranks, for data-parallel
        training (see make_trainer)."""
        self.net = net
        self.comm = Local() if comm is None else comm  # the other ranks (see make_trainer)
        self._synced = False
        self._inv_b: dict[int, Any] = {}
        dev = net.device
        self.settings = settings = TrainSettings.of(settings, **options)
        patience = settings.patience
        if patience is not None and validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data=(X_val, Y_val)")
        self.set_data(X, Y, sample_weight, stream)
        with dev.use():
            self.validation = None
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise TypeError("validation_data must be a pair (X_val, Y_val)")
                Xv = check_X(dev, validation_data[0], net.sizes[0], net.dtype, "X_val")
                Yv = check_Y(dev, validation_data[1], Xv.shape[0], net.sizes[-1], net.loss, net.dtype, "Y_val",
                             host=is_row_source(Xv))  # fmt: skip
                self.validation = (Xv, Yv)  # a row source stays one: evaluated in chunks
            store = self.store = net.params  # θ and its gradient, flat; weight decay on W only, never on b
            self.optimizer = make_optimizer(store, settings)
            self._last_good = store.zeros()  # snapshots of θ: one flat copy each
            self._best = store.zeros() if patience is not None else None
        self.params = store.pieces(store.theta)  # [W_1, b_1, W_2, b_2, …]: views into θ
        self.epoch = 0  # epochs completed
        self.best_val = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped_early = False
        self.interrupted = False
        self.live: Any = None  # the training weights (flat θ), when the best ones were restored
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS if self._records(k)}
        net.history = self.history

    def set_data(self, X: Any, Y: Any, sample_weight: Any = None, stream: bool | None = None,
                 batch_size: int | None = None) -> None:  # fmt: skip
        """Train on (X, Y) from the next epoch on; the optimiser state, step count, epoch count and
        history stay (partial_fit and warm starts). ``sample_weight`` (n,) ≥ 0 makes each batch's
        loss and gradient a weighted mean, Σ w_i ℓ_i / Σ w over the batch. ``batch_size``: a new one."""
        net, dev = self.net, self.net.device
        if batch_size is not None:
            self.settings = self.settings.replace(batch_size=batch_size)
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
        self.n = self.X.shape[0]
        self._host_data = (X, Y)  # what the checkpoint's fingerprint is taken of (no copy)
        self._rows_hash: str | None = None  # that fingerprint, once taken (a save every epoch reuses it)
        self.batch = min(self.settings.batch_size, self.n)
        self.sample_weight = None
        if sample_weight is not None:
            w = to_numpy(sample_weight, np.float64).reshape(-1)  # a CuPy array too
            if w.shape != (self.n,):
                raise ValueError(f"sample_weight must be {self.n} weights, one a row, got shape {w.shape}")
            bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
            if bad.size:  # a negative weight would make the weighted mean loss unbounded below
                i = int(bad[0])
                raise ValueError(f"sample_weight must be finite and >= 0, got sample_weight[{i}] = {w[i]} "
                                 f"({bad.size} such weights)")  # fmt: skip
            if not w.sum() > 0:
                raise ValueError("sample_weight must have a positive sum: all weights are 0, nothing would be learnt")
            self.sample_weight = w
        self.position = 0  # first row of the next batch within the current epoch
        self.order: np.ndarray | None = None  # row order of the current epoch
        self.partial_loss = 0.0  # loss sum and seconds of the current epoch before a resume
        self.partial_seconds = 0.0

    def batch_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's batches, in its row order: (rows, weight sums), each (n_batches,) float64;
        without sample weights the sums are the rows."""
        starts = np.arange(0, self.n, self.batch)
        sizes = (np.minimum(starts + self.batch, self.n) - starts).astype(np.float64)
        if self.sample_weight is None:
            return sizes, sizes
        return sizes, np.add.reduceat(self.sample_weight[self.order], starts)

    def counted_rows(self) -> int:
        """The rows the epoch's mean loss is over: all n, less those of batches whose weights are all 0
        (such a batch adds no loss, no gradient and no decay)."""
        if self.sample_weight is None:
            return self.n
        sizes, sums = self.batch_totals()
        return int(sizes[sums > 0].sum())

    def _batch_weights(self) -> tuple[Any, np.ndarray]:
        """For this epoch's order: row weights B·w_i/Σw per batch (device, (n, 1)) or None, and
        each batch's weight sum (its size without sample weights), on the host."""
        sizes, sums = self.batch_totals()
        if self.sample_weight is None:
            return None, sums
        w = self.sample_weight[self.order]
        # an all-zero batch adds nothing
        scale = np.repeat(sizes / np.where(sums > 0, sums, 1.0), sizes.astype(np.int64))
        return self.net.device.asarray((w * scale).reshape(-1, 1), dtype=self.net.dtype), sums

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
        workspace = 2 * min(self.settings.batch_size, X.shape[0]) * sum(sizes) * item
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
        if net.params is not self.store:
            raise RuntimeError(
                "the network was moved to another device after this Trainer was made; "
                "make a new Trainer (its data and optimiser state are on the old device)"
            )
        theta = self.store.theta
        if self.comm.size > 1 and not self._synced:
            self._sync()
        if self.live is not None and self.epoch < epochs and not self.stopped_early:
            xp.copyto(theta, self.live)  # the best weights were restored: go on from where training
            self.live = None  # was, as if it had never stopped
        # one BLAS thread for small steps on the CPU (faster there); NaN/Inf are caught once per
        # epoch below, so NumPy's floating-point warnings on the way add nothing
        # (with several ranks the launcher's environment decides, e.g. OMP_NUM_THREADS=1 per rank)
        threads = None if dev.is_gpu or self.comm.size > 1 else threads_for(net.sizes, self.batch)
        with (np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), dev.use(),
              blas_threads(threads)):  # fmt: skip
            fresh_run = True
            while self.epoch < epochs and not self.stopped_early:
                if self.position == 0:
                    self.order = (net.rng.permutation(self.n) if self.settings.shuffle
                                  else np.arange(self.n))  # fmt: skip
                    self.partial_loss, self.partial_seconds = 0.0, 0.0
                if self.position == 0 or fresh_run:  # the weights to fall back on if the loss blows up
                    xp.copyto(self._last_good, theta)
                    fresh_run = False
                order = self.order if self.stream else dev.asarray(self.order)
                row_w, batch_sums = self._batch_weights()
                # per batch λ/Σw (scikit-learn's alpha), set only where it changes (every full batch has
                # the same without sample weights); a batch whose weights are all 0 adds nothing, no decay either
                decays = np.divide(self.settings.weight_decay, batch_sums, out=np.zeros_like(batch_sums),
                                   where=batch_sums > 0).tolist() if self.settings.decay_mean else None  # fmt: skip
                decay = None
                loss_acc = xp.zeros((), np.float64)
                t0 = time.perf_counter()
                stop = False
                # hoisted out of the loop below: on a tiny network its Python costs as much as a kernel
                B, multi, stream, X, Y = self.batch, self.comm.size > 1, self.stream, self.X, self.Y
                step, take_rows, workspace = self._step, dev.take_rows, net.workspace
                for start in range(self.position, self.n, B):
                    rows = order[start : start + B]
                    batch = rows.shape[0]  # the global batch; this rank computes on its share of it
                    if multi:
                        rows = rows[self._share(batch)]
                    ws = workspace(rows.shape[0])
                    if stream:  # host gather → staging buffer → copy into the workspace
                        self._feed_X(rows, ws.A[0])
                        self._feed_Y(rows, ws.Y)
                    else:
                        take_rows(X, rows, ws.A[0])
                        take_rows(Y, rows, ws.Y)
                    ws.w = None if row_w is None else row_w[start : start + batch]
                    if ws.w is not None and multi:
                        ws.w = ws.w[self._share(batch)]
                    if decays is not None and decays[start // B] != decay:
                        decay = decays[start // B]
                        self.optimizer.set_weight_decay(decay)
                    step(ws, loss_acc, batch)
                    self.position = start + batch
                    if on_batch is not None and self._ask(on_batch, start // B + 1, self.n_batches):
                        stop = True
                        break
                self.comm.allreduce(loss_acc)  # Σ over all ranks' rows
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

    def _step(self, ws: Any, loss_acc: Any, batch: int) -> None:
        """One minibatch: the gradient of this rank's rows (in ws) by backprop, summed over the
        ranks, then the same update everywhere. Each rank's Δ_L carries 1/B of the global batch B,
        so the sum is the gradient of the global batch mean."""
        if self.comm.size == 1:  # nothing to sum: Local's allreduce is a no-op (a call saved per step)
            self.net._backprop(ws, loss_acc)
            self.optimizer.step()
            return
        inv_b = self._inv_b.get(batch)
        if inv_b is None:
            inv_b = self._inv_b[batch] = self.net.dtype.type(1.0 / batch)
        self.net._backprop(ws, loss_acc, inv_b)
        self.comm.allreduce(self.store.grad)  # one call over the flat gradient buffer
        self.optimizer.step()

    def _share(self, batch: int) -> slice:
        """This rank's contiguous part of a global batch: the first ``batch mod R`` ranks take one row
        more; a rank may get none (it then contributes a zero gradient)."""
        base, extra = divmod(batch, self.comm.size)
        r = self.comm.rank
        lo = r * base + min(r, extra)
        return slice(lo, lo + base + (r < extra))

    def _ask(self, fn: Any, *args: Any) -> bool:
        """``fn(*args)`` as a stop decision: with several ranks it runs on rank 0 only and every rank
        gets its answer (an exception there is raised on every rank)."""
        if self.comm.size == 1:
            return bool(fn(*args))
        answer, error = False, None
        if self.comm.rank == 0:
            try:
                answer = bool(fn(*args))
            except Exception as exc:
                error = exc
        agree(self.comm, error)
        return self.comm.any(answer)

    def _evaluate(self) -> dict[str, float]:
        """The validation metrics; with several ranks computed on rank 0 and broadcast."""
        if self.comm.size == 1:
            with self.net.device.use():
                return self.net._evaluate(*self.validation)
        key = "accuracy" if self.net.is_classifier else "r2"
        values, error = np.zeros(2), None
        if self.comm.rank == 0:
            try:
                with self.net.device.use():
                    result = self.net._evaluate(*self.validation)
                values[:] = result["loss"], result[key]
            except Exception as exc:
                error = exc
        agree(self.comm, error)
        self.comm.broadcast(values)
        return {"loss": float(values[0]), key: float(values[1])}

    def _sync(self) -> None:
        """Make every rank start from rank 0's state: θ, optimiser state, snapshots, position, row
        order and RNG (a resumed checkpoint included)."""
        comm, store, dev = self.comm, self.store, self.net.device
        header = np.array([self.epoch, self.position, self.optimizer.t, self.partial_loss, self.partial_seconds,
                           self.best_val, self.best_epoch, self.bad_epochs, self.stopped_early,
                           self.order is not None, self.live is not None], np.float64)  # fmt: skip
        comm.broadcast(header)
        (epoch, position, t, self.partial_loss, self.partial_seconds, self.best_val, best_epoch, bad_epochs,
         stopped, has_order, has_live) = header.tolist()  # fmt: skip
        self.epoch, self.position, self.optimizer.t = int(epoch), int(position), int(t)
        self.best_epoch, self.bad_epochs, self.stopped_early = int(best_epoch), int(bad_epochs), bool(stopped)
        if has_order:
            order = np.arange(self.n) if self.order is None else np.array(self.order, np.int64)
            comm.broadcast(order)
            self.order = order
        if has_live and self.live is None:
            self.live = store.zeros()
        for flat in [store.theta, *self.optimizer.flat.values(), self._best, self.live]:
            if flat is not None:
                comm.broadcast(flat)
        bits = self.net.rng.bit_generator
        rng = _rng_words(bits.state)
        comm.broadcast(rng)
        bits.state = _rng_state(bits.state, rng)
        dev.synchronize()
        self._synced = True

    def _diverged(self, loss_sum: float) -> None:
        """Put back the last finite weights, clear the optimiser's (now non-finite) state, raise."""
        self.net.xp.copyto(self.store.theta, self._last_good)
        self.optimizer.reset()
        self.position = 0
        raise on_every_rank(
            TrainingDivergedError(  # the loss was summed over the ranks: all see it
                f"training diverged: the loss became {loss_sum} in epoch {self.epoch + 1}; the weights from the "
                f"start of that epoch were kept and the optimiser state cleared (try a smaller lr)"
            )
        )

    def _end_epoch(self, loss_sum: float, callback: Any) -> None:
        self.position = 0
        self.epoch += 1
        seconds = self.partial_seconds
        row: dict[str, float] = {
            "epoch": self.epoch,
            "train_loss": loss_sum / self.counted_rows(),
            "seconds": seconds,
            "samples_per_s": self.n / seconds if seconds > 0 else math.inf,
        }
        if self.validation is not None:
            result = self._evaluate()
            row["val_loss"] = result["loss"]
            row["val_accuracy" if self.net.is_classifier else "val_r2"] = result.get("accuracy", result.get("r2"))
        for key in self.history:
            self.history[key].append(row[key])
        if self.validation is not None:
            if row["val_loss"] < self.best_val:
                self.best_val, self.best_epoch, self.bad_epochs = row["val_loss"], self.epoch, 0
                if self._best is not None:
                    self.net.xp.copyto(self._best, self.store.theta)
            else:
                self.bad_epochs += 1
                patience = self.settings.patience
                if patience is not None and self.bad_epochs >= patience:
                    self.stopped_early = True
                    self._restore_best()
        if callback is not None and self._ask(callback, self.net, row):
            self.stopped_early = True

    def _restore_best(self) -> None:
        # keep where training was, so that a checkpoint of the best weights can still resume
        self.live = self.store.theta.copy()
        self.net.xp.copyto(self.store.theta, self._best)

    # -- saving and resuming -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is (NumPy/JSON values)."""
        dev, store = self.net.device, self.store
        optimizer = self.optimizer.state_dict()  # per parameter, [W_1, b_1, …], as in the model file
        for slot in self.optimizer.slots:
            optimizer[slot] = store.pieces(optimizer[slot])
        return {
            "settings": self.settings.as_dict(),
            "epoch": self.epoch,
            "position": self.position,
            "order": None if self.order is None else np.asarray(self.order),
            "partial_loss": self.partial_loss,
            "partial_seconds": self.partial_seconds,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "best": None if self._best is None else store.pieces(dev.to_host(self._best)),
            "live": None if self.live is None else store.pieces(dev.to_host(self.live)),
            "rng": self.net.rng.bit_generator.state,
            "optimizer": optimizer,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        store = self.store
        self._synced = False  # with several ranks, rank 0's state is sent to all at the next run
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.order = None if state["order"] is None else np.asarray(state["order"])
        if self.order is not None and self.order.shape != (self.n,):
            raise ValueError(f"the checkpoint was made on {self.order.shape[0]} training rows, this data has {self.n}")
        self.partial_loss = float(state["partial_loss"])
        self.partial_seconds = float(state["partial_seconds"])
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped_early"])
        if self._best is not None and state.get("best") is not None:
            store.assign(self._best, state["best"])
        if state.get("live") is not None:  # the file holds the best weights; training goes on from these
            self.live = store.zeros()
            store.assign(self.live, state["live"])
        self.net.rng.bit_generator.state = state["rng"]
        optimizer = {"t": state["optimizer"]["t"]}
        for slot in self.optimizer.slots:  # [W_1, b_1, …] from the file into θ's flat layout
            optimizer[slot] = flat = np.empty(store.size, store.dtype)
            store.assign(flat, state["optimizer"][slot], device=False)
        self.optimizer.load_state_dict(optimizer)
        for key in self.history:
            self.history[key][:] = state["history"].get(key, [])

    def _fingerprint(self) -> str:
        """A hash of the rows as this trainer trains on them: a sample of X in the network's dtype and of Y
        as targets (class labels one-hot), so the same data given as float64 or float32, as labels or as
        one-hot rows, on the host or the GPU, matches; other rows (almost always) do not."""
        if self._rows_hash is None:
            self._rows_hash = self._hash_rows()
        return self._rows_hash

    def _hash_rows(self) -> str:
        X, Y = self._host_data
        idx = sample_rows(self.n)
        xs = to_numpy(X[idx], self.net.dtype)
        ys = to_numpy(Y[idx])
        width = label_width(ys, self.net.loss, self.net.sizes[-1])
        if width is not None:
            ys = np.eye(width)[ys.astype(np.int64)]
        ys = ys.astype(self.net.dtype).reshape(len(idx), -1)
        h = hashlib.sha256(f"{self.n}x{xs.shape[1:]}".encode())
        h.update(np.ascontiguousarray(xs).tobytes())
        h.update(np.ascontiguousarray(ys).tobytes())
        return f"{self.n} rows:{h.hexdigest()[:16]}"

    def save(self, path: str, meta: dict[str, Any] | None = None, arrays: dict[str, Any] | None = None) -> None:
        """Write a training checkpoint: the network (as ``net.save`` does) and this trainer's state,
        atomically; :meth:`restore` or :meth:`Trainer.resume` continue from it exactly."""
        from .checkpoint import pack_state, save_model

        state, state_arrays = pack_state(self.state_dict())
        state["data"] = self._fingerprint()  # restore refuses other rows
        if self.sample_weight is not None:  # part of the run: resume weights the rows the same way
            state_arrays["sample_weight"] = self.sample_weight
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
        saved_rows, my_rows = meta["trainer"].get("data"), self._fingerprint()
        if saved_rows is not None and saved_rows != my_rows:  # (older checkpoints have no fingerprint)
            raise ValueError(f"{path} was trained on other rows (fingerprint {saved_rows}), this trainer has "
                             f"{my_rows}: resuming would change the run; pass the same X and Y")  # fmt: skip
        saved_w, mine = extra.get("sample_weight"), self.sample_weight
        if (saved_w is None) != (mine is None) or (mine is not None and not np.array_equal(saved_w, mine)):
            saved = "its own sample weights" if saved_w is not None else "no sample weights"
            here = "other sample weights" if mine is not None else "none"
            raise ValueError(f"{path} was trained with {saved}, this trainer has {here}: resuming would "
                             "change the run (pass the same sample_weight, or use Trainer.resume, which "
                             "reads them from the file)")  # fmt: skip
        dev = self.net.device
        for l, (W, b) in enumerate(zip(self.net.weights, self.net.biases), start=1):
            W[...] = dev.asarray(params[f"W_{l}"], dtype=W.dtype)
            b[...] = dev.asarray(params[f"b_{l}"], dtype=b.dtype)
        self.load_state_dict(unpack_state(meta["trainer"], extra))

    @classmethod
    def resume(cls, path: str, X: Any, Y: Any, *, load: Callable[..., Any], validation_data: tuple | None = None,
               device: str | None = "auto") -> Trainer:  # fmt: skip
        """A Trainer that continues the run saved by :meth:`save` in ``path``, on the same (X, Y)
        (and validation data); its network is ``trainer.net``, built by ``load(path, device=device)``
        (``gpubp.network.load``: the training loop is handed the network's loader, so that the network
        module, whose ``fit`` builds a Trainer, is not needed here). Then ``trainer.run(total_epochs)``."""
        from .checkpoint import read_file

        _, _, meta, extra = read_file(path)
        if "trainer" not in meta:
            raise ValueError(f"{path} is a model but not a training checkpoint (no training state)")
        trainer = cls(load(path, device=device), X, Y, validation_data=validation_data,
                      sample_weight=extra.get("sample_weight"), **meta["trainer"]["settings"])  # fmt: skip
        trainer.restore(path)
        return trainer


def _rng_words(state: dict[str, Any]) -> np.ndarray:
    """A PCG64 state as six uint64 words (to broadcast it)."""
    inner, mask = state["state"], (1 << 64) - 1
    return np.array([inner["state"] >> 64, inner["state"] & mask, inner["inc"] >> 64, inner["inc"] & mask,
                     state["has_uint32"], state["uinteger"]], np.uint64)  # fmt: skip


def _rng_state(like: dict[str, Any], words: np.ndarray) -> dict[str, Any]:
    w = [int(v) for v in words]
    return {**like, "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
            "has_uint32": w[4], "uinteger": w[5]}  # fmt: skip


def make_trainer(net: Any, X: Any, Y: Any, comm: Communicator | None = None, settings: TrainSettings | None = None,
                 **options: Any) -> Trainer:  # fmt: skip
    """A Trainer over the ranks of ``comm`` (one process when None). Every rank must call it with
    the same settings and the same data: a bad argument or bad data on any rank raises on every
    rank (the failing rank's message), and so do different data shapes or settings on different ranks."""
    if comm is None or comm.size == 1:
        return Trainer(net, X, Y, settings, comm=comm, **options)
    trainer, error = None, None
    try:
        trainer = Trainer(net, X, Y, settings, comm=comm, **options)
    except Exception as exc:
        error = exc
    agree(comm, error)
    # one allreduce of every rank's shapes and settings: rank r fills row r
    val = trainer.validation
    mine = {"training rows": trainer.n, "input width": net.sizes[0], "output width": net.sizes[-1],
            "validation rows": -1 if val is None else val[0].shape[0], "parameters": trainer.store.size,
            **trainer.settings.as_numbers()}  # fmt: skip
    table = np.zeros((comm.size, len(mine)))
    table[comm.rank] = list(mine.values())
    comm.allreduce(table)
    if (table != table[0]).any():
        names = list(mine)
        bad = int(np.flatnonzero((table != table[0]).any(axis=0))[0])
        seen = ", ".join(f"rank {r}: {v:g}" for r, v in enumerate(table[:, bad]))
        raise ValueError(f"every rank must be given the same data and settings, but the ranks differ in {names[bad]} "
                         f"({seen})")  # fmt: skip
    return trainer
