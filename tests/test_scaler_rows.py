"""The data's scaler is fitted on the training rows alone: the validation and test rows never shape it."""

from __future__ import annotations

import numpy as np
import pytest

from gpubp.data import Dataset, RawData


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_the_scaler_sees_only_the_training_rows(rng, scale):
    X = rng.normal(5, 3, size=(200, 3))
    y = np.arange(200) % 2
    ds = Dataset.prepare(RawData(X, y, "x"), val_fraction=0.2, test_fraction=0.2, split_seed=1, scale=scale)
    held = np.concatenate([ds.val, ds.test])
    X[held] += 1000.0  # a shifted copy of the held-out rows: a scaler that saw them would differ by far
    again = Dataset.prepare(RawData(X, y, "x"), val_fraction=0.2, test_fraction=0.2, split_seed=1, scale=scale)
    np.testing.assert_array_equal(again.train, ds.train)
    np.testing.assert_array_equal(again.scaler.shift, ds.scaler.shift)
    np.testing.assert_array_equal(again.scaler.scale, ds.scaler.scale)
    Z = again.features("train")
    if scale == "standard":
        np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    else:
        assert Z.min() == 0
        assert Z.max() == 1
