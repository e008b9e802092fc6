"""Pictures: learning curves and confusion matrices as PNG (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._io import atomic_write

INSTALL_HINT = "plots need matplotlib: pip install 'gpubp[plot]'"


def require_matplotlib() -> None:
    """Raise a RuntimeError that says how to install matplotlib, if it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> None:
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"plot path must end in .png, got {path}")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


def learning_curves(history: dict[str, list], path: str) -> None:
    """Loss (train and validation) and validation accuracy or R² per epoch."""
    plt = _pyplot()
    metric = "val_accuracy" if "val_accuracy" in history else ("val_r2" if "val_r2" in history else None)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(10 if metric else 5.5, 4))
    axes = np.atleast_1d(axes)
    epochs = history["epoch"]
    ax = axes[0]
    ax.plot(epochs, history["train_loss"], marker="o", ms=3, label="train")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], marker="o", ms=3, label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    if metric:
        ax = axes[1]
        values = np.asarray(history[metric]) * (100 if metric == "val_accuracy" else 1)
        ax.plot(epochs, values, marker="o", ms=3, color="tab:green", label="validation")
        ax.set(xlabel="epoch", ylabel="accuracy (%)" if metric == "val_accuracy" else "R²",
               title="validation accuracy" if metric == "val_accuracy" else "validation R²")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def confusion_matrix(cm: np.ndarray, classes: list[str], path: str) -> None:
    """Counts with true classes as rows and predictions as columns."""
    plt = _pyplot()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.55 * k))
    im = ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(k), yticks=range(k), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="confusion matrix")  # fmt: skip
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
