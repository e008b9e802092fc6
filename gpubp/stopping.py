"""Early stopping: the best validation loss so far, its epoch and weights, and the patience rule.

Whenever there are validation rows the best epoch is tracked; with ``patience`` (or ``keep_best``)
its weights θ are kept (one flat copy) and put back when training stops, keeping the weights
training had reached (``live``) so that a checkpoint of the best weights can still resume the run.
"""

from __future__ import annotations

import math
from typing import Any

from .params import ParamStore


class EarlyStopping:
    """The stopping state over ``store`` (a ParamStore: θ and flat copies of it)."""

    def __init__(self, store: ParamStore, patience: int | None, keep_best: bool = False) -> None:
        self.store = store
        self.patience = patience
        self.best_val = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.best = store.zeros() if patience is not None or keep_best else None  # θ of the best epoch
        self.live: Any = None  # the training weights (flat θ), when the best ones were restored

    def update(self, epoch: int, val_loss: float) -> None:
        """After epoch ``epoch`` with validation loss ``val_loss``: a new best, or one bad epoch more
        (and, ``patience`` bad epochs in a row, stop and restore the best weights)."""
        if val_loss < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            if self.best is not None:
                self.store.device.xp.copyto(self.best, self.store.theta)
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                self.stopped = True
                self.restore_best()

    def restore_best(self) -> None:
        """θ ← the best epoch's weights, keeping where training was (so that a checkpoint of the
        best weights can still resume the run)."""
        self.live = self.store.theta.copy()
        self.store.device.xp.copyto(self.store.theta, self.best)

    def finish(self) -> None:
        """At the end of a run that was not stopped early: the best weights, when they are kept (and
        not already in θ: a run with nothing to do must keep ``live``, where training had got to)."""
        if self.best is not None and self.best_epoch and not self.stopped and self.live is None:
            self.restore_best()

    def go_on(self) -> None:
        """Before more epochs: training goes on from the weights it had reached, as if it had never
        stopped (when the best ones were restored)."""
        if self.live is not None:
            self.store.device.xp.copyto(self.store.theta, self.live)
            self.live = None

    def numbers(self) -> dict[str, float]:
        """The state's scalars by name (sent from rank 0 to the others with :meth:`flats`)."""
        return {"best_val": self.best_val, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "stopped": self.stopped, "has_live": self.live is not None}  # fmt: skip

    def set_numbers(self, numbers: dict[str, float]) -> None:
        """The inverse of :meth:`numbers`; a copy of the live weights is made ready when rank 0 has one."""
        self.best_val = float(numbers["best_val"])
        self.best_epoch, self.bad_epochs = int(numbers["best_epoch"]), int(numbers["bad_epochs"])
        self.stopped = bool(numbers["stopped"])
        if numbers["has_live"] and self.live is None:
            self.live = self.store.zeros()

    def flats(self) -> list[Any]:
        """The flat copies of θ this state holds (to send to the other ranks)."""
        return [f for f in (self.best, self.live) if f is not None]

    def state_dict(self) -> dict[str, Any]:
        store, host = self.store, self.store.device.to_host
        return {
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped,
            "best": None if self.best is None else store.pieces(host(self.best)),
            "live": None if self.live is None else store.pieces(host(self.live)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped = bool(state["stopped_early"])
        if self.best is not None and state.get("best") is not None:
            self.store.assign(self.best, state["best"])
        if state.get("live") is not None:  # the file holds the best weights; training goes on from these
            self.live = self.store.zeros()
            self.store.assign(self.live, state["live"])
