"""Loaders for the files users bring, and the embedded digits: each returns :class:`RawData` (the
file's rows as they are; ``.npy`` files memory-mapped, never read whole).

Formats: a folder of MNIST/Fashion-MNIST IDX files (gzipped or not) or an explicit pair
``IMAGES,LABELS``; ``.npz`` with ``X`` and ``y``; a pair of ``.npy`` files ``X.npy,y.npy``; and
``.csv`` (header detected, label column chosen by name or index). Every loader checks what it
reads; a problem raises :class:`DataError`, a ``ValueError`` whose message names the file.
:func:`load_data` picks the loader from a path's form.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from . import idxfiles
from ._io import available_memory
from .columns import Columns, match
from .csvfiles import (
    DECIMAL_COMMA,
    GROUPS,
    LABEL_NAMES,
    CsvLayout,
    csv_layout,
    is_number,
    number_text,
    sample_lines,
    undecodable,
)
from .npzfiles import Declared, NpzReader, npy_declared
from .rows import chunk_rows, chunks, open_npy
from .tables import MISSING, Table


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent (the message names the file)."""


@dataclass
class RawData:
    """A source's rows as read: features ``X`` (n, d) and targets ``y`` (n,) or None;
    ``X_test``/``y_test`` when the source has its own test split (MNIST's t10k files);
    ``label_column`` the CSV column the targets came from (its header name, else its index) and
    ``label_index`` its position among the file's columns (0-based, an index column dropped);
    ``feature_names`` the header's names of X's columns (None without a header)."""

    X: Any  # an (n, d) array; None for a CSV whose columns are not all numbers (its frame: gpubp.tables)
    y: np.ndarray | None
    source: str
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] | None = field(default=None)
    label_column: str | int | None = None
    note: str = ""  # how the rows are held: "memory-mapped, …" or "loaded whole, …"
    label_index: int | None = None
    notes: list[str] = field(default_factory=list)  # what reading it decided, for the log
    # a CSV's feature columns as read (a pandas DataFrame: numbers float64 with NaN where missing, text as
    # text; its index the row's number among the file's data rows, line index + first_line), which
    # gpubp.tables turns into X; X is None until then unless every column is a number and none missing
    frame: Any = None
    first_line: int = 1


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


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

_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_idx(path: str) -> np.ndarray:
    """One IDX file in its own dtype, as its header declares it (gpubp.idxfiles): read (decompressed
    when gzipped) a chunk at a time, once its length and the memory check allow it."""

    def fits(need: int) -> None:
        have = available_memory()
        if have is not None and need > have:
            raise DataError(f"{path}: reading it needs {_size(need)} but {_size(have)} of memory is available: save "
                            "the images as X.npy and the labels as y.npy (np.save): gpubp maps them")  # fmt: skip

    try:
        return idxfiles.read(path, fits)
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _find_idx(folder: str, key: str) -> str | None:
    for stem in _IDX_NAMES[key]:
        for name in (stem, stem + ".gz"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None


def _idx_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images as rows (n, pixels) in the file's dtype, labels as int64): both headers are compared
    before either file's data is read."""
    try:
        images, labels = idxfiles.header(images_path), idxfiles.header(labels_path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if len(labels.dims) != 1:
        raise DataError(f"{labels_path}: expected a 1-D IDX label file, got shape {labels.dims}")
    if not images.dims or images.dims[0] != labels.dims[0]:
        n = images.dims[0] if images.dims else 0
        raise DataError(f"{images_path} has {n} images but {labels_path} has {labels.dims[0]} labels")
    check_fits(labels_path, labels.dims[0] * 8)
    y = np.asarray(read_idx(labels_path), dtype=np.int64)
    X = read_idx(images_path)
    return X.reshape(X.shape[0], -1), y


def _idx_note(*arrays: np.ndarray) -> str:
    return f"read into memory, {_size(sum(a.nbytes for a in arrays))} {arrays[0].dtype}, converted a chunk at a time"


def load_idx_folder(folder: str) -> RawData:
    paths = {key: _find_idx(folder, key) for key in _IDX_NAMES}
    for images, labels in (("train_images", "train_labels"), ("test_images", "test_labels")):
        if (paths[images] is None) != (paths[labels] is None):
            have, missing = (labels, images) if paths[images] is None else (images, labels)
            found = os.path.basename(str(paths[have]))
            raise DataError(f"{folder}: found {found} but not {_IDX_NAMES[missing][0]}[.gz], "
                            "the file that goes with it")  # fmt: skip
    if paths["train_images"] is None or paths["train_labels"] is None:
        raise DataError(
            f"{folder}: no IDX files found: expected train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (and optionally the t10k-* pair)"
        )
    X, y = _idx_pair(paths["train_images"], paths["train_labels"])
    data = RawData(X, y, folder, note=_idx_note(X))
    if paths["test_images"] and paths["test_labels"]:
        data.X_test, data.y_test = _idx_pair(paths["test_images"], paths["test_labels"])
        data.note = _idx_note(X, data.X_test)
        if data.X_test.shape[1] != X.shape[1]:
            raise DataError(f"{folder}: test images have {data.X_test.shape[1]} pixels, training images {X.shape[1]}")
    return data


# -- NumPy files --------------------------------------------------------------------------------


def _not_numpy(path: str, start: bytes) -> DataError:
    """Why a file named .npy/.npz is not one (never suggesting allow_pickle: loading a pickle runs code)."""
    if start[:1] == b"\x80":  # a pickle's protocol byte
        return DataError(f"{path}: holds Python objects (a pickle), which gpubp never loads")
    return DataError(f"{path}: is neither a .npy nor a .npz file (no NumPy header; a CSV? name it .csv)")


def _start(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(6)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _read_npy(path: str, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    """A small ``.npy`` (the labels) read whole, once its header, length and size are checked."""
    start = _start(path)
    if start[:4] == b"PK\x03\x04":
        raise DataError(f"{path}: expected a .npy array, got an .npz archive")
    if start != b"\x93NUMPY":
        raise _not_numpy(path, start)
    try:
        declared = npy_declared(path)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    _check_declared(path, name, declared, ndim)
    check_fits(path, declared.nbytes)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable NumPy file ({exc})") from None


def _check_declared(path: str, name: str, declared: Declared, ndim: tuple[int, ...]) -> None:
    """What :func:`_numeric` checks of a header's dtype and shape, before the data is read."""
    kinds = "biufUS" if name == "y" else "biuf"
    if declared.dtype.kind not in kinds:
        raise DataError(f"{path}: {name} must be numeric, got dtype {declared.dtype}")
    if len(declared.shape) not in ndim:
        raise DataError(f"{path}: {name} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape {declared.shape}")


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
    """An ``.npz`` with ``X`` (and ``y``): their headers are checked (dtype, shape, rows, the memory a
    whole load needs) before either is decompressed; other members are never read."""
    start = _start(path)
    if start[:4] != b"PK\x03\x04":
        raise _not_numpy(path, start)
    try:
        with NpzReader(path) as npz:
            if "X" not in npz.names:
                raise DataError(f"{path}: expected an .npz holding arrays 'X' and 'y'")
            X_declared = npz.declared("X")
            y_declared = npz.declared("y") if "y" in npz.names else None
            _check_declared(path, "X", X_declared, (2, 3))
            cells = X_declared.nbytes // X_declared.dtype.itemsize  # then converted to float64
            need = X_declared.nbytes + (0 if X_declared.dtype == np.float64 else 8 * cells)
            if y_declared is not None:
                _check_declared(path, "y", y_declared, (1, 2))
                if y_declared.shape[0] != X_declared.shape[0]:
                    raise DataError(f"{path}: X has {X_declared.shape[0]} rows but y has {y_declared.shape[0]}")
                need += y_declared.nbytes
            check_fits(path, need)
            X = npz.read("X")
            y = npz.read("y") if y_declared is not None else None
    except DataError:
        raise
    except ValueError as exc:
        text = str(exc)
        if "Python objects" in text:
            raise DataError(f"{path}: {text.split(': ', 1)[-1]}") from None
        raise DataError(f"{path}: damaged .npz file ({text})") from None
    except MemoryError:  # the check above passed, but the memory went meanwhile
        raise DataError(f"{path}: X and y do not fit in the memory available: save them as X.npy,y.npy (np.save), "
                        "which gpubp memory-maps and reads a batch at a time") from None  # fmt: skip
    X = _numeric(path, "X", X, (2, 3))
    X = X.reshape(X.shape[0], -1)
    y = None if y is None else _numeric(path, "y", y, (1, 2))
    note = (f"read into memory, {_size(X.nbytes)} (NumPy cannot memory-map .npz members; "
            "np.save X and y as .npy files to train from a mapped file)")  # fmt: skip
    return RawData(X.astype(np.float64, copy=False), y, path, note=note)


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
        y = _numeric(y_path, "y", _read_npy(y_path, "y", (1, 2)), (1, 2))
        if y.shape[0] != X.shape[0]:
            raise DataError(f"{x_path} has {X.shape[0]} rows but {y_path} has {y.shape[0]}")
    return RawData(X, y, x_path, note=f"memory-mapped, {_size(X.nbytes)} {X.dtype} on disk")


# -- CSV ----------------------------------------------------------------------------------------
# The rules below (header, index column, label column, delimiter) are docs/data-formats.md's.


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise DataError("reading CSV files needs pandas: pip install 'gpubp[csv]'") from None
    return pandas


def read_csv(path: str, delimiter: str | None = None, header: bool | None = None,
             columns: Columns | None = None, *, decimal: str | None = None, thousands: str | None = None,
             encoding: str | None = None,
             text_columns: Sequence[str] | None = None) -> tuple[Any, CsvLayout, list[str]]:  # fmt: skip
    """A CSV as a pandas DataFrame with column names as strings (the header's, else "0", "1", …;
    an index column dropped), its :class:`CsvLayout` and notes for the log. ``header`` True/False:
    the first row is/is not a header (None: detected); ``columns``: a model's, whose names
    recognise a header of numbers. ``decimal``/``thousands`` ("" for none): the numbers' marks
    (None: detected); ``encoding``: the file's (None: UTF-8). Only an empty cell is missing: ``NA``
    or ``None`` is a label. Numbers with thousands separators stay text here, read strictly by
    :func:`gpubp.csvfiles.number_text` where the features and labels are taken. ``text_columns``:
    the columns read as their text, never as numbers (a model's categories; a file without a header:
    all of them)."""
    pd = _pandas()
    with open(path, "rb") if os.path.exists(path) else _missing(path) as probe:
        compression = "gzip" if probe.read(2) == b"\x1f\x8b" else None
    try:
        names = columns.features if columns is not None and columns.named else ()
        label = columns.label if columns is not None else None
        layout = csv_layout(path, sample_lines(path, compression == "gzip", encoding), delimiter, header, names, label,
                            decimal, thousands)  # fmt: skip
    except ValueError as exc:
        raise DataError(str(exc)) from None
    except csv.Error as exc:  # a carriage return inside a line: the csv module stops there
        raise DataError(f"{path}: not a CSV file gpubp can read ({exc})") from None
    notes = []
    if layout.decimal == ",":
        notes.append("decimal commas (1,5 read as 1.5)")
    if layout.thousands == ",":
        notes.append("commas between digit groups are thousands separators (1,250 read as 1250)")
    elif layout.thousands:
        notes.append("points between digit groups are thousands separators (1.250 read as 1250)")
    header_names = None
    if layout.header is not None:
        header_names = [c if c else f"Unnamed: {j}" for j, c in enumerate(layout.header)]
        repeated = sorted({n for n in header_names if header_names.count(n) > 1})
        if repeated:
            raise DataError(f"{path}: the header names column {repeated[0]!r} more than once")
    dtype: Any = None
    if text_columns:  # a category's levels as written ('01', '1'), as the training file's were compared
        dtype = {n: str for n in header_names if n in text_columns} if header_names else str

    def parse(dtype: Any) -> Any:
        source = _GzipBudget(path) if compression else contextlib.nullcontext(path)
        with source as text, warnings.catch_warnings():  # a column of numbers and text: named below, cell by cell
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            return pd.read_csv(text, sep=layout.delimiter, decimal=layout.decimal, thousands=None,
                               header=None, skiprows=1 if header_names else 0, names=header_names,
                               encoding=encoding or "utf-8-sig", compression=None, quotechar='"', dtype=dtype,
                               skipinitialspace=True, keep_default_na=False, na_values=[""])  # fmt: skip

    try:
        frame = parse(dtype)
        # pandas types a long file a block of rows at a time: a column of text whose early blocks held
        # only numbers holds 1.0 there for the text '1' (a category level written two ways): read again as text
        mixed = [c for c in frame.columns if frame[c].dtype == object and _holds_numbers(frame[c])]
        if mixed:
            frame = parse({**(dtype if isinstance(dtype, dict) else {}), **{c: str for c in mixed}})
    except DataError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged or cut gzip stream
        raise DataError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(undecodable(path, encoding, exc)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no data rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        text = " ".join(str(exc).split()).removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{path}: {text} (delimiter {layout.delimiter!r}; choose another with --delimiter)") from None
    frame.columns = [str(c) for c in frame.columns]
    if layout.index:
        values = frame[frame.columns[0]]
        if values.dtype.kind not in "iu":
            raise DataError(f"{path}: the first column has no name in the header and does not hold whole numbers "
                            "(a pandas index would): name it in the header, or remove it")  # fmt: skip
        frame = frame.drop(columns=frame.columns[0])
        as_concat = "" if values.is_unique else ", with repeated values as pd.concat leaves them"
        notes.append(f"the first column (no name, whole numbers{as_concat}) is a pandas index: dropped")
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows")
    return frame, layout, notes


def _holds_numbers(column: Any) -> bool:
    """Whether a column of text also holds numbers that pandas parsed (not NaN: a missing cell)."""
    return _pandas().api.types.infer_dtype(column, skipna=True) not in ("string", "empty")


class _GzipBudget(gzip.GzipFile):
    """A gzipped CSV's text, decompressed as pandas reads it, refused once it passes a quarter of the
    memory available: its densest text (a digit and a comma a cell) becomes four times its size as
    numbers. Checked while streaming, as a plain file's size is checked before (:func:`load_csv`)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "rb")
        self.path, self.given = path, 0
        have = available_memory()
        self.limit = None if have is None else have // 4

    def _count(self, n: int) -> int:
        self.given += n
        if self.limit is not None and self.given > self.limit:
            raise DataError(f"{self.path}: decompressed, it holds more than {_size(self.given)} of text; as numbers "
                            "that may need four times as much, more than the memory available: save it as "
                            "X.npy,y.npy (np.save), which gpubp memory-maps and reads a batch at a time")  # fmt: skip
        return n

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._count(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self._count(len(data))
        return data

    def readinto(self, b: Any) -> int:
        return self._count(super().readinto(b))


def _missing(path: str) -> Any:
    raise DataError(f"{path}: file not found")


def load_csv(path: str, label_column: str | int | None = None, *, delimiter: str | None = None,
             columns: Columns | None = None, header: bool | None = None, decimal: str | None = None,
             thousands: str | None = None, encoding: str | None = None, labels: bool = True,
             table: Table | None = None) -> RawData:  # fmt: skip
    """A CSV, one sample a row, read by pandas. Without ``columns`` (training): the label column
    is ``label_column`` (a header name or an index, negative counts from the end), else the first
    of the names label/labels/target/class/y, else the last one. With a model's ``columns``: its
    features found by name (or position) and the label column if present
    (:func:`gpubp.columns.match`). ``header``, ``decimal``, ``thousands``, ``encoding``: see
    :func:`read_csv`. ``labels`` False: the label column is not read (predict). Rows with an empty
    label cell are left out, and counted in the notes. The feature columns are ``frame`` (text stays
    text: ``gpubp.tables`` decides what it is); ``X`` is their float64 matrix when they are all
    numbers with no missing cell, else None. ``table``: the model's rules for ``columns`` (predict,
    evaluate): a category column is read as its text, and a number column strictly, any cell that is
    no number refused."""
    check_fits(path, 2 * os.path.getsize(path) if os.path.exists(path) else 0)
    kinds, text = None, []
    if table is not None and columns is not None and len(table.rules) == len(columns.features):
        kinds = [r.kind for r in table.rules]
        text = [n for n, k in zip(columns.features, kinds, strict=True) if k == "category"]
    frame, layout, notes = read_csv(path, delimiter, header, columns, decimal=decimal, thousands=thousands,
                                    encoding=encoding, text_columns=text)  # fmt: skip
    as_text = bool(text) and layout.header is None  # every column read as text: the labels' numbers read here
    names = list(frame.columns) if layout.header is not None else None
    width = frame.shape[1]
    if columns is None:
        label = _training_label(path, names, width, label_column, notes)
        features = [j for j in range(width) if j != label]
    else:
        try:
            chosen = match(columns, names, label_column, path, width)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        label, features = chosen.label, chosen.features
        if chosen.extra:
            notes.append(f"columns not in the model, ignored: {', '.join(chosen.extra)}")
    y = None
    if label is not None and labels:
        y, kept = _labels(path, frame.iloc[:, label], layout, notes, as_text)
        if kept is not None:
            frame = frame.iloc[kept]
    part = _columns(path, frame, features, layout, label_column is not None or columns is not None, kinds)
    X = None
    if all(k.kind in "biuf" for k in part.dtypes) and not part.isna().to_numpy().any():
        X = part.to_numpy(dtype=np.float64)
    label_name = None if label is None else (names[label] if names else label)
    return RawData(X, y, path, feature_names=[names[j] for j in features] if names else None,
                   label_column=label_name, note=f"loaded whole, {_size(8 * part.size)}", label_index=label,
                   notes=notes, frame=part, first_line=_line(layout, 0))  # fmt: skip


def _training_label(path: str, names: list[str] | None, width: int, label_column: str | int | None,
                    notes: list[str]) -> int | None:  # fmt: skip
    if label_column is None:
        lower = [n.lower() for n in names or []]
        found = [n for n in LABEL_NAMES if n in lower]
        if len(found) > 1:  # x,y,class: 'y' is a coordinate as often as a target
            chosen = (names or [])[lower.index(found[0])]
            notes.append(f"label column {chosen!r}, chosen over {', '.join(repr(n) for n in found[1:])} "
                         f"(preferred in the order {', '.join(LABEL_NAMES)}; another with --label-column)")  # fmt: skip
        return lower.index(found[0]) if found else width - 1
    try:
        return match(Columns.of(None, width - 1), names or [str(j) for j in range(width)], label_column, path).label
    except ValueError as exc:
        if names is None and not str(label_column).lstrip("-").isdigit():
            raise DataError(f"{path}: no label column {label_column!r} (the file has no header)") from None
        raise DataError(str(exc)) from None


def _line(layout: CsvLayout, row: int) -> int:
    return row + 1 + (layout.header is not None)


def _columns(path: str, frame: Any, features: list[int], layout: CsvLayout, label_given: bool,
             kinds: list[str] | None = None) -> Any:  # fmt: skip
    """The feature columns: a column whose cells are numbers (or missing) as float64, NaN where
    missing; a column of text stays text (``gpubp.tables`` decides what it is). A column of
    numbers but for a few cells, or of numbers written with another delimiter's or decimal mark's
    commas, is refused naming the line and column: a number written wrongly, not a category.
    ``kinds``: a model's rule for each column (gpubp.tables): a category stays its text, a number
    column is refused for any cell that is no number, the other kinds are left to the rules."""
    part = frame.iloc[:, features].copy()
    for j, kind in enumerate(part.dtypes):
        rule = kinds[j] if kinds is not None else None
        if kind.kind in "biuf" or (rule is not None and rule != "number"):
            continue
        column = part.iloc[:, j].astype(str).str.strip()
        missing = part.iloc[:, j].isna().to_numpy() | column.str.lower().isin(MISSING).to_numpy()
        # read strictly: separators only between groups of three, one decimal mark (csvfiles.number_text)
        text = column.map(lambda c: _number_text(c, layout))
        number = text.notna().to_numpy()
        bad = ~(missing | number)
        if not bad.any():
            part.isetitem(j, text.where(~missing, "nan").astype(np.float64))
            continue
        cells = column[bad]
        written = cells.map(lambda c: bool(DECIMAL_COMMA.match(c)) or any(d in c for d in (",", ";", "\t")
                                                                          if d != layout.delimiter))  # fmt: skip
        # every other cell a number written with the other decimal mark (a wrong --decimal): refused, not
        # made a category of 62 levels or left out as free text
        other = "," if layout.decimal == "." else "."  # the same for every column: bound once below
        misread = cells.map(lambda c, m=other: m in c and is_number(c, m, None))
        if rule == "number" or number.sum() >= bad.sum() or written.all() or misread.all():
            row = int(np.flatnonzero(bad)[0])
            cell = column.iloc[row]
            raise DataError(f"{path}: line {_line(layout, int(part.index[row]))}, column {part.columns[j]!r}: not a "
                            f"number: {cell!r}{_hint(cell, layout, label_given)}")  # fmt: skip
        part.isetitem(j, part.iloc[:, j].where(~missing, None))
    return part


def _hint(cell: str, layout: CsvLayout, label_given: bool = False) -> str:
    """Why a feature cell may not read as a number: the delimiter, the decimal mark, or the labels."""
    others = [d for d in (",", ";", "\t") if d != layout.delimiter and d in cell]
    if layout.thousands is None and (GROUPS[","].match(cell) or GROUPS["."].match(cell)):
        mark = "," if "," in cell else "."
        return f" (a thousands separator? give --thousands '{mark}')"
    if DECIMAL_COMMA.match(cell) and layout.delimiter == ",":
        return " (a decimal comma: give --decimal ',' to read it as a number)"
    if is_number(cell, "," if layout.decimal == "." else ".", None):
        other = "," if layout.decimal == "." else "."
        return f" (the file's decimal mark is {layout.decimal!r}: give --decimal '{other}' if it is {other!r})"
    if others and not DECIMAL_COMMA.match(cell):
        shown = "tab" if others[0] == "\t" else repr(others[0])
        return f" (the cell holds {shown}: choose the delimiter with --delimiter)"
    if layout.decimal == "," and is_number(cell):
        return " (the file's other numbers have decimal commas: write it with one decimal mark)"
    if label_given:
        return " (write it as a number, or leave the cell empty if it is missing)"
    return " (if that column holds the labels, choose it with --label-column)"


def _labels(path: str, column: Any, layout: CsvLayout, notes: list[str],
            as_text: bool = False) -> tuple[np.ndarray, Any]:  # fmt: skip
    """(labels, the rows kept or None for all): numbers as float64, else the cells as text, as
    written (True/False, NA, None are text). Rows with an empty label cell are left out, counted in
    ``notes``; a non-finite label is refused. ``as_text``: the column was read as text, its
    numbers not read yet."""
    empty = column.isna().to_numpy().copy()
    marker = np.zeros(len(empty), dtype=bool)
    if column.dtype.kind not in "iuf":
        column = column.astype(str).str.strip()
        empty |= (column == "").to_numpy()  # a blank cell would become a class named ''
        # among numbers, NA (R's missing value), NaN, ? … are missing labels, not a class or a refusal
        marker = column.str.lower().isin(MISSING).to_numpy() & ~empty
        rest = ~(empty | marker)
        if marker.any() and rest.any() and column[rest].map(lambda c: _number_text(c, layout)).notna().all():
            empty |= marker
        else:
            marker[:] = False
        if layout.thousands or layout.decimal == "," or as_text:
            text = column.map(lambda c: _number_text(c, layout))
            if text[~empty].notna().all() and (~empty).any():
                column = text.where(~empty, "nan").astype(np.float64).rename(column.name)
    kept = None
    if empty.any():
        name = repr(column.name) if layout.header is not None else f"column {column.name}"
        lines = [_line(layout, int(r)) for r in column.index[empty][:5]]
        if empty.all():
            raise DataError(f"{path}: every cell of the label column {name} is empty")
        kept = np.flatnonzero(~empty)
        rows = "row" if empty.sum() == 1 else "rows"
        cell = "an empty or missing (NA)" if marker.any() else "an empty"
        notes.append(f"{int(empty.sum())} {rows} with {cell} label cell ({name}) left out (lines "
                     f"{', '.join(map(str, lines))}{', …' if empty.sum() > 5 else ''})")  # fmt: skip
        column = column.iloc[kept]
    if column.dtype.kind in "iuf" or (kept is not None and _all_numbers(column)):
        y = column.to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"{path}: the label column contains NaN or infinite values")
        return y, kept
    return column.to_numpy(dtype=str), kept


def _number_text(cell: Any, layout: CsvLayout) -> str | None:
    """:func:`number_text` of a cell as the file writes numbers; None for a missing one (an empty
    cell can stay NaN through ``astype(str)`` under pandas' string dtype: no number)."""
    return number_text(cell, layout.decimal, layout.thousands) if isinstance(cell, str) else None


def _all_numbers(column: Any) -> bool:
    try:
        column.astype(np.float64)
    except ValueError:
        return False
    return True


# -- dispatch -----------------------------------------------------------------------------------


READ_OPTIONS = ("delimiter", "header", "decimal", "thousands", "encoding")
SAME_NUMBERS = ("decimal", "thousands", "encoding")  # how a model's numbers were written: another file's too


def read_options(source: Any) -> dict[str, Any]:
    """How a CSV is read, from the options or a model's stored settings: delimiter, header, decimal mark,
    thousands separator, encoding (None: detected; UTF-8)."""
    get: Callable[[str], Any] = source.get if isinstance(source, dict) else lambda key: getattr(source, key, None)
    return {k: get(k) for k in READ_OPTIONS}


def is_csv(spec: str) -> bool:
    """Whether ``spec`` names a CSV file (.csv, .tsv, .txt, gzipped or not)."""
    return spec != "digits" and "," not in spec and spec.lower().removesuffix(".gz").endswith((".csv", ".tsv", ".txt"))


def load_data(spec: str, label_column: str | int | None = None, *, delimiter: str | None = None,
              columns: Columns | None = None, header: bool | None = None, decimal: str | None = None,
              thousands: str | None = None, encoding: str | None = None, labels: bool = True,
              table: Table | None = None) -> RawData:  # fmt: skip
    """Load ``spec``: ``digits``, a folder of IDX files, ``A,B`` (an IDX or .npy pair), ``.npz``,
    ``.npy`` or ``.csv`` (also ``.tsv``, ``.txt``, gzipped or not). ``label_column`` and
    ``delimiter`` are a CSV's (refused for other formats, never ignored); with a model's
    ``columns``, a CSV's columns are matched by name and other formats must have its width; with
    its ``table`` too, a CSV's columns are read by the table's rules (:func:`load_csv`)."""
    if not is_csv(spec):
        for option, value in (
            ("label_column (--label-column)", label_column),
            ("delimiter (--delimiter)", delimiter),
            ("header (--header/--no-header)", header),
            ("decimal (--decimal)", decimal),
            ("thousands (--thousands)", thousands),
            ("encoding (--encoding)", encoding),
        ):
            if value is not None:
                raise DataError(f"{spec}: {option} applies to CSV files, and this is not one (.csv, .tsv, .txt)")
    if is_csv(spec):
        if not os.path.exists(spec):
            raise DataError(f"{spec}: file not found")
        return load_csv(spec, label_column, delimiter=delimiter, columns=columns, header=header, decimal=decimal,
                        thousands=thousands, encoding=encoding, labels=labels, table=table)  # fmt: skip
    data = _load_other(spec)
    if columns is not None and data.X.shape[1] != len(columns.features):
        raise DataError(f"{data.source}: {data.X.shape[1]} features per row, the model was trained on "
                        f"{len(columns.features)}")  # fmt: skip
    return data


def _load_other(spec: str) -> RawData:
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
        return RawData(X, y, spec, note=_idx_note(X))
    if os.path.isdir(spec):
        return load_idx_folder(spec)
    if not os.path.exists(spec):
        raise DataError(f"{spec}: file not found")
    lower = spec.lower()
    if lower.endswith(".npz"):
        return load_npz(spec)
    if lower.endswith(".npy"):
        return load_npy_pair(spec, None)
    if "idx" in lower or "ubyte" in lower:
        X = read_idx(spec)
        if X.ndim == 1:
            raise DataError(f"{spec} is a labels file (1-D): give the images file too, as IMAGES,LABELS "
                            "(or the folder holding both)")  # fmt: skip
        return RawData(X.reshape(X.shape[0], -1), None, spec, note=_idx_note(X))
    raise DataError(f"{spec}: unknown data format: expected a folder of IDX files, .npz, .npy, .csv, or 'digits'")
