"""Row sources: data read a block of rows at a time, so memory follows the batch, not the data.

The contract. ``X`` (and ``Y``) given to ``fit``, ``evaluate``, ``score``, ``predict`` and ``forward``
is either

* **in memory**: a NumPy array not backed by a file, a CuPy array of the network's GPU, or
  anything ``np.asarray`` turns into one (lists). It is converted whole to the network's dtype and
  device, once (nothing is copied when it already has both), as before; or
* **a row source**: a memory-mapped NumPy array (``np.load(path, mmap_mode="r")``, ``np.memmap``,
  or a view of one), or any other object with

  - ``shape`` (n, d) — or (n,) for labels or single targets — ``ndim`` and ``len()`` (= n),
  - ``dtype``, which ``np.dtype`` accepts: the dtype of the rows it returns (bool, int, uint or float),
  - ``__getitem__`` taking a ``slice`` (step 1) or a 1-D ``int64`` array of distinct row indices in
    any order, and returning those rows, in that order, as a NumPy array,
  - optionally ``filename`` (a str), named in error messages, and ``row_in_file(i)``, the file's row
    that is row ``i`` of the source, when the source is not all of the file's rows in order;
    ``in_memory`` (True), when its rows are in this process's memory rather than a file's.

  Errors name a bad row as "row i" of a whole file, and as "row i of X (row j of FILE)" for a view
  of part of a file (``X[1000:]``); where the file's row is unknown (a column slice) the file is left out.

  Nothing else is used: not ``.flags``, not the buffer protocol, not ``np.asarray`` of the whole
  object. An object that defines ``__array__`` (pandas, torch, xarray, h5py, zarr) is not a row
  source: it is converted with ``np.asarray`` as before (a pandas ``Series[index array]`` selects by
  label, not position). A row source is never converted whole in host memory: checks read it in chunks of about
  ``CHUNK_BYTES``; training gathers each batch's rows (``X[rows]``) into a host staging buffer of the
  network's dtype and copies that into the workspace on the device; inference reads slices. On a GPU,
  a row source that fits in device memory is copied there once, chunk by chunk; on the CPU, so is one
  :func:`in_memory` (a NumPy array over anonymous memory: an IDX file's bytes) when the copy in the
  network's dtype fits in half the memory available.

``open_npy(path)`` memory-maps a ``.npy`` file with a clear ``ValueError`` when it is truncated or
not one.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .backend import Device, is_cupy_array
from .npzfiles import npy_declared

CHUNK_BYTES = 4 << 20  # host temporaries of a chunked pass stay near this size
_ATTRS = ("shape", "dtype", "ndim", "__len__", "__getitem__")


def open_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in a ``.npy`` file, memory-mapped read-only (nothing is read until used).

    Raises ValueError naming the file when it is not a complete ``.npy`` of plain values (truncated,
    a pickled object array, another format); FileNotFoundError/PermissionError as open() does."""
    path = os.fspath(path)
    npy_declared(path)  # the header alone, and the file's length against it
    return np.load(path, mmap_mode="r", allow_pickle=False)


def is_mapped(x: Any) -> bool:
    """True for a NumPy array whose memory is a file mapping (a memmap, or a view of one)."""
    while isinstance(x, np.ndarray):
        x = x.base
    return isinstance(x, mmap.mmap)


def in_memory(x: Any) -> bool:
    """True for a row source whose rows are held in this process's memory rather than read from a
    file: a NumPy array over an anonymous mapping (a gzipped IDX file, decompressed), or an object
    whose ``in_memory`` is True (a :class:`gpubp.data.Rows` view of one). On the CPU such rows are
    copied once into the network's dtype when that fits, instead of gathered per batch."""
    if not isinstance(x, np.ndarray):
        return getattr(x, "in_memory", False) is True
    while isinstance(x, np.ndarray):
        if isinstance(x, np.memmap):
            return False
        x = x.base
    return isinstance(x, mmap.mmap)


def is_row_source(x: Any) -> bool:
    """True when ``x`` is read in chunks rather than converted whole (see the module docstring)."""
    if is_cupy_array(x):
        return False
    if isinstance(x, np.ndarray):
        return is_mapped(x)
    if hasattr(x, "__array__") or not all(hasattr(x, a) for a in _ATTRS):
        return False  # pandas, torch, xarray, h5py...: np.asarray as before (pandas indexes by label)
    try:
        np.dtype(x.dtype)
    except TypeError:  # e.g. a torch tensor: np.asarray handles it as before
        return False
    return True


def file_row(x: Any, i: int) -> tuple[str, int | None] | None:
    """(file, row of the file) for row ``i`` of ``x``; None when ``x`` names no file.

    The row of the file is None when ``x`` is not a run of whole rows of its file (a column slice, a
    step, a reshape). A memory-mapped array's file rows are those of the memmap it is a view of; a
    row source with a ``filename`` is the whole file, unless it has ``row_in_file(i)``."""
    if not isinstance(x, np.ndarray):
        name = getattr(x, "filename", None)
        if not isinstance(name, (str, os.PathLike)) or not name:
            return None
        locate = getattr(x, "row_in_file", None)
        return os.fspath(name), (int(locate(i)) if callable(locate) else i)
    name, root = None, x
    while True:
        found = getattr(root, "filename", None)
        if name is None and isinstance(found, (str, os.PathLike)) and found:
            name = os.fspath(found)
        if not isinstance(root.base, np.ndarray):
            break
        root = root.base
    if name is None:
        return None
    first = _first_row(x, root)
    return name, None if first is None else first + i


def _first_row(x: np.ndarray, root: np.ndarray) -> int | None:
    """The row of ``root`` where view ``x`` starts, when ``x`` is root[k:k+n] (whole rows, step 1)."""
    if x.ndim == 0 or x.ndim != root.ndim or x.shape[1:] != root.shape[1:] or x.strides[1:] != root.strides[1:]:
        return None
    step = root.strides[0]
    if step <= 0 or (x.shape[0] > 1 and x.strides[0] != step):
        return None
    delta = x.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if delta % step or not 0 <= delta // step <= root.shape[0] - x.shape[0]:
        return None
    return delta // step


def where(x: Any) -> str:
    """' in FILE' when ``x`` is a whole memory-mapped file (or a row source with a ``filename``),
    else '' (a view of part of a file is named by :func:`row_of` instead)."""
    found = file_row(x, 0)
    if found is None or found[1] != 0:
        return ""
    if isinstance(x, np.ndarray):
        root = x
        while isinstance(root.base, np.ndarray):
            root = root.base
        if x.shape[0] != root.shape[0]:
            return ""
    elif callable(getattr(x, "row_in_file", None)):
        return ""
    return f" in {found[0]}"


def row_of(x: Any, name: str, i: int) -> str:
    """How an error names row ``i`` of ``x``: 'row i' for a whole file or in-memory data, 'row i of
    NAME (row j of FILE)' for part of a file, 'row i of NAME' when where it lies in the file is unknown."""
    found = file_row(x, i)
    if found is None or where(x):
        return f"row {i}"
    file, j = found
    return f"row {i} of {name}" + ("" if j is None else f" (row {j} of {file})")


def chunk_rows(width: int, itemsize: int) -> int:
    """Rows per chunk so that a chunk of ``width`` values of ``itemsize`` bytes is about CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // max(1, width * itemsize))


def chunks(n: int, step: int) -> Iterator[slice]:
    """slice(start, stop) over 0..n in steps of ``step``."""
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def read(source: Any, rows: Any) -> np.ndarray:
    """The rows of a row source as a NumPy array (a slice or an index array)."""
    block = source[rows]
    if not isinstance(block, np.ndarray):
        block = np.asarray(block)
    return block


def materialise(x: Any) -> Any:
    """``x`` itself, or a row source read whole (for the few calls that need one batch in memory)."""
    if not is_row_source(x):
        return x
    block = read(x, slice(0, len(x)))
    return np.array(block) if is_mapped(block) else block


class Feeder:
    """Copies rows of a host row source into a device buffer: gather on the host, convert to
    ``dtype`` in a host staging buffer, one copy to the device (through ``Device.upload``).

    ``onehot=k`` reads integer labels (shape (n,)) and writes one-hot rows of width k; a 1-D source
    otherwise becomes one column. The same code runs on the CPU, so a test can force it there.
    """

    def __init__(self, device: Device, source: Any, dtype: np.dtype, onehot: int | None = None,
                 tag: str = "X") -> None:  # fmt: skip
        self.device, self.source, self.dtype, self.onehot, self.tag = device, source, dtype, onehot, tag
        self.width = onehot if onehot is not None else (source.shape[1] if source.ndim == 2 else 1)
        self._gather_direct = isinstance(source, np.ndarray) and source.ndim == 2 and source.dtype == dtype

    def __call__(self, rows: Any, out: Any) -> None:
        """out (b, width) on the device ← rows ``rows`` (slice or host index array) of the source."""
        b = out.shape[0]
        stage = self.device.staging((b, self.width), self.dtype, self.tag)
        if self._gather_direct and not isinstance(rows, slice):
            # straight from the mapping; mode="clip" writes into out unbuffered (rows are in range)
            np.take(self.source, rows, axis=0, out=stage, mode="clip")
        else:
            block = read(self.source, rows)
            if self.onehot is not None:
                stage[...] = 0
                stage[np.arange(b), block.astype(np.intp, copy=False)] = 1
            else:
                np.copyto(stage, block.reshape(b, self.width), casting="unsafe")
        self.device.upload(stage, out)


def to_device(device: Device, source: Any, dtype: np.dtype, onehot: int | None = None) -> Any:
    """Checked data as one (n, width) array of ``dtype`` on ``device``: an in-memory array converted
    at once (not copied when it already is one), a row source filled chunk by chunk (host
    temporaries stay near ``CHUNK_BYTES``). ``onehot=k``: integer labels (n,) become one-hot rows."""
    xp = device.xp
    if not is_row_source(source):
        with device.use():
            if onehot is not None:
                labels = device.asarray(source.astype(np.int64))
                out = xp.zeros((source.shape[0], onehot), dtype=dtype)
                out[xp.arange(source.shape[0]), labels] = 1
                return out
            with np.errstate(over="ignore"):  # values too large for dtype were refused by the checks
                return device.asarray(source.reshape(-1, 1) if source.ndim == 1 else source, dtype=dtype)
    feed = Feeder(device, source, dtype, onehot, tag="load")
    n = len(source)
    with device.use():
        out = xp.empty((n, feed.width), dtype)
    step = chunk_rows(feed.width, max(dtype.itemsize, np.dtype(source.dtype).itemsize))
    for part in chunks(n, step):
        feed(part, out[part])
    return out
