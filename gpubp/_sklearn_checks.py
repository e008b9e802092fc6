"""The scikit-learn estimators' input checks: their parameters, X and y as scikit-learn checks them
(a GPU array for a GPU network stays on its GPU), and the classes of the targets."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_y, check_consistent_length, validate_data

from .backend import get_device, gpu_array, is_cupy_array, to_numpy
from .device import has_cuda_array_interface
from .labels import Labels


def host(x: Any) -> Any:
    """``x`` as scikit-learn's checks can read it: a CuPy array copied from its GPU (for a CPU network), an
    object that offers only DLPack (CPU memory: PyTorch, JAX, NumPy-backed) read through ``np.from_dlpack``
    without a copy; anything else as it is (lists, DataFrames, sparse matrices: the checks decide)."""
    if is_cupy_array(x):
        return to_numpy(x)
    if hasattr(x, "__dlpack__") and not hasattr(x, "__array__") and not hasattr(x, "__array_interface__"):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError) as exc:  # e.g. a CUDA array for a CPU network
            raise TypeError(
                f"{type(x).__name__} offers DLPack but NumPy cannot read it ({exc}); a GPU array "
                f"needs device='gpu' (or a copy on the host)"
            ) from exc
    return x


def check_hidden(est: Any) -> list[int]:
    """The estimator's parameters checked (scikit-learn's constraints, lbfgs refused); the hidden widths."""
    if isinstance(est.solver, str) and est.solver == "lbfgs":
        raise ValueError("solver='lbfgs' is not available in gpubp (full-batch L-BFGS is a SciPy routine "
                         "on the CPU); use solver='adam' or solver='sgd', or sklearn.neural_network "
                         "for lbfgs")  # fmt: skip
    est._validate_params()
    hidden = est.hidden_layer_sizes
    hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
    if np.any(np.array(hidden) <= 0):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
    return [int(h) for h in hidden]


def _gpu_X(est: Any, X: Any) -> Any:
    """X as a CuPy array when it is a GPU array and this estimator runs on a GPU, else None."""
    if isinstance(X, np.ndarray) or not (has_cuda_array_interface(X) or hasattr(X, "__dlpack__")):
        return None
    return gpu_array(X, est._net.device if hasattr(est, "_net") else get_device(est.device))


def validate_X(est: Any, X: Any, reset: bool) -> Any:
    """X checked as scikit-learn does (a host array); a GPU array for a GPU network stays there."""
    Xg = _gpu_X(est, X)
    if Xg is None:
        return validate_data(est, host(X), reset=reset, dtype=(np.float64, np.float32))
    return _check_gpu_X(est, Xg, reset)


def validate_Xy(est: Any, X: Any, y: Any, reset: bool, y_numeric: bool) -> tuple[Any, np.ndarray]:
    """X and y checked as scikit-learn does (y on the host); a GPU array X for a GPU network stays there."""
    Xg = _gpu_X(est, X)
    if Xg is None:
        return validate_data(est, host(X), host(y), reset=reset, multi_output=True, y_numeric=y_numeric,
                             dtype=(np.float64, np.float32))  # fmt: skip
    y = _check_y(None if y is None else to_numpy(y), multi_output=True, y_numeric=y_numeric, estimator=est)
    check_consistent_length(Xg, y)
    return _check_gpu_X(est, Xg, reset), y


def _check_gpu_X(est: Any, Xg: Any, reset: bool) -> Any:
    """The checks a GPU array gets without a host copy."""
    if Xg.ndim != 2:
        raise ValueError(f"Expected a 2D array, got an array of shape {Xg.shape}")
    if reset:
        est.n_features_in_ = Xg.shape[1]
    elif Xg.shape[1] != est.n_features_in_:
        raise ValueError(f"X has {Xg.shape[1]} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input")  # fmt: skip
    return Xg


# -- labels: scikit-learn validates the targets; encoding, decoding and the class decision are gpubp.labels' --


def labels_of(y: Any) -> Labels:
    """The classes of labels (any values) or of a multilabel indicator matrix (its columns), as
    scikit-learn's LabelBinarizer finds them: 2 classes → one logistic output, more → softmax,
    multilabel → one logistic output per label."""
    kind = type_of_target(y, input_name="y")
    if "multioutput" in kind:
        raise ValueError("Multioutput target data is not supported with label binarization")
    if kind == "multilabel-indicator":
        return Labels(np.arange(np.shape(y)[1]), multilabel=True)
    return Labels(unique_labels(y))


def check_known_classes(y: Any, classes: np.ndarray, same: bool) -> None:
    """y's classes must equal ``classes`` (warm_start) or lie among them (partial_fit)."""
    found = unique_labels(y)
    if same:
        if set(found) != set(classes):
            raise ValueError(f"warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previously got {classes}, `y` has {found}")  # fmt: skip
    elif len(np.setdiff1d(found, classes, assume_unique=True)):
        raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {classes}. 'y' has {found}.")
