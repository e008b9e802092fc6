"""Losses, per example and averaged over the minibatch.

- ``mse``: ½ Σ_j (y_j − a_j)², with any output activation.
- ``cross_entropy``: −Σ_j y_j log a_j, with a softmax output.
- ``bce``: −Σ_j [y_j log a_j + (1 − y_j) log(1 − a_j)], with a sigmoid output.

For the matched pairs (softmax + cross_entropy, sigmoid + bce, identity + mse), g'(Z_L) cancels
against the loss derivative and Δ_L = (A_L − Y)/B exactly; otherwise (mse with another output)
Δ_L = (A_L − Y)/B ⊙ g'(Z_L) for an elementwise output, and for softmax the product with its Jacobian,
Δ_L = A_L ⊙ (G − Σ_j G_j a_j) row by row with G = (A_L − Y)/B. Logs are clipped at the dtype's smallest
normal number so a loss value is never NaN; the gradient does not go through the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import kernels as K


@dataclass(frozen=True)
class Loss:
    name: str
    terms: K.Kernel  # t ← per-element loss term, summed over a row it is the example's loss
    matched_output: str  # the output activation for which Δ_L = (A_L − Y)/B
    allowed_outputs: tuple[str, ...] | None  # None: any output


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", K.loss_cross_entropy, "softmax", ("softmax",)),
    "bce": Loss("bce", K.loss_bce, "sigmoid", ("sigmoid",)),
    "mse": Loss("mse", K.loss_mse, "identity", None),
}
