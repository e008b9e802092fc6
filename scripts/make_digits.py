"""Rebuild gpubp/datasets/digits.npz from scikit-learn's copy of the UCI optical digits.

The data: "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998), UCI Machine
Learning Repository, https://doi.org/10.24432/C50P49, licence CC BY 4.0. scikit-learn ships the
1,797-sample 8×8 version as ``sklearn.datasets.load_digits``; this script stores it as uint8 so the
package carries it in a few tens of kilobytes. Run: ``python scripts/make_digits.py`` (needs
scikit-learn; gpubp itself does not).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "gpubp" / "datasets" / "digits.npz"


def main() -> None:
    digits = load_digits()
    X = digits.data.astype(np.uint8)  # pixel intensities 0..16
    y = digits.target.astype(np.uint8)
    assert X.shape == (1797, 64)
    assert set(np.unique(y)) == set(range(10))
    np.savez_compressed(OUT, X=X, y=y)
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); sha256 of X||y = {digest}")


if __name__ == "__main__":
    main()
