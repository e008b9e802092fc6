"""Model: a trained network together with its preprocessing, as ``gpubp train`` saves it.

``gpubp.load`` returns a :class:`Model` for a file that holds preprocessing (feature scaler, class
labels, regression target scaling, the data columns), so that predictions from raw rows are the
command's predictions; ``model.net`` is the bare :class:`~gpubp.network.MLP` (lecture-level API:
``forward``, ``trace``, ``loss_and_gradients`` on already-scaled rows). A file saved by
``net.save`` has no preprocessing and loads as the bare network.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from .checkpoint import read_file, save_model
from .columns import Columns, match
from .data import Scaler
from .labels import Labels, class_index
from .metrics import accuracy, r2_score
from .network import MLP
from .network import load as load_network
from .rows import chunk_rows, chunks, is_row_source
from .tables import Table

log = logging.getLogger("gpubp")


class BareNetworkError(ValueError):
    """The file holds a network without preprocessing (saved by ``net.save``): load it with ``gpubp.load``."""


def preprocessing(settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[Scaler, Labels | None,
                                                                                    Scaler | None]:  # fmt: skip
    """(feature scaler, class labels or None, regression target scaling or None) as a model file
    stores them: the one reading of them, for loading a model and resuming its training."""
    scaler = Scaler.from_arrays(settings["scale"], arrays)
    labels = Labels(arrays["classes"]) if "classes" in arrays else None
    target = Scaler.from_arrays("standard", arrays, "target") if "target_shift" in arrays else None
    return scaler, labels, target


class Model:
    """``net`` with the ``scaler`` its inputs went through, the ``labels`` its outputs stand for
    (classifiers) or the ``target`` scaling of its output (regression). Every method takes raw rows,
    as they are in the data file (shape (n, d)), and returns NumPy arrays."""

    def __init__(self, net: MLP, scaler: Scaler, labels: Labels | None = None, target: Scaler | None = None,
                 settings: dict[str, Any] | None = None,
                 row_hashes: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
        self.net = net
        self.scaler = scaler
        self.labels = labels
        self.target = target
        self.settings = dict(settings or {})
        # gpubp.data.row_hashes of the rows held out from training ("heldout") and of the training
        # and validation rows ("trained"): which rows of a file are which, by content; {} when unknown
        self.row_hashes = dict(row_hashes or {})

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

    @property
    def columns(self) -> Columns:
        """The columns the model was trained on (feature names in input order, the label's name)."""
        return Columns.from_settings(self.settings, self.net.sizes[0])

    @property
    def feature_names(self) -> list[str]:
        """The names of the raw columns the model reads, in the order :meth:`encode` takes them
        (``x0, x1, …`` when the data had none); a table's network inputs are ``table.features``."""
        return list(self.columns.features)

    @property
    def table(self) -> Table | None:
        """How the raw columns become the network's inputs (a CSV-trained model's
        :class:`~gpubp.tables.Table`: categories one-hot, missing cells filled), or None."""
        stored = self.settings.get("table")
        return None if stored is None else Table.from_dict(stored)

    def encode(self, frame: Any, source: str = "X", first_line: int = 1) -> tuple[np.ndarray, list[str]]:
        """(the network's input columns before scaling (n, width) float64, notes for the log) of a
        DataFrame of the model's raw columns in the model's order (:attr:`columns`), by the rules
        stored at training; a model without a table takes them as numbers."""
        table = self.table
        if table is None:
            return frame.to_numpy(dtype=np.float64), []
        X, notes = table.transform(frame, source, first_line)
        return X, notes

    def outputs(self, X: Any, encoded: bool = False) -> np.ndarray:
        """The network's outputs (n, k) for raw rows, on the host, float64. ``X``: a DataFrame (its
        columns matched by name to the model's, in any order; a label or other extra column is
        ignored and named in the log; a missing one is refused), a CSV file's path (read as
        ``gpubp predict`` reads it), or rows without names of exactly the model's raw columns
        (text, NaN and all, for a model with a table). ``encoded``: ``X`` is already
        :meth:`encode`'s output. A row source (a memory-mapped file, a :class:`~gpubp.data.Rows`
        view) is read and scaled a chunk at a time."""
        if isinstance(X, (str, os.PathLike)):
            X = self._from_file(os.fspath(X))
        elif hasattr(X, "columns") and hasattr(X, "iloc"):
            X = self._by_name(X)
        elif not encoded and self.table is not None and not self.table.identity:
            X = self._unnamed(X)
        if not is_row_source(X):
            return self._outputs(np.asarray(X))
        step = chunk_rows(X.shape[1], 8)
        return np.concatenate([self._outputs(np.asarray(X[part]), part.start) for part in chunks(len(X), step)])

    def _encoded(self, frame: Any, source: str, first_line: int = 1) -> np.ndarray:
        X, notes = self.encode(frame, source, first_line)
        for note in notes:
            log.info("%s", note)
        return X

    def _by_name(self, frame: Any) -> np.ndarray:
        """A DataFrame's feature columns in the model's order, matched by ``str(name)`` stripped of
        spaces, as the command reads a header (pandas' integer names 0, 1, … match '0', '1', …)."""
        names = [str(c).strip() for c in frame.columns]
        chosen = match(self.columns, names, None, "X", frame.shape[1])
        ignored = chosen.extra + ([names[chosen.label]] if chosen.label is not None else [])
        if ignored:
            log.info("columns not among the model's features, ignored: %s", ", ".join(ignored))
        return self._encoded(frame.iloc[:, chosen.features], "X")

    def _unnamed(self, X: Any) -> np.ndarray:
        """Rows without names of a model with a table: its raw columns, by position."""
        import pandas as pd

        X = np.asarray(X, dtype=object)
        inputs = self.columns.features
        if X.ndim != 2 or X.shape[1] != len(inputs):
            raise ValueError(f"X has shape {X.shape}; the model reads {len(inputs)} raw columns "
                             f"({', '.join(inputs[:8])}{', …' if len(inputs) > 8 else ''}): pass a DataFrame "
                             "with those columns, or an array of them in that order")  # fmt: skip
        frame = pd.DataFrame(X, columns=list(inputs)).infer_objects()
        return self._encoded(frame, "X")

    def _from_file(self, path: str) -> np.ndarray:
        from .loaders import SAME_NUMBERS, is_csv, load_data, read_options  # the file reader, only for a path

        # as `gpubp predict` reads another CSV: its numbers written as the model's file's were (decimal
        # mark, thousands, encoding), its delimiter and header detected; the columns by the model's rules
        stored = read_options(self.settings)
        options = {k: stored[k] for k in SAME_NUMBERS} if is_csv(path) else {}
        raw = load_data(path, columns=self.columns, labels=False, table=self.table, **options)
        if raw.frame is None:
            return raw.X
        return self._encoded(raw.frame, raw.source, raw.first_line)

    def _outputs(self, X: np.ndarray, first_row: int = 0) -> np.ndarray:
        if X.ndim != 2:
            one = " (one row: X.reshape(1, -1))" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D, rows × {self.net.sizes[0]} features, got shape {X.shape}{one}")
        if X.shape[1] != self.net.sizes[0]:
            label = self.columns.label_index
            hint = (f" (the label column {label} still in? drop it, or pass a DataFrame: its columns are matched "
                    "by name)" if label is not None and X.shape[1] == self.net.sizes[0] + 1 else "")  # fmt: skip
            raise ValueError(f"X has {X.shape[1]} columns, the model was trained on {self.net.sizes[0]} "
                             f"features{hint}")  # fmt: skip
        X = np.asarray(X, dtype=np.float64)
        Z = self.scaler.transform(X)
        self._check_holds(X, Z, first_row)
        return np.asarray(self.net.device.to_host(self.net.forward(Z)), dtype=np.float64)

    def _check_holds(self, X: np.ndarray, Z: np.ndarray, first_row: int) -> None:
        """Refuse (ValueError) a value the network's dtype cannot hold, as read or once scaled, or an infinite
        one, as training refuses it: its outputs would be nonsense given quietly (1e39 in float32 answered
        p = 1, and the ONNX graph, which reads float32, another class)."""
        big = float(np.finfo(self.net.dtype).max)
        with np.errstate(invalid="ignore"):
            bad = np.isinf(X) | (np.isfinite(X) & ~((np.abs(X) <= big) & (np.abs(Z) <= big)))
        if not bad.any():
            return
        i, j = (int(k[0]) for k in np.nonzero(bad))
        names = self.table.features if self.table is not None else self.columns.features
        what = "is infinite" if np.isinf(X[i, j]) else f"is too large for the model's {self.net.dtype}"
        raise ValueError(f"row {first_row + i + 1} (counting from 1), column {names[j]!r}: {X[i, j]:g} {what}, as "
                         "training would refuse it")  # fmt: skip

    @property
    def gives_probabilities(self) -> bool:
        """Whether the outputs are probabilities: a softmax's or sigmoids' (not an identity output)."""
        return self.net.output in ("softmax", "sigmoid")

    def predict(self, X: Any, encoded: bool = False) -> np.ndarray:
        """Class labels (as in the training data) or regression values (in the target's units), for
        the rows :meth:`outputs` takes."""
        A = self.outputs(X, encoded)
        if self.labels is not None:
            return self.labels.predict(A)  # the class decision of gpubp.labels, as the estimators'
        return self._unscale(A)[:, 0] if A.shape[1] == 1 else self._unscale(A)

    def predict_proba(self, X: Any, encoded: bool = False) -> np.ndarray:
        """(n, classes) probabilities, columns in the order of ``labels.classes``."""
        if self.labels is None:
            raise ValueError("predict_proba needs a classifier; this model regresses")
        A = self.outputs(X, encoded)
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

    def to_onnx(self, path: str | os.PathLike[str] | None = None) -> Any:
        """This model as one ONNX graph: raw float32 rows (N, d) in; ``label`` and ``probabilities``
        (classifiers) or ``value`` (regression) out, as :meth:`predict` and :meth:`predict_proba`.
        Written to ``path`` when given; the ``onnx.ModelProto`` is returned. Needs
        ``pip install 'gpubp[onnx]'``; see gpubp.export."""
        from .export import model_to_onnx  # a tool above the model, reached only when asked

        return model_to_onnx(self, path)

    def _unscale(self, A: np.ndarray) -> np.ndarray:
        return A if self.target is None else self.target.inverse(A)

    def arrays(self) -> dict[str, np.ndarray]:
        """The preprocessing as named arrays (as stored in the model file)."""
        out = dict(self.scaler.arrays())
        if self.labels is not None:
            out["classes"] = self.labels.classes
        if self.target is not None:
            out.update(self.target.arrays("target"))
        out.update({f"{k}_row_hashes": v for k, v in self.row_hashes.items()})
        return out

    def save(self, path: str | os.PathLike[str], meta: dict[str, Any] | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
        """Write the network and its preprocessing (atomically)."""
        save_model(self.net, path, meta={"cli": self.settings, **(meta or {})},
                   arrays={**self.arrays(), **(arrays or {})})  # fmt: skip

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], device: str | None = "auto") -> Model:
        """A model with preprocessing; ``ValueError`` when the file has none (saved by ``net.save``)."""
        _, _, meta, extra = read_file(path)
        settings = meta.get("cli")
        if settings is None or "scaler_shift" not in extra:
            raise BareNetworkError(f"{os.fspath(path)} holds a bare network (no scaler or classes): load it with "
                                   "gpubp.load")  # fmt: skip
        net = load_network(path, device=device)
        hashes = {k: extra[f"{k}_row_hashes"] for k in ("heldout", "trained") if f"{k}_row_hashes" in extra}
        return cls(net, *preprocessing(settings, extra), settings, hashes)


def load(path: str | os.PathLike[str], device: str | None = "auto") -> MLP | Model:
    """What ``path`` holds, on ``device``: a :class:`Model` (network + preprocessing) for files
    written by ``gpubp train`` (or ``Model.save``), the bare :class:`MLP` for ``net.save`` files."""
    _, _, meta, extra = read_file(path)
    if "cli" in meta and "scaler_shift" in extra:
        return Model.from_file(path, device)
    return load_network(path, device)
