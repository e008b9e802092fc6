"""A run's progress and training checkpoints: where an epoch stands, and saving and restoring it.

A checkpoint is a model file (gpubp.checkpoint) whose meta holds the Trainer's state (settings,
progress, early stopping, optimiser buffers, RNG, history), a fingerprint of the training rows and
the sample weights, so that a run stopped and resumed matches one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .checkpoint import pack_state, read_file, save_model, unpack_state
from .settings import TrainSettings


class Numbered(Protocol):
    """A part of a Trainer whose scalars travel by name (rank 0's to the other ranks)."""

    def numbers(self) -> dict[str, float]: ...

    def set_numbers(self, numbers: dict[str, float]) -> None: ...


@dataclass
class Progress:
    """Where training stands: epochs completed, the first row of the next batch within the current
    epoch, that epoch's row order, and its loss sum and seconds before a stop inside it."""

    epoch: int = 0
    position: int = 0
    order: np.ndarray | None = None
    partial_loss: float = 0.0
    partial_seconds: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position,
                "order": None if self.order is None else np.asarray(self.order),
                "partial_loss": self.partial_loss, "partial_seconds": self.partial_seconds}  # fmt: skip

    def numbers(self) -> dict[str, float]:
        """The scalars by name (sent from rank 0 to the others with the row order)."""
        return {"epoch": self.epoch, "position": self.position, "partial_loss": self.partial_loss,
                "partial_seconds": self.partial_seconds}  # fmt: skip

    def set_numbers(self, numbers: dict[str, float]) -> None:
        """The inverse of :meth:`numbers`."""
        self.epoch, self.position = int(numbers["epoch"]), int(numbers["position"])
        self.partial_loss, self.partial_seconds = float(numbers["partial_loss"]), float(numbers["partial_seconds"])

    def current_order(self) -> np.ndarray:
        """The row order of the epoch under way."""
        if self.order is None:
            raise RuntimeError("no epoch is under way: its row order is made when it begins")
        return self.order

    def load_state_dict(self, state: dict[str, Any], n: int) -> None:
        order = None if state["order"] is None else np.asarray(state["order"])
        if order is not None and order.shape != (n,):
            raise ValueError(f"the checkpoint was made on {order.shape[0]} training rows, this data has {n}")
        self.epoch, self.position, self.order = int(state["epoch"]), int(state["position"]), order
        self.partial_loss = float(state["partial_loss"])
        self.partial_seconds = float(state["partial_seconds"])


def state_of(trainer: Any) -> dict[str, Any]:
    """Everything needed to continue exactly where ``trainer`` is (NumPy/JSON values): its settings,
    progress, early stopping, RNG, optimiser buffers (per parameter, [W_1, b_1, …], as in the model
    file) and history."""
    store, opt = trainer.store, trainer.optimizer
    optimizer = opt.state_dict()
    for slot in opt.slots:
        optimizer[slot] = store.pieces(optimizer[slot])
    return {
        "settings": trainer.settings.as_dict(),
        **trainer.progress.state_dict(),
        **trainer.stopping.state_dict(),
        "rng": trainer.net.rng.bit_generator.state,
        "optimizer": optimizer,
        "history": {k: list(v) for k, v in trainer.history.items()},
    }


def load_state(trainer: Any, state: dict[str, Any]) -> None:
    """The inverse of :func:`state_of` (the settings are the trainer's own)."""
    store, opt = trainer.store, trainer.optimizer
    trainer.progress.load_state_dict(state, trainer.data.n)
    trainer.stopping.load_state_dict(state)
    trainer.net.rng.bit_generator.state = state["rng"]
    optimizer = {"t": state["optimizer"]["t"]}
    for slot in opt.slots:  # [W_1, b_1, …] from the file into θ's flat layout
        optimizer[slot] = flat = np.empty(store.size, store.dtype)
        store.assign(flat, state["optimizer"][slot], device=False)
    opt.load_state_dict(optimizer)
    for key in trainer.history:
        trainer.history[key][:] = state["history"].get(key, [])


def save_checkpoint(trainer: Any, path: str, meta: dict[str, Any] | None = None,
                    arrays: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write ``trainer``'s network (as ``net.save`` does) and its state to ``path``, atomically."""
    state, state_arrays = pack_state(trainer.state_dict())
    state["data"] = trainer.data.fingerprint()  # restore refuses other rows
    if trainer.data.sample_weight is not None:  # part of the run: resume weights the rows the same way
        state_arrays["sample_weight"] = trainer.data.sample_weight
    save_model(trainer.net, path, meta={**(meta or {}), "trainer": state},
               arrays={**(arrays or {}), **state_arrays})  # fmt: skip


def read_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config, parameters, meta, extra arrays) of the training checkpoint at ``path``."""
    config, params, meta, extra = read_file(path)
    if "trainer" not in meta:
        raise ValueError(f"{path} is a model but not a training checkpoint (no training state)")
    state = meta["trainer"]
    if "data" not in state or "_arrays" not in state.get("optimizer", {}):
        # layouts of earlier gpubp versions (no rows' fingerprint, per-parameter optimiser lists): their
        # run cannot be shown to continue exactly, so it is refused; the weights still load as a model
        raise ValueError(f"{path} is a training checkpoint from an earlier gpubp (no fingerprint of its rows "
                         "or an older layout of the optimiser's state): it cannot be resumed; load it as a "
                         "model with gpubp.load, or start a new run")  # fmt: skip
    return config, params, meta, extra


#: what a network must share with a checkpoint to continue its run (its seed and initialiser are spent)
RUN_CONFIG = ("activation", "output", "loss", "dtype")


def _first_difference(config: dict[str, Any], settings: dict[str, Any], net: Any, mine: TrainSettings) -> str | None:
    """ "NAME SAVED differs from this trainer's MINE" for the first of the network's config (RUN_CONFIG) and the
    training settings where the checkpoint and the trainer differ; None when they agree."""
    here_config = net.config()
    pairs = [(k, config.get(k), here_config[k]) for k in RUN_CONFIG]
    here_settings = mine.as_dict()
    pairs += [(k, settings.get(k), v) for k, v in here_settings.items()]
    for name, saved, here in pairs:
        if saved != here:
            return f"{name} {saved!r} differs from this trainer's {here!r}"
    return None


def restore_checkpoint(trainer: Any, path: str) -> None:
    """Continue ``trainer`` from the checkpoint at ``path``: its weights (copied into the network's
    arrays) and training state. The network (its sizes, activations, loss and dtype), the training
    settings, the training rows and their weights must match the checkpoint's; nothing is loaded otherwise."""
    config, params, meta, extra = read_checkpoint(path)
    net = trainer.net
    if config["sizes"] != list(net.sizes):
        raise ValueError(f"{path} holds a {config['sizes']} network, this trainer's is {list(net.sizes)}")
    difference = _first_difference(config, meta["trainer"].get("settings", {}), net, trainer.settings)
    if difference is not None:
        raise ValueError(f"{path}: {difference}: a checkpoint continues its own run (make the trainer with "
                         "the checkpoint's network and settings, or use Trainer.resume, which reads them)")  # fmt: skip
    saved_rows, my_rows = meta["trainer"].get("data"), trainer.data.fingerprint()
    if saved_rows != my_rows:
        raise ValueError(f"{path} was trained on other rows (fingerprint {saved_rows}), this trainer has "
                         f"{my_rows}: resuming would change the run; pass the same X and Y")  # fmt: skip
    saved_w, mine = extra.get("sample_weight"), trainer.data.sample_weight
    if (saved_w is None) != (mine is None) or (saved_w is not None and not np.array_equal(saved_w, mine)):
        saved = "its own sample weights" if saved_w is not None else "no sample weights"
        here = "other sample weights" if mine is not None else "none"
        raise ValueError(f"{path} was trained with {saved}, this trainer has {here}: resuming would "
                         "change the run (pass the same sample_weight, or use Trainer.resume, which "
                         "reads them from the file)")  # fmt: skip
    L = net.L
    net.params.set([params[f"W_{l}"] for l in range(1, L + 1)], [params[f"b_{l}"] for l in range(1, L + 1)])
    trainer.load_state_dict(unpack_state(meta["trainer"], extra))
