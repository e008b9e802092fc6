"""Data: the embedded digits, loaders for the files users bring, splits, scaling and the Dataset.

Loaders return :class:`RawData` (the file's rows as they are). :meth:`Dataset.prepare` makes them
ready for a model: labels encoded (``gpubp.labels``), a fixed train/validation/test split held as
row indices (never copies), and a feature scaler fitted on the training rows only::

    from gpubp.data import Dataset
    ds = Dataset.prepare("digits")                    # or a path, or load_data(...)
    net.fit(ds.features("train"), ds.targets("train"))
    net.score(ds.features("test"), ds.targets("test"))

Formats: a folder of MNIST/Fashion-MNIST IDX files (gzipped or not) or an explicit pair
``IMAGES,LABELS``; ``.npz`` with ``X`` and ``y``; a pair of ``.npy`` files ``X.npy,y.npy``; and
``.csv`` (header detected, label column chosen by name or index). Every loader checks what it
reads; a problem raises :class:`DataError`, a ``ValueError`` whose message names the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from .labels import Labels, as_labels, targets
from .rows import chunk_rows, chunks, is_row_source, open_npy


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent (the message names the file)."""


@dataclass
class RawData:
    """A source's rows as read: features ``X`` (n, d) and targets ``y`` (n,) or None;
    ``X_test``/``y_test`` when the source has its own test split (MNIST's t10k files);
    ``label_column`` the CSV column the targets came from (its header name, else its index)."""

    X: np.ndarray
    y: np.ndarray | None
    source: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] | None = field(default=None)
    label_column: str | int | None = None
    note: str = ""  # how the rows are held: "memory-mapped, …" or "loaded whole, …"


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
        raise DataError(f"{path}: loading it whole needs about {_size(need)} but {_size(have)} of memory is available: "
                        "save it as X.npy,y.npy (np.save), which gpubp memory-maps and reads a batch at a time")


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
            blocks: list[np.ndarray] = []
            block: list[list[str]] = []
            block_lines: list[int] = []
            labels: list[str] = []
            if header is None:
                rows = itertools.chain([(1, first)], rows)
            for line, row in rows:
                if len(row) <= 1 and not "".join(row).strip():
                    continue  # a blank line
                if len(row) != width:
                    raise DataError(f"{path}: line {line}: {len(row)} cells, expected {width}")
                if label_idx is not None:
                    labels.append(row.pop(label_idx).strip())
                block.append(row)
                block_lines.append(line)
                if len(block) == _CSV_BLOCK:
                    blocks.append(_parse_block(path, block, block_lines, names))
                    block, block_lines = [], []
            if block:
                blocks.append(_parse_block(path, block, block_lines, names))
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
    return RawData(X, y, path, feature_names=names if header else None, label_column=label,
                   note=f"loaded whole, {_size(X.nbytes)}")


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
                    raise DataError(f"{path}: line {line}, column {name!r}: not a number: {cell!r}") from None
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


# -- splits and scaling -------------------------------------------------------------------------


def stratified_split(y: np.ndarray, fractions: tuple[float, ...], seed: int = 0) -> list[np.ndarray]:
    """Split row indices into len(fractions) + 1 parts, each class spread in proportion.

    ``fractions`` are the sizes of the leading parts; the last part takes the rest. Within each
    class rows are shuffled with ``seed``, so the split is fixed for a given data set.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    classes = np.unique(y)
    for c in classes:
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        start = 0
        for k, frac in enumerate(fractions):
            take = round(frac * len(idx))
            parts[k].append(idx[start:start + take])
            start += take
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


class Scaler:
    """Feature scaling fitted on training rows: ``standard`` (zero mean, unit variance), ``minmax``
    (to [0, 1]) or ``none``. Constant features are left centred but not divided by zero."""

    KINDS = ("standard", "minmax", "none")

    def __init__(self, kind: str = "standard") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown scaling {kind!r}: expected one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: Any, rows: np.ndarray | None = None) -> Scaler:
        """Fit on ``X[rows]`` (all rows when None). A row source (memory-mapped file) is read in
        chunks of rows, its statistics accumulated in float64; nothing of its size is allocated."""
        if is_row_source(X):
            return self._fit_chunked(X, rows)
        if rows is not None:
            X = X[rows]
        if self.kind == "standard":
            self.shift, spread = X.mean(axis=0), X.std(axis=0)
        elif self.kind == "minmax":
            self.shift, spread = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        else:
            self.shift, spread = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self.scale = np.where(spread > 0, spread, 1.0)
        return self

    def _fit_chunked(self, X: Any, rows: np.ndarray | None) -> Scaler:
        d = X.shape[1]
        n_total = len(X) if rows is None else len(rows)
        if n_total == 0:
            raise ValueError("cannot fit a scaler on no rows")
        count, mean, m2 = 0, np.zeros(d), np.zeros(d)
        low, high = np.full(d, np.inf), np.full(d, -np.inf)
        for part in chunks(n_total, chunk_rows(d, 8)):
            block = np.asarray(X[part] if rows is None else X[np.asarray(rows[part])], dtype=np.float64)
            k = len(block)
            if self.kind == "minmax":
                low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
                continue
            # Chan et al.'s merge of (count, mean, M2): stable where E[x²] − E[x]² is not
            block_mean = block.mean(axis=0)
            delta = block_mean - mean
            total = count + k
            mean = mean + delta * (k / total)
            m2 = m2 + ((block - block_mean) ** 2).sum(axis=0) + delta**2 * (count * k / total)
            count = total
        if self.kind == "standard":
            self.shift, spread = mean, np.sqrt(m2 / count)
        elif self.kind == "minmax":
            self.shift, spread = low, high - low
        else:
            self.shift, spread = np.zeros(d), np.ones(d)
        self.scale = np.where(spread > 0, spread, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.shift is None:
            raise ValueError("the scaler is not fitted")
        if X.shape[1] != self.shift.shape[0]:
            raise ValueError(f"data has {X.shape[1]} features, the model was trained on {self.shift.shape[0]}")
        return (X - self.shift) / self.scale

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform` (used for regression targets)."""
        return Z * self.scale + self.shift

    def arrays(self, prefix: str = "scaler") -> dict[str, np.ndarray]:
        return {f"{prefix}_shift": self.shift, f"{prefix}_scale": self.scale}

    @classmethod
    def from_arrays(cls, kind: str, arrays: dict[str, np.ndarray], prefix: str = "scaler") -> Scaler:
        scaler = cls(kind)
        scaler.shift, scaler.scale = arrays[f"{prefix}_shift"], arrays[f"{prefix}_scale"]
        return scaler


def fingerprint(X: Any, y: Any = None, sample: int = 256) -> str:
    """``"n x d:hash"``: the shape and a hash of up to ``sample`` evenly spaced rows (and their
    targets). The same file gives the same fingerprint wherever it lies; shuffled or edited rows
    (almost always) give another."""
    n = len(X)
    idx = np.unique(np.linspace(0, n - 1, min(n, sample)).astype(np.int64)) if n else np.empty(0, np.int64)
    h = hashlib.sha256(str(tuple(X.shape)).encode())
    h.update(np.ascontiguousarray(np.asarray(X[idx], dtype=np.float64)).tobytes())
    if y is not None:
        h.update("\x00".join(map(str, np.asarray(y)[idx].tolist())).encode())
    return f"{n}x{X.shape[1] if X.ndim > 1 else 1}:{h.hexdigest()[:16]}"


def split_rows(y: np.ndarray | None, n: int, val_fraction: float, test_fraction: float | None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(train, val, test) row indices: stratified by class indices ``y`` (None: not stratified,
    for regression). ``test_fraction`` None: the source has its own test rows, so none are held
    out here. Fixed for a given ``seed``."""
    strata = np.zeros(n, dtype=np.int64) if y is None else y
    if test_fraction is None:
        val, train = stratified_split(strata, (val_fraction,), seed)
        return train, val, np.empty(0, dtype=np.int64)
    test, val, train = stratified_split(strata, (test_fraction, val_fraction), seed)
    return train, val, test


TASKS = ("classify", "regress")


@dataclass
class Dataset:
    """Rows ready for a model: the source's raw features ``X`` (n, d), encoded targets ``y`` (class
    indices, or regression values standardised by ``target``), the fixed split as row indices
    ``train``/``val``/``test`` (never copies), and the ``scaler`` fitted on ``X[train]``.

    When the source has its own test files (MNIST's t10k pair), ``test`` indexes ``X_test``/``y_test``
    instead of ``X``. ``test_rule`` says in words which rows the test set is and why.
    """

    source: str
    task: str
    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    scaler: Scaler
    labels: Labels | None = None
    target: Scaler | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    test_rule: str = ""
    label_column: str | int | None = None
    fingerprint: str = ""
    note: str = ""

    @classmethod
    def prepare(cls, data: RawData | str, *, task: str = "classify", label_column: str | int | None = None,
                val_fraction: float = 0.1, test_fraction: float = 0.2, split_seed: int = 0,
                scale: str = "standard", labels: Labels | None = None, scaler: Scaler | None = None,
                target: Scaler | None = None, standardise_target: bool = True) -> Dataset:  # fmt: skip
        """Encode, split and scale ``data`` (a :class:`RawData` or a spec for :func:`load_data`).

        ``labels``/``scaler``/``target``: reuse a model's (when resuming or evaluating) instead of
        fitting new ones. Regression targets are standardised on the training rows
        (``standardise_target``); predictions are mapped back with ``target.inverse``.
        Raises :class:`DataError` when the rows cannot make the split or the targets the task."""
        raw = load_data(data, label_column) if isinstance(data, str) else data
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
        if raw.y is None:
            raise DataError(f"{raw.source}: no labels or targets found: training and evaluation need them")
        has_test = raw.X_test is not None and raw.y_test is not None
        y, y_test = cls._encode(raw, task, labels)
        if task == "classify" and labels is None:
            labels = Labels.of(y, *([y_test] if has_test else []))
            if len(labels) < 2:
                raise DataError(f"{raw.source}: only one class ({labels.classes[0]!r}) in the labels: nothing to learn")
            if len(labels) > 2 and 2 * len(labels) > len(y):
                raise DataError(f"{raw.source}: {len(labels)} classes in {len(y)} rows, most classes have one row: "
                                "is the target a number? use --task regress (or choose --label-column)")  # fmt: skip
        if labels is not None:
            y = labels.encode(y, raw.source)
            y_test = None if y_test is None else labels.encode(y_test, raw.source)
        n = len(y)
        train, val, test = split_rows(y if task == "classify" else None, n, val_fraction,
                                      None if has_test else test_fraction, split_seed)  # fmt: skip
        cls._check_split(raw.source, n, train, val, test, val_fraction, None if has_test else test_fraction)
        if has_test:
            rule = f"the data's own test files ({len(y_test)} rows)"
            test = np.arange(len(y_test))
        else:
            rule = (f"the {len(test)} rows held out from training (--test-fraction {test_fraction:g}, "
                    f"--split-seed {split_seed})")  # fmt: skip
        scaler = scaler if scaler is not None else Scaler(scale).fit(raw.X, train)
        if task == "regress":
            if target is None and standardise_target:
                target = Scaler("standard").fit(y[train].reshape(-1, 1))
            if target is not None:
                y = target.transform(y.reshape(-1, 1))[:, 0]
                y_test = None if y_test is None else target.transform(y_test.reshape(-1, 1))[:, 0]
        return cls(raw.source, task, raw.X, y, train, val, test, scaler, labels, target,
                   raw.X_test if has_test else None, y_test, rule, raw.label_column,
                   fingerprint(raw.X, raw.y), raw.note)  # fmt: skip

    @staticmethod
    def _encode(raw: RawData, task: str, labels: Labels | None) -> tuple[np.ndarray, np.ndarray | None]:
        ys = [raw.y, raw.y_test]
        if task == "regress":
            out = []
            for y in ys:
                if y is None:
                    out.append(None)
                    continue
                y = np.asarray(y)
                if y.dtype.kind not in "biuf":
                    raise DataError(f"{raw.source}: regression targets must be numbers, got {y.dtype.kind!r} values")
                y = y.astype(np.float64).reshape(len(y), -1)
                if y.shape[1] != 1:
                    raise DataError(f"{raw.source}: --task regress expects one target per row, got {y.shape[1]}")
                out.append(y[:, 0])
            return out[0], out[1]
        try:
            return tuple(None if y is None else as_labels(y, raw.source) for y in ys)  # type: ignore[return-value]
        except ValueError as exc:
            raise DataError(str(exc)) from None

    @staticmethod
    def _check_split(source: str, n: int, train: np.ndarray, val: np.ndarray, test: np.ndarray,
                     val_fraction: float, test_fraction: float | None) -> None:  # fmt: skip
        empty = [name for name, rows, frac in (("validation", val, val_fraction), ("test", test, test_fraction))
                 if frac and len(rows) == 0]  # fmt: skip
        if len(train) == 0 or empty:
            raise DataError(f"{source}: {n} rows are too few for the split ({len(train)} train, {len(val)} validation, "
                            f"{len(test)} test rows): give more rows, or --val-fraction 0 / --test-fraction 0")

    # -- rows -----------------------------------------------------------------------------------

    def _part(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if part not in ("train", "val", "test"):
            raise ValueError(f"unknown part {part!r}: expected train, val or test")
        if part == "test" and self.X_test is not None:
            return self.X_test, self.y_test, self.test
        return self.X, self.y, getattr(self, part)

    def __len__(self) -> int:
        return len(self.y)

    def size(self, part: str) -> int:
        return len(self._part(part)[2])

    def features(self, part: str) -> Any:
        """Scaled feature rows of ``part`` ("train", "val" or "test"), shape (rows, d): a NumPy array
        for data in memory; for a memory-mapped source a :class:`Rows` view, scaled per batch as it
        is read (so memory follows the batch, not the data)."""
        X, _, idx = self._part(part)
        if is_row_source(X):
            return Rows(X, idx, self.scaler)
        return self.scaler.transform(X[idx])

    def targets(self, part: str, n_out: int | None = None, loss: str = "cross_entropy") -> np.ndarray:
        """Targets of ``part``: class indices (one-hot or 0/1 for ``loss`` other than cross_entropy,
        given ``n_out``), or the (standardised) regression values."""
        _, y, idx = self._part(part)
        if self.task == "regress" or loss == "cross_entropy" or n_out is None:
            return y[idx]
        return targets(y[idx], n_out, loss)

    def n_outputs(self, loss: str) -> int:
        """Output units a network needs: 1 for regression or a two-class bce, else one per class."""
        if self.task == "regress" or self.labels is None:
            return 1
        return 1 if (loss == "bce" and len(self.labels) == 2) else len(self.labels)


def scored_rows(data: RawData, trained_on: dict[str, Any], labels: Labels | None = None,
              split: str | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str, str]:  # fmt: skip
    """The one rule for which rows of ``data`` a model is tested on (evaluate and predict alike).

    ``trained_on``: the model's training settings (``fingerprint``, ``task``, ``val_fraction``,
    ``test_fraction``, ``split_seed``). Returns (X rows, y rows or None, row numbers in the file,
    "test" or "all", why in words). By default: the data's own test files if it has them; else, when the rows are
    the ones the model was trained on (same fingerprint, whatever the path's spelling), the rows
    held out from training; else every row. ``split="all"``: every row of the main files;
    ``split="test"``: refuse data that has no test rows for this model."""
    if split not in (None, "test", "all"):
        raise ValueError(f"unknown split {split!r}: expected 'test' or 'all'")
    if split == "all":
        return data.X, data.y, np.arange(len(data.X)), "all", f"all {len(data.X)} rows (--split all)"
    if data.X_test is not None:
        return (data.X_test, data.y_test, np.arange(len(data.X_test)), "test",
                f"the {len(data.X_test)} rows of the data's own test files")  # fmt: skip
    if data.y is not None and fingerprint(data.X, data.y) == trained_on.get("fingerprint"):
        if not trained_on.get("test_fraction"):
            raise DataError(f"{data.source}: the model was trained on all of these rows (no test split): "
                            "use --split all to score them anyway")  # fmt: skip
        y = None
        if trained_on.get("task", "classify") == "classify":
            names = as_labels(data.y, data.source)
            y = (labels or Labels.of(names)).encode(names, data.source)
        _, _, test = split_rows(y, len(data.X), trained_on["val_fraction"], trained_on["test_fraction"],
                                trained_on["split_seed"])  # fmt: skip
        rows = Rows(data.X, test) if is_row_source(data.X) else data.X[test]  # a mapped file: no copy
        return (rows, data.y[test], test, "test",
                f"the {len(test)} rows held out from training (the model's own data, split seed "
                f"{trained_on['split_seed']})")  # fmt: skip
    if split == "test":
        raise DataError(f"{data.source}: --split test: these are not the rows the model was trained on, so none were "
                        "held out; leave --split out to use every row")  # fmt: skip
    why = f"all {len(data.X)} rows (not the data the model was trained on)"
    return data.X, data.y, np.arange(len(data.X)), "all", why


class Rows:
    """Rows ``X[index]`` of a source (all rows when ``index`` is None), optionally put through
    ``scaler``, read only when indexed. It is a row source as ``gpubp.rows`` defines one: ``shape``
    (n, d), ``dtype``, ``ndim``, ``len()``, and ``rows[slice]`` / ``rows[1-D int array]`` returning
    NumPy rows (float64 when scaled), so training gathers and scales one batch at a time."""

    ndim = 2

    def __init__(self, X: Any, index: np.ndarray | None = None, scaler: Scaler | None = None) -> None:
        if len(X.shape) != 2:
            raise ValueError(f"Rows needs (n, d) rows, got shape {tuple(X.shape)}")
        self.X = X
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.scaler = scaler
        self.shape = (len(X) if index is None else len(self.index), int(X.shape[1]))
        self.dtype = np.dtype(np.float64) if scaler is not None else np.dtype(X.dtype)
        name = getattr(X, "filename", None)
        if isinstance(name, (str, os.PathLike)):
            self.filename = os.fspath(name)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        scaled = f", scaled ({self.scaler.kind})" if self.scaler is not None else ""
        return f"Rows({self.shape[0]} of {len(self.X)} rows{scaled})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise IndexError("Rows takes slices with step 1 or 1-D integer index arrays")
            rows = self.X[key] if self.index is None else self._take(self.index[key])
        else:
            key = np.asarray(key)
            if key.ndim != 1 or key.dtype.kind not in "iu":
                raise IndexError(f"Rows takes a slice or a 1-D integer index array, got {key.dtype} {key.shape}")
            if len(key) and (key.min() < -self.shape[0] or key.max() >= self.shape[0]):
                raise IndexError(f"row index out of range for {self.shape[0]} rows")
            rows = self._take(key % self.shape[0] if self.index is None else self.index[key])
        rows = np.asarray(rows)
        if self.scaler is None:
            return rows
        if rows.shape[1] != len(self.scaler.shift):
            raise ValueError(f"data has {rows.shape[1]} features, the scaler was fitted on {len(self.scaler.shift)}")
        # the same numbers as Scaler.transform (float64 throughout), with one temporary instead of three
        out = np.subtract(rows, self.scaler.shift, dtype=np.float64)
        out /= self.scaler.scale
        return out

    def _take(self, idx: np.ndarray) -> np.ndarray:
        """X's rows ``idx`` in that order, read in ascending order (a file is read front to back)."""
        if len(idx) < 2 or bool(np.all(idx[1:] > idx[:-1])):
            return np.asarray(self.X[idx])
        order = np.argsort(idx, kind="stable")
        got = np.asarray(self.X[idx[order]])
        out = np.empty_like(got)
        out[order] = got
        return out
