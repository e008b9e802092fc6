"""Labels: encoding class labels as output indices, decoding them back, and the class decision.

The one place where outputs become classes: :func:`decide` (the library's ``predict``),
:func:`class_index` (one class per row, for scores and the command) and :func:`correct` (the
accuracy count inside ``evaluate``). All take NumPy or CuPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def decide(A: Any, loss: str) -> Any:
    """``predict``'s rule for outputs ``A`` (n, k): cross_entropy → argmax (n,); bce → 0/1 per
    output (n,) for one output, (n, k) multi-label otherwise; mse → ``A`` itself."""
    if loss == "cross_entropy":
        return A.argmax(axis=1)
    if loss == "bce":
        labels = (A > 0.5).astype(np.int64)
        return labels[:, 0] if labels.shape[1] == 1 else labels
    return A


def class_index(A: Any) -> Any:
    """One class index per row of outputs ``A`` (n, k): ``A > 0.5`` for a single sigmoid unit
    (two classes), else the argmax."""
    if A.shape[1] == 1:
        return (A[:, 0] > 0.5).astype(np.int64)
    return A.argmax(axis=1)


def correct(A: Any, Y: Any, loss: str) -> Any:
    """Per row, whether outputs ``A`` decide as targets ``Y`` (one-hot or 0/1 rows) do."""
    if loss == "cross_entropy":
        return A.argmax(axis=1) == Y.argmax(axis=1)
    return ((A > 0.5) == (Y > 0.5)).all(axis=1)


def as_labels(y: Any, source: str = "y") -> np.ndarray:
    """One label per row from targets as files give them: a column, one-hot rows, integer-like
    floats (become int64) or strings. A float target that is not integer-like is refused: it is
    a number to regress on, not a class."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        one_hot = y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        if not one_hot:
            raise ValueError(f"{source}: expected one label per row (or one-hot rows), got shape {y.shape}")
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.dtype.kind == "f":
        fractional = y != np.round(y)
        if fractional.any():
            example = y[np.argmax(fractional)]
            raise ValueError(f"{source}: the target has non-integer values (e.g. {example:g}), so it is not a class "
                             f"label: to predict a number use --task regress (loss mse)")  # fmt: skip
        y = y.astype(np.int64)
    return y


class Labels:
    """The classes a classifier was trained on; output ``i`` stands for ``classes[i]``.

    ``multilabel``: targets are indicator rows (n, k), one 0/1 column per class ``0..k-1``, each
    its own logistic output; otherwise each row has one label."""

    def __init__(self, classes: Any, multilabel: bool = False) -> None:
        self.classes = np.asarray(classes)
        if self.classes.ndim != 1:
            raise ValueError(f"classes must be 1-D, got shape {self.classes.shape}")
        self.multilabel = bool(multilabel)

    @classmethod
    def of(cls, *labels: np.ndarray) -> Labels:
        """The sorted distinct labels found in the given label arrays."""
        return cls(np.unique(np.concatenate([np.asarray(y).reshape(-1) for y in labels])))

    def __len__(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return f"Labels({self.classes.tolist()!r})"

    def encode(self, y: Any, source: str = "y") -> np.ndarray:
        """Output indices (int64) for labels ``y``; a label not among the classes is refused."""
        y = np.asarray(y)
        if self.classes.dtype.kind in "iub" and y.dtype.kind in "iub" and bool(np.all(np.diff(self.classes) > 0)):
            idx = np.searchsorted(self.classes, y)
            idx = np.minimum(idx, len(self.classes) - 1)
            bad = self.classes[idx] != y
            if bad.any():
                raise ValueError(f"{source}: label {y[np.argmax(bad)].item()!r} was not among the model's classes "
                                 f"{self.classes.tolist()}")  # fmt: skip
            return idx.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes.tolist())}
        try:
            return np.fromiter((lookup[c] for c in y.tolist()), dtype=np.int64, count=len(y))
        except KeyError as exc:
            raise ValueError(f"{source}: label {exc.args[0]!r} was not among the model's classes "
                             f"{self.classes.tolist()}") from None  # fmt: skip

    def decode(self, idx: Any) -> np.ndarray:
        """Labels for output indices ``idx``."""
        return self.classes[np.asarray(idx)]

    # -- scikit-learn's convention (its LabelBinarizer), used by gpubp.sklearn ----------------------

    @property
    def n_outputs(self) -> int:
        """Outputs a network needs with :attr:`loss`: :func:`output_count`."""
        return output_count(len(self), self.loss, self.multilabel)

    @property
    def loss(self) -> str:
        """cross_entropy (softmax) for more than two classes, else bce (logistic outputs)."""
        return "bce" if self.multilabel or len(self) <= 2 else "cross_entropy"

    def targets(self, y: Any) -> np.ndarray:
        """What the network trains against for labels ``y``: :func:`targets` of their indices
        (class indices for a softmax, 0/1 for one output), or the indicator rows themselves."""
        if self.multilabel:
            return np.asarray(y)
        idx = self.encode(np.asarray(y).reshape(-1))
        if len(self) == 1:  # one class: its one output is trained towards 0, as scikit-learn's
            idx[:] = 0
        return targets(idx, self.n_outputs, self.loss)

    def predict(self, A: Any) -> np.ndarray:
        """Labels from outputs ``A`` (n, n_outputs), on the host: :func:`class_index` decoded, or
        ``A > 0.5`` per output (n, k) for multilabel targets."""
        A = np.asarray(A)
        if self.multilabel:
            return decide(A, "bce")
        if len(self) == 1:
            return np.repeat(self.classes, A.shape[0])
        return self.decode(class_index(A))

    @staticmethod
    def proba(A: Any) -> np.ndarray:
        """(n, n_classes) probabilities from outputs ``A``: [1 − p, p] for one logistic output,
        else ``A`` itself (a softmax's rows, or each label's own probability)."""
        A = np.asarray(A)
        if A.shape[1] == 1:
            p = A[:, 0]
            return np.stack([1 - p, p], axis=1)
        return A


def output_count(n_classes: int, loss: str, multilabel: bool = False) -> int:
    """Output units for ``n_classes`` trained with ``loss``: one logistic unit for at most two
    classes with bce, one per label for multilabel targets, else one per class."""
    if multilabel:
        return n_classes
    return 1 if loss == "bce" and n_classes <= 2 else n_classes


def targets(y_idx: np.ndarray, n_out: int, loss: str) -> np.ndarray:
    """What a classifier is trained against: class indices for cross_entropy (one-hot rows are
    made per batch), 0/1 for one output, one-hot rows otherwise (bce, mse)."""
    if loss == "cross_entropy":
        return y_idx
    if n_out == 1:
        return y_idx.astype(np.float64)
    return np.eye(n_out)[y_idx]
