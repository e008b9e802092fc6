"""Model: a trained network together with its preprocessing, as ``gpubp train`` saves it.

``gpubp.load`` returns a :class:`Model` for a file that holds preprocessing (feature scaler, class
labels, regression target scaling, the data columns), so that predictions from raw rows are the
command's predictions; ``model.net`` is the bare :class:`~gpubp.network.MLP` (lecture-level API:
``forward``, ``trace``, ``loss_and_gradients`` on already-scaled rows). A file saved by
``net.save`` has no preprocessing and loads as the bare network.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .checkpoint import read_file, save_model
from .data import Scaler
from .labels import Labels, class_index
from .metrics import accuracy, r2_score
from .network import MLP
from .network import load as load_network
from .rows import chunk_rows, chunks, is_row_source


class Model:
    """``net`` with the ``scaler`` its inputs went through, the ``labels`` its outputs stand for
    (classifiers) or the ``target`` scaling of its output (regression). Every method takes raw rows,
    as they are in the data file (shape (n, d)), and returns NumPy arrays."""

    def __init__(self, net: MLP, scaler: Scaler, labels: Labels | None = None, target: Scaler | None = None,
                 settings: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.net = net
        self.scaler = scaler
        self.labels = labels
        self.target = target
        self.settings = dict(settings or {})

    @property
    def task(self) -> str:
        return "classify" if self.labels is not None else "regress"

    # read-only facts of the network; training and the lecture-level calls (fit, forward, trace, ...)
    # take scaled rows and class indices, so they stay on ``model.net``, never reached by accident
    _NETWORK_FACTS = frozenset({"sizes", "history", "device", "dtype", "config", "L", "loss", "activation",
                                "output", "is_classifier", "weights", "biases", "xp"})  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        if name in Model._NETWORK_FACTS and "net" in self.__dict__:
            return getattr(self.net, name)
        raise AttributeError(f"'Model' has no attribute {name!r} (the bare network, on scaled rows: model.net.{name})")

    def __repr__(self) -> str:
        what = f"{len(self.labels)} classes" if self.labels is not None else "regression"
        return f"Model({self.net!r}, scale={self.scaler.kind}, {what})"

    def outputs(self, X: Any) -> np.ndarray:
        """The network's outputs (n, k) for raw rows, on the host, float64. A row source (a
        memory-mapped file, a :class:`~gpubp.data.Rows` view) is read and scaled a chunk at a time.
        A classifier trained on a CSV also takes that file's rows with the label column still in
        (one column more than the features, holding only the model's classes): it is dropped, as
        ``gpubp predict`` does; any other extra column is refused, never guessed away."""
        if not is_row_source(X):
            return self._outputs(np.asarray(X))
        step = chunk_rows(X.shape[1], 8)
        return np.concatenate([self._outputs(np.asarray(X[part])) for part in chunks(len(X), step)])

    def _outputs(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2:
            one = " (one row: X.reshape(1, -1))" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D, rows × {self.net.sizes[0]} features, got shape {X.shape}{one}")
        label = self.settings.get("label_index")
        if (label is not None and self.labels is not None
                and X.shape[1] == self.net.sizes[0] + 1 and 0 <= label < X.shape[1]):  # fmt: skip
            try:
                self.labels.encode(X[:, label])  # the stored label column: only the model's classes
            except (ValueError, TypeError):
                pass  # another column: the width check below names the mismatch
            else:
                X = np.delete(X, label, axis=1)
        if label is not None and self.labels is None and X.shape[1] == self.net.sizes[0] + 1:
            name = self.settings.get("label_column", label)
            raise ValueError(f"data has {X.shape[1]} features, the model was trained on {self.net.sizes[0]}: "
                             f"rows with the target column {name!r} still in? drop column {label} first "
                             f"(a regression target cannot be told from a feature)")  # fmt: skip
        X = np.asarray(X, dtype=np.float64)
        Z = self.scaler.transform(X)
        return np.asarray(self.net.device.to_host(self.net.forward(Z)), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (as in the training data) or regression values (in the target's units)."""
        A = self.outputs(X)
        if self.labels is not None:
            return self.labels.predict(A)  # the class decision of gpubp.labels, as the estimators'
        return self._unscale(A)[:, 0] if A.shape[1] == 1 else self._unscale(A)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, classes) probabilities, columns in the order of ``labels.classes``."""
        if self.labels is None:
            raise ValueError("predict_proba needs a classifier; this model regresses")
        A = self.outputs(X)
        return self.labels.proba(A)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy against labels ``y`` (as in the data file), or R² against raw targets."""
        y = np.asarray(y)
        if self.labels is not None:
            return accuracy(self.labels.encode(y.reshape(-1)), class_index(self.outputs(X)))
        return r2_score(y.reshape(len(y), -1), self.predict(X).reshape(len(y), -1))

    def to(self, device: Any) -> Model:
        """Move the network to ``device`` (in place); returns self."""
        self.net.to(device)
        return self

    def _unscale(self, A: np.ndarray) -> np.ndarray:
        return A if self.target is None else self.target.inverse(A)

    def arrays(self) -> dict[str, np.ndarray]:
        """The preprocessing as named arrays (as stored in the model file)."""
        out = dict(self.scaler.arrays())
        if self.labels is not None:
            out["classes"] = self.labels.classes
        if self.target is not None:
            out.update(self.target.arrays("target"))
        return out

    def save(self, path: str | os.PathLike, meta: dict[str, Any] | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
        """Write the network and its preprocessing (atomically)."""
        save_model(self.net, path, meta={"cli": self.settings, **(meta or {})},
                   arrays={**self.arrays(), **(arrays or {})})  # fmt: skip

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str | None = "auto") -> Model:
        """A model with preprocessing; ``ValueError`` when the file has none (saved by ``net.save``)."""
        _, _, meta, extra = read_file(path)
        settings = meta.get("cli")
        if settings is None or "scaler_shift" not in extra:
            raise ValueError(f"{os.fspath(path)} holds a bare network (no scaler or classes): load it with gpubp.load")
        net = load_network(path, device=device)
        scaler = Scaler.from_arrays(settings["scale"], extra)
        labels = Labels(extra["classes"]) if "classes" in extra else None
        target = Scaler.from_arrays("standard", extra, "target") if "target_shift" in extra else None
        return cls(net, scaler, labels, target, settings)


def load(path: str | os.PathLike, device: str | None = "auto") -> MLP | Model:
    """What ``path`` holds, on ``device``: a :class:`Model` (network + preprocessing) for files
    written by ``gpubp train`` (or ``Model.save``), the bare :class:`MLP` for ``net.save`` files."""
    _, _, meta, extra = read_file(path)
    if "cli" in meta and "scaler_shift" in extra:
        return Model.from_file(path, device)
    return load_network(path, device)
