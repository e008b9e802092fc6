"""Loaders for the files users bring, and the embedded digits: each returns :class:`RawData` (the
file's rows as they are; ``.npy`` files memory-mapped, never read whole).

Formats: a folder of MNIST/Fashion-MNIST IDX files (gzipped or not) or an explicit pair
``IMAGES,LABELS``; ``.npz`` with ``X`` and ``y``; a pair of ``.npy`` files ``X.npy,y.npy``; and
``.csv`` (header detected, label column chosen by name or index). Every loader checks what it
reads; a problem raises :class:`DataError`, a ``ValueError`` whose message names the file.
:func:`load_data` picks the loader from a path's form.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from .rows import chunk_rows, chunks, open_npy


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent (the message names the file)."""


@dataclass
class RawData:
    """A source's rows as read: features ``X`` (n, d) and targets ``y`` (n,) or None;
    ``X_test``/``y_test`` when the source has its own test split (MNIST's t10k files);
    ``label_column`` the CSV column the targets came from (its header name, else its index) and
    ``label_index`` its position among the file's columns (0-based)."""

    X: np.ndarray
    y: np.ndarray | None
    source: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] | None = field(default=None)
    label_column: str | int | None = None
    note: str = ""  # how the rows are held: "memory-mapped, …" or "loaded whole, …"
    label_index: int | None = None


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(path: str, need: int) -> None:
    """Refuse, with one line suggesting .npy, a whole load that would not fit in memory."""
    have = available_memory()
    if have is not None and need > have:
        raise DataError(
            f"{path}: loading it whole needs about {_size(need)} but {_size(have)} of memory is available: "
            "save it as X.npy,y.npy (np.save), which gpubp memory-maps and reads a batch at a time"
        )


# -- the embedded default -----------------------------------------------------------------------


def load_digits() -> RawData:
    """The UCI optical digits (1,797 8×8 images, pixels 0..16, labels 0..9), shipped in the package."""
    with resources.files("gpubp").joinpath("datasets/digits.npz").open("rb") as f, np.load(f) as data:
        return RawData(data["X"].astype(np.float64), data["y"].astype(np.int64), "digits")


# -- IDX (MNIST) --------------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _open(path: str):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """One IDX file, streamed into a preallocated array; checks the header and the length."""
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] not in _IDX_TYPES:
                what = f"magic 0x{header.hex()}" if header else "empty file"
                raise DataError(f"{path}: not an IDX file ({what})")
            dtype = np.dtype(_IDX_TYPES[header[2]])
            ndim = header[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, ">u4"))
            cells = int(np.prod(dims, dtype=np.int64))
            check_fits(path, cells * (dtype.itemsize + 8))  # the file's values, then as float64
            out = np.empty(dims, dtype=dtype)
            view = memoryview(out.reshape(-1).view(np.uint8))
            got = 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            if got < len(view):
                raise DataError(f"{path}: truncated IDX file: {got} of {len(view)} data bytes (shape {dims})")
            if f.read(1):
                raise DataError(f"{path}: IDX file longer than its header says (shape {dims})")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise DataError(f"{path}: file not found") from None
        raise DataError(f"{path}: cannot read: {exc}") from None
    return out.astype(out.dtype.newbyteorder("="), copy=False)


def _find_idx(folder: str, key: str) -> str | None:
    for stem in _IDX_NAMES[key]:
        for name in (stem, stem + ".gz"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None


def _idx_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D IDX label file, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels")
    return images.reshape(images.shape[0], -1).astype(np.float64), labels.astype(np.int64)


def load_idx_folder(folder: str) -> RawData:
    paths = {key: _find_idx(folder, key) for key in _IDX_NAMES}
    for images, labels in (("train_images", "train_labels"), ("test_images", "test_labels")):
        if (paths[images] is None) != (paths[labels] is None):
            have, missing = (labels, images) if paths[images] is None else (images, labels)
            raise DataError(f"{folder}: found {os.path.basename(paths[have])} but not {_IDX_NAMES[missing][0]}[.gz], "
                            "the file that goes with it")  # fmt: skip
    if paths["train_images"] is None or paths["train_labels"] is None:
        raise DataError(
            f"{folder}: no IDX files found: expected train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (and optionally the t10k-* pair)"
        )
    X, y = _idx_pair(paths["train_images"], paths["train_labels"])
    data = RawData(X, y, folder, note=f"loaded whole, {_size(X.nbytes)}")
    if paths["test_images"] and paths["test_labels"]:
        data.X_test, data.y_test = _idx_pair(paths["test_images"], paths["test_labels"])
        data.note = f"loaded whole, {_size(X.nbytes + data.X_test.nbytes)}"
        if data.X_test.shape[1] != X.shape[1]:
            raise DataError(f"{folder}: test images have {data.X_test.shape[1]} pixels, training images {X.shape[1]}")
    return data


# -- NumPy files --------------------------------------------------------------------------------


def _load_numpy(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                with data:
                    return {k: data[k] for k in data.files}
            return data
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        if "pickle" in str(exc):  # never suggest allow_pickle: loading a pickle runs code
            with open(path, "rb") as fh:
                pickled = fh.read(1) == b"\x80"  # a pickle's protocol byte
            kind = ("holds Python objects (a pickle), which gpubp never loads" if pickled
                    else "is neither a .npy nor a .npz file (no NumPy header; a CSV? name it .csv)")  # fmt: skip
            raise DataError(f"{path}: {kind}") from None
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends on a damaged .npz
        raise DataError(f"{path}: damaged NumPy file ({type(exc).__name__}: {exc})") from None


def _numeric(path: str, name: str, arr: np.ndarray, ndim: tuple[int, ...]) -> np.ndarray:
    if name == "y" and arr.dtype.kind in "US" and arr.ndim == 1:
        return arr.astype(str)  # string labels, as in a CSV
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: {name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        raise DataError(f"{path}: {name} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        step = chunk_rows(int(np.prod(arr.shape[1:], dtype=np.int64)), arr.dtype.itemsize) if arr.ndim > 1 else 1 << 20
        for part in chunks(len(arr), step):  # in chunks: a mapped file is never read whole at once
            bad = ~np.isfinite(arr[part])
            if bad.any():
                row = part.start + int(np.argwhere(bad)[0][0])
                raise DataError(f"{path}: {name} contains NaN or infinite values (row {row})")
    return arr


def load_npz(path: str) -> RawData:
    data = _load_numpy(path)
    if not isinstance(data, dict) or "X" not in data:
        raise DataError(f"{path}: expected an .npz holding arrays 'X' and 'y'")
    X = _numeric(path, "X", data["X"], (2, 3))
    X = X.reshape(X.shape[0], -1)
    y = _numeric(path, "y", data["y"], (1, 2)) if "y" in data else None
    if y is not None and y.shape[0] != X.shape[0]:
        raise DataError(f"{path}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    note = (f"read into memory, {_size(X.nbytes)} (NumPy cannot memory-map .npz members; "
            "np.save X and y as .npy files to train from a mapped file)")  # fmt: skip
    return RawData(X.astype(np.float64), y, path, note=note)


def load_npy_pair(x_path: str, y_path: str | None) -> RawData:
    """``X.npy`` memory-mapped (read a chunk or a batch at a time, never whole), ``y.npy`` read."""
    if not os.path.exists(x_path):
        raise DataError(f"{x_path}: file not found")
    try:
        X = open_npy(x_path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        raise DataError(f"{x_path}: cannot read: {exc}") from None
    X = _numeric(x_path, "X", X, (2, 3))
    X = X.reshape(X.shape[0], -1)  # a view: still mapped
    y = None
    if y_path is not None:
        y = _load_numpy(y_path)
        if isinstance(y, dict):
            raise DataError(f"{y_path}: expected a .npy array, got an .npz archive")
        y = _numeric(y_path, "y", y, (1, 2))
        if y.shape[0] != X.shape[0]:
            raise DataError(f"{x_path} has {X.shape[0]} rows but {y_path} has {y.shape[0]}")
    return RawData(X, y, x_path, note=f"memory-mapped, {_size(X.nbytes)} {X.dtype} on disk")


# -- CSV ----------------------------------------------------------------------------------------

_LABEL_NAMES = ("label", "labels", "class", "target", "y")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_rows(path: str, rows: Any, width: int, label_idx: int | None, header: list[str] | None,
               names: list[Any]) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """The CSV's (line, cells) rows parsed in blocks of _CSV_BLOCK rows: (feature blocks, label cells)."""
    blocks: list[np.ndarray] = []
    block: list[list[str]] = []
    block_lines: list[int] = []
    labels: list[str] = []
    for line, row in rows:
        if len(row) <= 1 and not "".join(row).strip():
            continue  # a blank line
        if len(row) != width:
            raise DataError(f"{path}: line {line}: {len(row)} cells, expected {width}")
        if label_idx is not None:
            labels.append(row.pop(label_idx).strip())
            if not labels[-1]:  # an empty label would become a class named ''
                column = repr(header[label_idx]) if header else f"{label_idx}"
                raise DataError(f"{path}: line {line}, label column {column}: empty cell")
        block.append(row)
        block_lines.append(line)
        if len(block) == _CSV_BLOCK:
            blocks.append(_parse_block(path, block, block_lines, names))
            block, block_lines = [], []
    if block:
        blocks.append(_parse_block(path, block, block_lines, names))
    return blocks, labels


def load_csv(path: str, label_column: str | int | None = None, n_features: int | None = None) -> RawData:
    """A CSV of numbers, one sample a row. The header is detected (a first row with a non-numeric
    cell). The label column is ``label_column`` (a header name or an index, negative counts from
    the end), else a column named label/class/target/y, else the last one. With ``n_features``
    set and rows of exactly that width, there is no label column (for predictions)."""
    try:
        fh = open(path, newline="")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    with fh:
        check_fits(path, 2 * os.fstat(fh.fileno()).st_size)  # float64 values take about twice the text
        try:
            sample = fh.read(4096)
            if "\x00" in sample:
                raise DataError(f"{path}: not a text CSV file (binary content)")
            fh.seek(0)
            rows = _csv_rows(fh, sample)
            _, first = next(rows, (0, None))
            if first is None:
                raise DataError(f"{path}: empty CSV file")
            first = [c.strip() for c in first]
            header = first if not all(_is_number(c) for c in first if c) else None
            width = len(first)
            label_idx = _label_index(path, header, width, label_column, n_features)
            feature_cols = [j for j in range(width) if j != label_idx]
            names = [header[j] for j in feature_cols] if header else feature_cols
            if header is None:
                rows = itertools.chain([(1, first)], rows)
            blocks, labels = _read_rows(path, rows, width, label_idx, header, names)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text CSV file (cannot decode as UTF-8)") from None
    if not blocks:
        raise DataError(f"{path}: no data rows")
    X = np.concatenate(blocks)
    y = None
    if label_idx is not None:
        y = np.asarray([float(c) for c in labels]) if all(_is_number(c) for c in labels) else np.asarray(labels)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError(f"{path}: the label column contains NaN or infinite values")
    label = None if label_idx is None else (header[label_idx] if header else label_idx)
    return RawData(
        X,
        y,
        path,
        feature_names=names if header else None,
        label_column=label,
        note=f"loaded whole, {_size(X.nbytes)}",
        label_index=label_idx,
    )


def _csv_rows(fh: Any, sample: str):
    """(line number, cells) per line. Plain ``str.split`` when the sample quotes nothing (several
    times faster than the csv module on large numeric files), else the csv module."""
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
    except csv.Error:
        dialect = csv.excel
    if '"' not in sample:
        delimiter = dialect.delimiter
        for number, line in enumerate(fh, start=1):
            yield number, line.rstrip("\r\n").split(delimiter)
        return
    reader = csv.reader(fh, dialect)
    for row in reader:
        yield reader.line_num, row


_CSV_BLOCK = 4096  # rows parsed by NumPy at a time: fast, and memory stays near the result's size


def _parse_block(path: str, block: list[list[str]], lines: list[int], names: list) -> np.ndarray:
    """Cells to float64 in C; on a bad cell, find it and name its line and column."""
    try:
        arr = np.array(block, dtype=np.float64)
    except ValueError:
        for row, line in zip(block, lines):
            for cell, name in zip(row, names):
                if not _is_number(cell):
                    cell = cell.strip()
                    hint = " (if that column holds the labels, choose it with --label-column)" if cell else ""
                    raise DataError(f"{path}: line {line}, column {name!r}: not a number: {cell!r}{hint}") from None
        raise
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{path}: line {lines[r]}: NaN or infinite value in column {names[c]!r}")
    return arr


def _label_index(path: str, header: list[str] | None, width: int, label_column: str | int | None,
                 n_features: int | None) -> int | None:  # fmt: skip
    if n_features is not None and width == n_features:
        return None  # exactly the model's features: rows to predict, no label column
    if label_column is None:
        if header:
            for j, name in enumerate(header):
                if name.lower() in _LABEL_NAMES:
                    return j
        return width - 1
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if not header or label_column not in header:
            have = f"columns are {', '.join(header)}" if header else "the file has no header"
            raise DataError(f"{path}: no label column {label_column!r} ({have})")
        return header.index(label_column)
    idx = int(label_column)
    if not -width <= idx < width:
        raise DataError(f"{path}: label column {idx} out of range for {width} columns")
    return idx % width


# -- dispatch -----------------------------------------------------------------------------------


def load_data(spec: str, label_column: str | int | None = None, n_features: int | None = None) -> RawData:
    """Load ``spec``: ``digits``, a folder of IDX files, ``A,B`` (an IDX or .npy pair), ``.npz``,
    ``.npy`` or ``.csv``."""
    if spec == "digits":
        return load_digits()
    if "," in spec:
        first, second = (s.strip() for s in spec.split(",", 1))
        if first.endswith(".npy"):
            return load_npy_pair(first, second)
        for path in (first, second):
            if not os.path.exists(path):
                raise DataError(f"{path}: file not found (in the pair {spec})")
        X, y = _idx_pair(first, second)
        return RawData(X, y, spec, note=f"loaded whole, {_size(X.nbytes)}")
    if os.path.isdir(spec):
        return load_idx_folder(spec)
    if not os.path.exists(spec):
        raise DataError(f"{spec}: file not found")
    lower = spec.lower()
    if lower.endswith(".npz"):
        return load_npz(spec)
    if lower.endswith(".npy"):
        return load_npy_pair(spec, None)
    if lower.endswith((".csv", ".tsv", ".txt")):
        return load_csv(spec, label_column, n_features)
    if "idx" in lower or "ubyte" in lower:
        X = read_idx(spec)
        if X.ndim == 1:
            raise DataError(f"{spec} is a labels file (1-D): give the images file too, as IMAGES,LABELS "
                            "(or the folder holding both)")  # fmt: skip
        return RawData(X.reshape(X.shape[0], -1).astype(np.float64), None, spec)
    raise DataError(f"{spec}: unknown data format: expected a folder of IDX files, .npz, .npy, .csv, or 'digits'")
