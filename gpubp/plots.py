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


def _pyplot() -> Any:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> None:
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"plot path must end in .png, got {path}")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


def learning_curves(history: dict[str, list], path: str, gradients: dict[str, list] | None = None) -> None:
    """Loss (train and validation) and validation accuracy or R² per epoch; with ``gradients`` (a
    :class:`gpubp.monitor.GradientStats` history) a panel of each layer's ‖∂L/∂W_l‖ and mean |Δ_l|."""
    plt = _pyplot()
    metric = "val_accuracy" if "val_accuracy" in history else ("val_r2" if "val_r2" in history else None)
    has_grads = bool(gradients and gradients.get("epoch"))
    panels = 1 + bool(metric) + has_grads
    fig, axes = plt.subplots(1, panels, figsize=(5.5 + 4.5 * (panels - 1), 4))
    axes = list(np.atleast_1d(axes))
    epochs = history["epoch"]
    ax = axes.pop(0)
    ax.plot(epochs, history["train_loss"], marker="o", ms=3, label="train")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], marker="o", ms=3, label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    if metric:
        ax = axes.pop(0)
        values = np.asarray(history[metric]) * (100 if metric == "val_accuracy" else 1)
        ax.plot(epochs, values, marker="o", ms=3, color="tab:green", label="validation")
        ax.set(xlabel="epoch", ylabel="accuracy (%)" if metric == "val_accuracy" else "R²",
               title="validation accuracy" if metric == "val_accuracy" else "validation R²")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
    if has_grads and gradients is not None:
        _gradient_panel(axes.pop(0), gradients)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _gradient_panel(ax: Any, gradients: dict[str, list]) -> None:
    """Per layer l (one colour each): ‖∂L/∂W_l‖ solid, mean |Δ_l| dashed, on a log scale, so the δ
    recursion's shrinking (or not) from the output layer down is visible."""
    epochs = gradients["epoch"]
    W = np.asarray(gradients["W_norm"])  # (epochs, L)
    delta = np.asarray(gradients["delta_mean_abs"])
    colours = _layer_colours(W.shape[1])
    for l in range(W.shape[1]):
        ax.plot(epochs, W[:, l], color=colours[l], marker="o", ms=3, label=f"‖∂L/∂W_{l + 1}‖")
        ax.plot(epochs, delta[:, l], color=colours[l], ls="--", label=f"mean |Δ_{l + 1}|")
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="mean over the epoch's batches", title="per-layer gradients (δ recursion)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)


def _layer_colours(L: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.85 * l / max(L - 1, 1)) for l in range(L)]


def confusion_matrix(cm: np.ndarray, classes: list[str], path: str) -> None:
    """Counts with true classes as rows and predictions as columns.

    The figure grows with the class count (a fixed size per cell, never below a readable minimum),
    so counts and labels keep their size at 3 classes and at 26; long labels are turned on the x axis.
    """
    plt = _pyplot()
    k = len(classes)
    cm = np.asarray(cm)
    digits = len(str(int(cm.max()))) if cm.size else 1
    cell = max(0.42, 0.12 * digits + 0.1)  # inches: room for the widest count at 8 pt
    longest = max((len(c) for c in classes), default=1)
    turn = longest > 3  # wider than a cell at 9 pt: turned, so that neighbours never overlap
    margin = 0.8 + 0.07 * min(longest, 30)  # room for the y labels (and the turned x labels)
    side = max(2.5, cell * k)
    fig, ax = plt.subplots(figsize=(side + margin + 1.0, side + (margin if turn else 0.6) + 0.5))
    im = ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title="confusion matrix")
    ax.set_xticklabels(classes, rotation=90 if turn else 0)
    ax.set_yticklabels(classes)
    ax.tick_params(labelsize=9)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
