"""gpubp: feed-forward networks trained by hand-written batched backprop, on CuPy or NumPy."""

from .backend import devices
from .gradcheck import gradcheck
from .model import Model, load
from .network import MLP
from .training import TrainingDivergedError

__version__ = "0.1.0"
__all__ = ["MLP", "Model", "TrainingDivergedError", "devices", "gradcheck", "load"]
