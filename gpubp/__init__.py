"""gpubp: feed-forward networks trained by hand-written batched backprop, on CuPy or NumPy."""

from .backend import devices
from .gradcheck import gradcheck
from .model import Model, load
from .network import MLP
from .training import TrainingDivergedError

__version__ = "0.1.0"
__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "Model", "TrainingDivergedError", "devices", "gradcheck", "load"]


def __getattr__(name: str):
    # the scikit-learn estimators load scikit-learn, so only when asked for
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import sklearn

        return getattr(sklearn, name)
    raise AttributeError(f"module 'gpubp' has no attribute {name!r}")
