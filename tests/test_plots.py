"""The PNGs: a confusion matrix sized by its class count, so that labels and counts stay readable."""

from __future__ import annotations

import string
import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the plot extra is not installed")

from gpubp.plots import confusion_matrix


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _draw(tmp_path, k: int, labels: list[str]) -> tuple[int, int]:
    cm = np.eye(k, dtype=np.int64) * 900 + 1
    path = tmp_path / f"cm{k}.png"
    confusion_matrix(cm, labels, str(path))
    return _png_size(path)


def test_the_confusion_matrix_grows_with_the_class_count(tmp_path):
    w3, h3 = _draw(tmp_path, 3, ["0", "1", "2"])
    w10, _ = _draw(tmp_path, 10, [str(i) for i in range(10)])
    w26, h26 = _draw(tmp_path, 26, list(string.ascii_uppercase))
    assert min(w3, h3) >= 400  # not a thumbnail at 3 classes
    # at 120 dpi a cell of >= 0.42 in is >= 50 px: room for a 3-digit count at 8 pt, at every class count
    assert min(w26, h26) >= 26 * 50
    assert w3 < w10 < w26


def test_long_labels_get_room(tmp_path):
    short = _draw(tmp_path, 3, ["a", "b", "c"])
    long = _draw(tmp_path, 3, ["Iris-setosa", "Iris-versicolor", "Iris-virginica"])
    assert long[0] > short[0]
    assert long[1] > short[1]  # the x labels are turned and take height
