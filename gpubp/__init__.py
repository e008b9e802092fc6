"""gpubp: feed-forward networks trained by hand-written batched backprop, on CuPy or NumPy."""

import sys
import types
from importlib import import_module

from .backend import devices
from .network import MLP

__version__ = "0.1.0"
__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "Model", "TrainingDivergedError", "devices", "gradcheck", "load"]

# the rest only when asked for: ``import gpubp.network`` (which runs this file) then loads nothing above
# the network (no files, no training loop), and the scikit-learn estimators load scikit-learn
_LAZY = {"gradcheck": "gradcheck", "Model": "model", "load": "model", "TrainingDivergedError": "training",
         "MLPClassifier": "sklearn", "MLPRegressor": "sklearn"}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gpubp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """``gpubp.gradcheck`` is the function even after its module ``gpubp.gradcheck`` is imported (the import
    system binds a submodule's name on its package; the module stays in ``sys.modules``)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
