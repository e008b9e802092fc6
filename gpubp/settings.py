"""The training settings: one frozen dataclass, checked once, with every default in one place.

``MLP.fit``, ``Trainer``, ``make_trainer`` (which compares the settings across ranks), a training
checkpoint (which stores them) and ``gpubp train`` (whose own defaults are at the end of this file)
all read them from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .optim import OPTIMIZERS
from .validation import check_bool, check_choice, check_float, check_int

#: epochs of ``MLP.fit`` when none are given
EPOCHS = 10

#: The numeric settings' limits, (low, high, closed) as scikit-learn's ``Interval`` reads them (closed:
#: "left", "right", "both" or "neither"; high None is unbounded): the one source for TrainSettings, the
#: estimators' parameter constraints and the command's options. ``betas`` holds for each of the pair.
LIMITS: dict[str, tuple[float, float | None, str]] = {
    "lr": (0.0, None, "neither"),
    "momentum": (0.0, 1.0, "both"),  # scikit-learn accepts μ = 1 (no damping), so does gpubp
    "weight_decay": (0.0, None, "left"),
    "betas": (0.0, 1.0, "left"),
    "eps": (0.0, None, "neither"),
}


def check_limit(name: str, value: Any, limit: str | None = None) -> float:
    """``value`` checked against ``LIMITS[limit or name]``, named ``name`` in the message."""
    low, high, closed = LIMITS[limit or name]
    return check_float(name, value, minimum=low, inclusive=closed in ("left", "both"), maximum=high,
                       maximum_inclusive=closed in ("right", "both"))  # fmt: skip


@dataclass(frozen=True)
class TrainSettings:
    """How a network is trained (the data, epochs and callbacks are the run's, not settings).

    The defaults follow the lecture: plain minibatch SGD, η = 0.1, no momentum, no weight decay.
    ``momentum``/``nesterov`` apply to SGD only. ``weight_decay`` λ adds λW to the weights' gradient
    (never the biases'); with ``decay_mean`` λ is divided by each batch's size (its weight sum with
    sample weights), scikit-learn's alpha. ``patience`` (needs validation data) stops after that
    many epochs without a lower validation loss and restores the best weights; ``keep_best`` ends
    every run with validation data on its best epoch's weights, as ``patience`` does. ``betas``, ``eps``
    and ``eps_before_correction`` are Adam's: ε after the bias correction of √v (PyTorch) or before
    it (scikit-learn). ``class_weight`` (classifiers): ``"balanced"`` weighs each row by
    n / (classes × rows of its class), scikit-learn's formula, or ``{class index: weight}`` (a class
    not named weighs 1); each row's weight multiplies its sample weight (:func:`class_row_weights`).
    """

    batch_size: int = 32
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    shuffle: bool = True
    patience: int | None = None
    keep_best: bool = False
    decay_mean: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    eps_before_correction: bool = False
    class_weight: str | tuple[tuple[int, float], ...] | None = None

    def __post_init__(self) -> None:
        checked = {
            "batch_size": check_int("batch_size", self.batch_size),
            "lr": check_limit("lr", self.lr),
            "optimizer": check_choice("optimizer", self.optimizer, OPTIMIZERS),
            "momentum": check_limit("momentum", self.momentum),
            "nesterov": check_bool("nesterov", self.nesterov),
            "weight_decay": check_limit("weight_decay", self.weight_decay),
            "shuffle": check_bool("shuffle", self.shuffle),
            "patience": None if self.patience is None else check_int("patience", self.patience),
            "keep_best": check_bool("keep_best", self.keep_best),
            "decay_mean": check_bool("decay_mean", self.decay_mean),
            "betas": _betas(self.betas),
            "eps": check_limit("eps", self.eps),
            "eps_before_correction": check_bool("eps_before_correction", self.eps_before_correction),
            "class_weight": _class_weight(self.class_weight),
        }
        if checked["nesterov"] and checked["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0 (as in torch.optim.SGD)")
        if checked["optimizer"] == "adam" and (checked["momentum"] or checked["nesterov"]):
            raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam has its own moments")
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @classmethod
    def of(cls, settings: TrainSettings | None = None, **options: Any) -> TrainSettings:
        """``settings`` (default: the defaults) with ``options`` changed; an unknown name is a TypeError."""
        unknown = sorted(set(options) - set(NAMES))
        if unknown:
            raise TypeError(f"unknown training setting(s) {', '.join(unknown)}: expected {', '.join(NAMES)}")
        if settings is not None and not isinstance(settings, TrainSettings):
            raise TypeError(f"settings must be a TrainSettings, got {type(settings).__name__}")
        return dataclasses.replace(settings or cls(), **options)

    def replace(self, **options: Any) -> TrainSettings:
        """A copy with ``options`` changed (checked again)."""
        return TrainSettings.of(self, **options)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON values (a training checkpoint stores them; ``TrainSettings(**d)`` reads them)."""
        return {**dataclasses.asdict(self), "betas": list(self.betas)}

    def as_numbers(self) -> dict[str, float]:
        """Every setting as one number (None as -1, the optimiser by its index), for comparing across ranks."""
        values = dataclasses.asdict(self)
        values["optimizer"] = OPTIMIZERS.index(self.optimizer)
        values["patience"] = -1 if self.patience is None else self.patience
        values["class_weight"] = _class_weight_number(self.class_weight)
        beta1, beta2 = values.pop("betas")
        return {**values, "beta1": beta1, "beta2": beta2}


NAMES = tuple(f.name for f in dataclasses.fields(TrainSettings))


def _betas(value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    return (check_limit("betas[0]", value[0], "betas"), check_limit("betas[1]", value[1], "betas"))


def _class_weight(value: Any) -> str | tuple[tuple[int, float], ...] | None:
    """None, "balanced", or {class index: weight} (also as pairs, as a checkpoint's JSON holds it)
    as sorted (index, weight) pairs."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "balanced":
            return value
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{class index: weight}}, got {value!r}")
    pairs = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(k, w) for k, w in pairs]
    except (TypeError, ValueError):
        raise TypeError(f"class_weight must be None, 'balanced' or a dict {{class index: weight}}, got "
                        f"{type(value).__name__} {value!r}") from None  # fmt: skip
    out = {}
    for k, w in pairs:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise TypeError(f"class_weight's keys are class indices (integers >= 0), got {k!r}")
        out[int(k)] = check_float(f"class_weight[{k}]", w)
    return tuple(sorted(out.items()))


def _class_weight_number(value: str | tuple[tuple[int, float], ...] | None) -> float:
    """The class weights as one number, to compare across ranks: -1 None, -2 balanced, else a digest."""
    if value is None or value == "balanced":
        return -1.0 if value is None else -2.0
    return float(int(hashlib.sha256(repr(value).encode()).hexdigest()[:12], 16))


def class_row_weights(class_weight: str | tuple[tuple[int, float], ...] | None, y: np.ndarray, n_classes: int,
                      sample_weight: np.ndarray | None = None) -> np.ndarray | None:  # fmt: skip
    """Each row's weight (n,) from its class index ``y`` (n,) in 0..n_classes-1: "balanced" gives
    n / (classes present × rows of the class), scikit-learn's compute_class_weight (rows counted by
    their ``sample_weight`` when given, as scikit-learn >= 1.8 counts them); pairs (index, weight)
    give that weight, 1 to a class not named. None: no class weights."""
    if class_weight is None:
        return None
    y = np.asarray(y, dtype=np.int64)
    if isinstance(class_weight, str):  # "balanced", the one name TrainSettings lets through
        counts = np.bincount(y, weights=sample_weight, minlength=n_classes).astype(np.float64)
        present = int((np.bincount(y, minlength=n_classes) > 0).sum())
        per_class = np.divide(counts.sum(), present * counts, out=np.zeros(n_classes), where=counts > 0)
    else:
        per_class = np.ones(n_classes)
        for k, w in class_weight:
            if k >= n_classes:
                raise ValueError(f"class_weight names class index {k}, and the targets have {n_classes} classes "
                                 f"(indices 0..{n_classes - 1})")  # fmt: skip
            per_class[k] = w
    rows: np.ndarray = per_class[y]
    return rows


# -- ``gpubp train``'s defaults --------------------------------------------------------------------
# The command trains real data sets out of the box, so it differs from the library on purpose in three
# settings: 30 epochs (not 10); SGD with momentum 0.9 (the library's plain SGD follows the lecture);
# and η by task, 0.05 for classification (not 0.1: with momentum 0.9 the effective step is 10η), as
# measured on the embedded digits and a regression CSV (docs/): squared error has no softmax to bound
# the output delta, so it needs a smaller step than cross-entropy. Everything else is the library's.
# --task regress trains with Adam, η 0.003 and weight decay 0.01 for 100 epochs, keeping the best
# validation epoch (as every run with validation rows does): on diabetes and make_regression this
# reaches RidgeCV's test R² minus 0.05 for split seeds 0-3 (tests/test_regression_defaults.py), where
# SGD at 0.01 for 30 epochs, keeping the last, had ended at R² -0.25 on diabetes.

COMMAND_EPOCHS = 30
COMMAND_MOMENTUM = 0.9
# A CSV table classified with cross-entropy or bce trains with Adam at η 0.001, as scikit-learn's
# MLPClassifier does: on real tables with categories and missing cells (benchmarks/bench_tables.py,
# benchmarks/RESULTS.md "real tables") SGD at 0.05 with momentum 0.9 fell 0.02-0.03 below scikit-learn's
# pipelines on Pima.tr2 and Males, and Adam at 0.001 did not; the digits and other arrays keep SGD.

COMMAND_LR = {"classify": 0.05, "classify-mse": 0.002, "regress": 0.01, "regress-adam": 0.003,
              "classify-adam": 0.001}  # fmt: skip
COMMAND_REGRESS: dict[str, Any] = {"optimizer": "adam", "epochs": 100, "weight_decay": 0.01}
COMMAND_TABLE: dict[str, Any] = {"optimizer": "adam"}
