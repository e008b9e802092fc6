"""The lecture's backprop, step by step, on the classic 2-2-2 sigmoid network.

Inputs x = (0.05, 0.10), targets y = (0.01, 0.99), squared error E = ½ Σ_j (y_j − a_j)², the
weights and biases of M. Mazur's "A Step by Step Backpropagation Example". Every number printed
here can be checked with a pocket calculator against the formulas beside it.

gpubp's W_l has one row per unit of layer l, so the example's w1..w8 sit in it as
W_1 = [[w1, w2], [w3, w4]] and W_2 = [[w5, w6], [w7, w8]] (row j holds the weights into unit j).
The example keeps its biases b1 = 0.35 and b2 = 0.60 fixed; gpubp updates the biases too
(b_l ← b_l − η ∂E/∂b_l), which does not change the new weights of this one step.

Run: .venv/bin/python examples/lecture_example.py   (after `make install`)
"""

from __future__ import annotations

import os
import sys

import numpy as np

import gpubp


def network() -> gpubp.MLP:
    net = gpubp.MLP([2, 2, 2], activation="sigmoid", output="sigmoid", loss="mse", device="cpu",
                    dtype="float64")  # fmt: skip
    net.set_parameters([np.array([[0.15, 0.20], [0.25, 0.30]]), np.array([[0.40, 0.45], [0.50, 0.55]])],
                        [np.array([0.35, 0.35]), np.array([0.60, 0.60])])  # fmt: skip
    return net


def main() -> None:
    np.set_printoptions(precision=9, suppress=True)
    net = network()
    X, Y = np.array([[0.05, 0.10]]), np.array([[0.01, 0.99]])
    t = net.trace(X, Y)
    print("forward:  Z_l = A_{l-1} W_lᵀ + b_l,  A_l = σ(Z_l)")
    print("  A_1 =", t["A"][1][0], "   (hidden outputs out_h1, out_h2)")
    print("  A_2 =", t["A"][2][0], "   (network outputs out_o1, out_o2)")
    print(f"  E   = ½ Σ (y − a)² = {t['loss']:.9f}")
    print("backward: Δ_2 = (A_2 − Y) ⊙ A_2(1 − A_2)")
    print("  Δ_2 =", t["delta"][2][0])
    print("  ∂E/∂W_2 = Δ_2ᵀ A_1 =   [[∂E/∂w5, ∂E/∂w6], [∂E/∂w7, ∂E/∂w8]]\n", t["dW"][1])
    print("  ∂E/∂b_2 = Σ_rows Δ_2 =", t["db"][1])
    print("  Δ_1 = (Δ_2 W_2) ⊙ A_1(1 − A_1) =", t["delta"][1][0])
    print("  ∂E/∂W_1 = Δ_1ᵀ X =   [[∂E/∂w1, ∂E/∂w2], [∂E/∂w3, ∂E/∂w4]]\n", t["dW"][0])
    print("  ∂E/∂b_1 = Σ_rows Δ_1 =", t["db"][0])
    net.fit(X, Y, epochs=1, batch_size=1, lr=0.5, shuffle=False)
    print("one SGD step, η = 0.5:  W_l ← W_l − η ∂E/∂W_l,  b_l ← b_l − η ∂E/∂b_l")
    print("  W_1 =   [[w1, w2], [w3, w4]]\n", net.weights[0])
    print("  W_2 =   [[w5, w6], [w7, w8]]\n", net.weights[1])
    print("  b_1 =", net.biases[0], "  b_2 =", net.biases[1], "  (the worked example leaves its biases fixed)")
    print(f"checks against central differences: largest relative error {gpubp.gradcheck(network(), X, Y):.1e}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # `python lecture_example.py | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
