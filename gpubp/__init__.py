"""gpubp: feed-forward networks trained by hand-written batched backprop, on CuPy or NumPy."""

from .backend import devices
from .checkpoint import load
from .gradcheck import gradcheck
from .network import MLP
from .training import TrainingDivergedError

__version__ = "0.1.0"
__all__ = ["MLP", "TrainingDivergedError", "devices", "gradcheck", "load"]
