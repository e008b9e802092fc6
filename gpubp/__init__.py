"""gpubp: feed-forward networks trained by hand-written batched backprop, on CuPy or NumPy.

The public names are imported on first use, so ``import gpubp`` loads no NumPy: the command can
catch a Ctrl-C from its first instant on (no traceback while NumPy loads), ``import gpubp.network``
(which runs this file) loads nothing above the network, and the scikit-learn estimators load
scikit-learn only when asked for.
"""

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "Model", "TrainingDivergedError", "devices", "gradcheck", "load"]

# each public name and the module that defines it
_LAZY = {"MLP": "network", "devices": "backend", "gradcheck": "gradcheck", "Model": "model", "load": "model",
         "TrainingDivergedError": "training", "MLPClassifier": "sklearn", "MLPRegressor": "sklearn"}  # fmt: skip

if TYPE_CHECKING:
    from .backend import devices
    from .gradcheck import gradcheck
    from .model import Model, load
    from .network import MLP
    from .sklearn import MLPClassifier, MLPRegressor
    from .training import TrainingDivergedError


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    try:  # a submodule, as `gpubp.data` was reachable when this file imported everything
        return import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
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
