"""The training loop: epochs of minibatches, the history, and the stopping rules, over its parts.

A :class:`Trainer` puts together the settings (gpubp.settings), the rows in batches (gpubp.batches),
the optimiser (gpubp.optim), early stopping (gpubp.stopping), the other ranks (gpubp.parallel's
DataParallel) and its progress with checkpoints (gpubp.state); :meth:`Trainer.run` reads as begin an
epoch, run its batches, finish it. Inside an epoch nothing is read back to the host: the loss is
accumulated on the device and read once at the end of the epoch (plus one read for the validation
metrics), so the GPU never waits on Python between batches.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from .batches import BatchSource, class_weights_of
from .blas import blas_threads, threads_for
from .optim import make_optimizer
from .parallel import Communicator, DataParallel, Local, agree, on_every_rank
from .rows import is_row_source
from .settings import TrainSettings
from .state import (
    Numbered,
    Progress,
    load_state,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    state_of,
)
from .stopping import EarlyStopping
from .validation import check_int, check_X, check_Y


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the last finite weights were kept."""


#: ``callback(net, row)``, after each epoch with its history row; True stops the run. An object that also has
#: ``attach(trainer)`` (gpubp.monitor's) is handed the trainer before the first batch.
EpochCallback = Callable[[Any, dict[str, float]], object]
#: ``on_batch(batch, n_batches)``, after each batch; True stops the run at the end of that batch
BatchCallback = Callable[[int, int], object]
#: ``probe(ws)``: reads a step's workspace and gradient on the device (gpubp.monitor.GradientStats)
Probe = Callable[[Any], None]

HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_r2", "seconds", "samples_per_s")


class Trainer:
    """Trains ``net`` on (X, Y); ``run(epochs)`` trains until ``epochs`` epochs are complete.

    The state (epoch, position within the epoch, row order, optimiser buffers, RNG) can be saved
    and restored, so a run that is stopped and resumed matches one that never stopped.

    About 260 lines: what is left is the loop itself (begin epoch, run batches, finish epoch) and the
    public face of its parts; the data, early stopping, the state on disk and the other ranks are
    gpubp.batches, gpubp.stopping, gpubp.state and gpubp.parallel.DataParallel.
    """

    def __init__(self, net: Any, X: Any, Y: Any, settings: TrainSettings | None = None, *,
                 validation_data: tuple[Any, Any] | None = None, stream: bool | None = None, sample_weight: Any = None,
                 comm: Communicator | None = None, permutation: Callable[[int], Any] | None = None,
                 **options: Any) -> None:  # fmt: skip
        """``settings``: a :class:`~gpubp.settings.TrainSettings` (default: its defaults), with any of
        its fields given as keywords changed (``Trainer(net, X, Y, lr=0.05)``).
        ``stream``: None decides (see gpubp.batches); True keeps host data on the host and copies each
        batch to the device; False copies the training data to the device whole.
        ``sample_weight``: see :meth:`set_data`. ``comm``: the other ranks, for data-parallel
        training (see make_trainer). ``permutation(n)``: each shuffled epoch's row order (default:
        ``net.rng.permutation``; the scikit-learn estimators pass scikit-learn's shuffle)."""
        self.net = net
        self.comm = Local() if comm is None else comm
        self.dp = DataParallel(self.comm)
        self._synced = False  # with several ranks: whether they all start from rank 0's state yet
        self.settings = settings = TrainSettings.of(settings, **options)
        if settings.patience is not None and validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data=(X_val, Y_val)")
        self.progress = Progress()
        self.set_data(X, Y, sample_weight, stream)
        self.validation = _validation_rows(net, validation_data)
        # the validation loss weighs rows as the training loss does, so the kept epoch follows the same objective
        self.validation_weights = (
            None if self.validation is None else class_weights_of(net, self.validation[1], settings.class_weight)
        )
        self.permutation = permutation  # None: net.rng's, looked up each epoch (a restore sets its state)
        with net.device.use():
            self.store = store = net.params  # θ and its gradient, flat; weight decay on W only, never on b
            self.optimizer = make_optimizer(store, settings)
            self._last_good = store.zeros()  # θ to fall back on if the loss blows up: one flat copy
            self.stopping = EarlyStopping(store, settings.patience, settings.keep_best)
        self.interrupted = False
        self.history: dict[str, list[Any]] = {k: [] for k in _history_keys(net, self.validation is not None)}
        net.history = self.history

    def set_data(self, X: Any, Y: Any, sample_weight: Any = None, stream: bool | None = None,
                 batch_size: int | None = None) -> None:  # fmt: skip
        """Train on (X, Y) from the next epoch on; the optimiser state, step count, epoch count and
        history stay (partial_fit and warm starts). ``sample_weight`` (n,) ≥ 0 makes each batch's
        loss and gradient a weighted mean, Σ w_i ℓ_i / Σ w over the batch. ``batch_size``: a new one."""
        if batch_size is not None:
            self.settings = self.settings.replace(batch_size=batch_size)
        self.data = BatchSource(
            self.net, X, Y, self.settings.batch_size, sample_weight, stream, self.settings.class_weight
        )
        if self.net.device.is_gpu:  # CuPy builds a kernel per shape class: those of this batch, now, not in epoch 1
            self.net.warm_up(self.data.batch)
        self.progress = Progress(epoch=self.progress.epoch)

    def shuffle_with(self, permutation: Callable[[int], Any]) -> None:
        """Each shuffled epoch's row order from ``permutation(n)`` from now on."""
        self.permutation = permutation

    # the parts' state, as the Trainer has always offered it
    epoch = property(lambda self: self.progress.epoch, doc="Epochs completed.")
    position = property(lambda self: self.progress.position, doc="First row of the next batch in this epoch.")
    order = property(lambda self: self.progress.order, doc="The row order of the current epoch.")
    n = property(lambda self: self.data.n, doc="Training rows.")
    batch = property(lambda self: self.data.batch, doc="Rows per batch.")
    stream = property(lambda self: self.data.stream, doc="Whether batches stream from the host.")
    sample_weight = property(lambda self: self.data.sample_weight, doc="The rows' weights (n,), or None.")
    n_batches = property(lambda self: self.data.n_batches, doc="Batches per epoch.")
    best_val = property(lambda self: self.stopping.best_val, doc="The lowest validation loss so far.")
    best_epoch = property(lambda self: self.stopping.best_epoch, doc="Its epoch (0: none yet).")

    @property
    def probe(self) -> Probe | None:
        """``probe(ws)``, called in each step after the batch's gradient (summed over the ranks), before
        the update: it may read ``ws.delta`` and the store's gradient on the device, never on the host
        (gpubp.monitor's GradientStats sets it). None: no probe."""
        return self.dp.probe

    @probe.setter
    def probe(self, fn: Probe | None) -> None:
        self.dp.probe = fn

    @property
    def stopped_early(self) -> bool:
        """A stopping rule (patience or a callback) ended the run; False lets ``run`` go on."""
        return self.stopping.stopped

    @stopped_early.setter
    def stopped_early(self, value: bool) -> None:
        self.stopping.stopped = bool(value)

    def batch_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's batches, in its row order: (rows, weight sums), each (n_batches,) float64;
        without sample weights the sums are the rows."""
        return self.data.totals(self.progress.order)

    def counted_rows(self) -> int:
        """The rows the epoch's mean loss is over (see :meth:`BatchSource.counted_rows`)."""
        return self.data.counted_rows(self.progress.order)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, total_epochs: int, callback: EpochCallback | None = None,
            on_batch: BatchCallback | None = None) -> dict[str, list[Any]]:  # fmt: skip
        """Train until ``total_epochs`` epochs are complete, counted from the first run of this trainer (a
        total, not a count: ``run(4); run(8)`` trains 8 epochs in all), or until a stopping rule fires.
        A total already reached (or a run stopped early) trains nothing and warns, the weights unchanged.
        ``callback(net, row)`` runs after each epoch, ``on_batch(batch, n_batches)`` after each batch;
        True from either stops."""
        epochs = check_int("total_epochs", total_epochs)
        if self.epoch >= epochs or self.stopping.stopped:
            why = (f"a stopping rule ended the run in epoch {self.epoch}; set trainer.stopped_early = False to "
                   "go on" if self.stopping.stopped else
                   f"{self.epoch} epochs are done already; the argument is the total, run({self.epoch + 1}) "
                   "trains one more")  # fmt: skip
            warnings.warn(f"Trainer.run({epochs}) has nothing to train: {why}", UserWarning, stacklevel=2)
        attach = getattr(callback, "attach", None)
        if attach is not None:  # a callback object that watches the run (gpubp.monitor)
            attach(self)
        net, dev = self.net, self.net.device
        self.interrupted = False
        if net.params is not self.store:
            raise RuntimeError(
                "the network was moved to another device after this Trainer was made; "
                "make a new Trainer (its data and optimiser state are on the old device)"
            )
        with dev.use():  # NCCL's broadcasts and the copy run on this device's stream
            if self.dp.size > 1 and not self._synced:
                self._start_from_rank_0()
            if self.epoch < epochs and not self.stopping.stopped:
                self.stopping.go_on()  # the best weights were restored: go on from where training was
        # one BLAS thread for small steps on the CPU (faster there); NaN/Inf are caught once per
        # epoch, so NumPy's floating-point warnings on the way add nothing
        # (with several ranks the launcher's environment decides, e.g. OMP_NUM_THREADS=1 per rank)
        threads = None if dev.is_gpu or self.dp.size > 1 else threads_for(net.sizes, self.data.batch)
        with (np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), dev.use(),
              blas_threads(threads)):  # fmt: skip
            fresh_run = True
            while self.epoch < epochs and not self.stopping.stopped:
                self._begin_epoch(fresh_run)
                fresh_run = False
                loss_acc = dev.xp.zeros((), np.float64)
                t0 = time.perf_counter()
                stop = self._run_batches(loss_acc, on_batch)
                loss_sum = self._epoch_loss(loss_acc, t0)
                if self.position < self.n:  # stopped inside the epoch: resumable from here
                    self.progress.partial_loss = loss_sum
                    self.interrupted = stop
                    return self.history
                self._finish_epoch(loss_sum, callback)
                if stop:  # stopped on the epoch's last batch: the epoch is complete
                    self.interrupted = True
                    return self.history
            self.stopping.finish()
        return self.history

    def _begin_epoch(self, fresh_run: bool) -> None:
        """A new epoch's row order (unless one is under way), and the weights to fall back on."""
        p = self.progress
        if p.position == 0:
            shuffle = self.net.rng.permutation if self.permutation is None else self.permutation
            p.order = shuffle(self.n) if self.settings.shuffle else np.arange(self.n)
            p.partial_loss, p.partial_seconds = 0.0, 0.0
        if p.position == 0 or fresh_run:
            self.net.xp.copyto(self._last_good, self.store.theta)

    def _run_batches(self, loss_acc: Any, on_batch: BatchCallback | None) -> bool:
        """The epoch's batches from the current position, the loss summed into ``loss_acc`` on the
        device; True when ``on_batch`` asked to stop."""
        p, data, dp = self.progress, self.data, self.dp
        row_w, batch_sums = data.row_weights(p.current_order())
        # per batch λ/Σw (scikit-learn's alpha), set only where it changes (every full batch has
        # the same without sample weights); a batch whose weights are all 0 adds nothing, no decay either
        decays = np.divide(self.settings.weight_decay, batch_sums, out=np.zeros_like(batch_sums),
                           where=batch_sums > 0).tolist() if self.settings.decay_mean else None  # fmt: skip
        decay = None
        # hoisted out of the loop below: on a tiny network its Python costs as much as a kernel
        order, B, multi, n = data.device_order(p.current_order()), data.batch, dp.size > 1, data.n
        net, optimizer, load, step, workspace = self.net, self.optimizer, data.load, dp.step, self.net.workspace
        for start in range(p.position, n, B):
            rows = order[start : start + B]
            batch = rows.shape[0]  # the global batch; this rank computes on its share of it
            if multi:
                rows = rows[dp.share(batch)]
            ws = workspace(rows.shape[0])
            load(rows, ws)
            ws.w = None if row_w is None else row_w[start : start + batch]
            if ws.w is not None and multi:
                ws.w = ws.w[dp.share(batch)]
            if decays is not None and decays[start // B] != decay:
                decay = decays[start // B]
                optimizer.set_weight_decay(decay)
            step(net, optimizer, ws, loss_acc, batch)
            p.position = start + batch
            if on_batch is not None and dp.ask(on_batch, start // B + 1, data.n_batches):
                return True
        return False

    def _epoch_loss(self, loss_acc: Any, t0: float) -> float:
        """The loss summed over the epoch so far on all ranks (the epoch's one host read); a NaN or
        infinite loss puts back the last finite weights and raises."""
        self.comm.allreduce(loss_acc)  # Σ over all ranks' rows
        loss_sum = self.progress.partial_loss + self.net.device.item(loss_acc)
        self.progress.partial_seconds += time.perf_counter() - t0
        if not math.isfinite(loss_sum):
            self.net.xp.copyto(self.store.theta, self._last_good)
            self.optimizer.reset()  # its state is non-finite now
            self.progress.position = 0
            raise on_every_rank(
                TrainingDivergedError(  # the loss was summed over the ranks: all see it
                    f"training diverged: the loss became {loss_sum} in epoch {self.epoch + 1}; the weights from "
                    f"the start of that epoch were kept and the optimiser state cleared (try a smaller lr)"
                )
            )
        return float(loss_sum)

    def _finish_epoch(self, loss_sum: float, callback: EpochCallback | None) -> None:
        """The epoch's row of the history, validation, the stopping rules and the callback."""
        p = self.progress
        p.position = 0
        p.epoch += 1
        seconds = p.partial_seconds
        row: dict[str, float] = {
            "epoch": p.epoch,
            "train_loss": loss_sum / self.counted_rows(),
            "seconds": seconds,
            "samples_per_s": self.n / seconds if seconds > 0 else math.inf,
        }
        if self.validation is not None:
            result = self._evaluate()
            row["val_loss"] = result["loss"]
            metric = "accuracy" if self.net.is_classifier else "r2"
            row[f"val_{metric}"] = result[metric]
        for key in self.history:
            self.history[key].append(row[key])
        if self.validation is not None:
            self.stopping.update(p.epoch, row["val_loss"])
        if callback is not None and self.dp.ask(callback, self.net, row):
            self.stopping.stopped = True

    def _evaluate(self) -> dict[str, float]:
        """The validation metrics; with several ranks computed on rank 0 and broadcast."""
        net, validation = self.net, self.validation
        if validation is None:
            raise RuntimeError("no validation rows to evaluate on")

        def evaluate() -> dict[str, float]:
            with net.device.use():
                result: dict[str, float] = net.evaluate_checked(*validation, w=self.validation_weights)
                return result

        return self.dp.on_root(evaluate, ("loss", "accuracy" if net.is_classifier else "r2"))

    # -- saving and resuming -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trainer is (NumPy/JSON values)."""
        return state_of(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`state_dict`."""
        load_state(self, state)
        self._synced = False  # with several ranks, rank 0's state is sent to all at the next run

    def _start_from_rank_0(self) -> None:
        """Every rank starts from rank 0's state: its parts' numbers (by name), θ, the optimiser's and
        early stopping's flat buffers, the row order and the RNG (a resumed checkpoint included)."""
        p, opt, st, store = self.progress, self.optimizer, self.stopping, self.store
        parts: dict[str, Numbered] = {"progress": p, "optimizer": opt, "stopping": st}
        mine = {f"{name}.{key}": value for name, part in parts.items() for key, value in part.numbers().items()}
        mine["has_order"] = p.order is not None
        rank_0 = self.dp.broadcast_named(mine)
        for name, part in parts.items():
            part.set_numbers({key.split(".", 1)[1]: v for key, v in rank_0.items() if key.startswith(f"{name}.")})
        has_order = bool(rank_0["has_order"])
        order = (np.arange(self.data.n) if p.order is None else p.order) if has_order else None
        order = self.dp.broadcast_state(order, [store.theta, *opt.flat.values(), *st.flats()], self.net.rng)
        if has_order:
            p.order = order
        self.net.device.synchronize()
        self._synced = True

    def save(self, path: str, meta: dict[str, Any] | None = None, arrays: dict[str, Any] | None = None) -> None:
        """Write a training checkpoint: the network (as ``net.save`` does) and this trainer's state,
        atomically; :meth:`restore` or :meth:`Trainer.resume` continue from it exactly."""
        save_checkpoint(self, path, meta, arrays)

    def restore(self, path: str) -> None:
        """Continue from the checkpoint at ``path``: its weights (copied into this network's
        arrays) and training state. The network's shape and the training rows must match."""
        restore_checkpoint(self, path)

    @classmethod
    def resume(cls, path: str, X: Any, Y: Any, *, load: Callable[..., Any],
               validation_data: tuple[Any, Any] | None = None,
               device: str | None = "auto") -> Trainer:  # fmt: skip
        """A Trainer that continues the run saved by :meth:`save` in ``path``, on the same (X, Y)
        (and validation data); its network is ``trainer.net``, built by ``load(path, device=device)``
        (``gpubp.network.load``: the training loop is handed the network's loader, so that the network
        module, whose ``fit`` builds a Trainer, is not needed here). Then ``trainer.run(total_epochs)``."""
        _, _, meta, extra = read_checkpoint(path)
        trainer = cls(load(path, device=device), X, Y, validation_data=validation_data,
                      sample_weight=extra.get("sample_weight"), **meta["trainer"]["settings"])  # fmt: skip
        trainer.restore(path)
        return trainer


def _validation_rows(net: Any, validation_data: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
    """(X_val, Y_val) checked for ``net`` (a row source stays one: evaluated in chunks), or None."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("validation_data must be a pair (X_val, Y_val)")
    dev = net.device
    with dev.use():
        Xv = check_X(dev, validation_data[0], net.sizes[0], net.dtype, "X_val")
        Yv = check_Y(dev, validation_data[1], Xv.shape[0], net.sizes[-1], net.loss, net.dtype, "Y_val",
                     host=is_row_source(Xv))  # fmt: skip
    return Xv, Yv


def _history_keys(net: Any, validation: bool) -> list[str]:
    """The history's columns: validation metrics only with validation rows, accuracy or R² by the loss."""
    skip = (
        {"val_loss", "val_accuracy", "val_r2"}
        if not validation
        else {"val_r2" if net.is_classifier else "val_accuracy"}
    )
    return [k for k in HISTORY_KEYS if k not in skip]


def make_trainer(net: Any, X: Any, Y: Any, comm: Communicator | None = None, settings: TrainSettings | None = None,
                 **options: Any) -> Trainer:  # fmt: skip
    """A Trainer over the ranks of ``comm`` (one process when None). Every rank must call it with
    the same settings and the same data: a bad argument or bad data on any rank raises on every
    rank (the failing rank's message), and so do different data shapes or settings on different ranks."""
    if comm is None or comm.size == 1:
        return Trainer(net, X, Y, settings, comm=comm, **options)
    made, error = None, None
    try:
        made = Trainer(net, X, Y, settings, comm=comm, **options)
    except Exception as exc:
        error = exc
    agree(comm, error)  # raises on every rank when one failed
    trainer = cast(Trainer, made)
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
