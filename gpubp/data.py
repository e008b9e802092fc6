"""Data made ready for a model: splits, scaling and the Dataset (file loaders: ``gpubp.loaders``).

:meth:`Dataset.prepare` takes a loader's :class:`RawData` (or a path) and makes it ready: labels
encoded (``gpubp.labels``), a fixed train/validation/test split held as row indices (never
copies), and a feature scaler fitted on the training rows only::

    from gpubp.data import Dataset
    ds = Dataset.prepare("digits")                    # or a path, or load_data(...)
    net.fit(ds.features("train"), ds.targets("train"))
    net.score(ds.features("test"), ds.targets("test"))

The loaders' names (``load_data``, ``load_digits``, ``RawData``, ``DataError``, ...) are importable
from here too.
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .labels import Labels, as_labels, output_count, targets
from .limits import Places, scale_overflow
from .loaders import (
    DataError,
    RawData,
    available_memory,
    check_fits,
    is_csv,
    load_csv,
    load_data,
    load_digits,
    load_idx_folder,
    load_npy_pair,
    load_npz,
    read_idx,
)
from .rows import chunk_rows, chunks, in_memory, is_row_source, where
from .tables import Table, kept_columns, log_lines, refuse_missing

__all__ = ["TASKS", "DataError", "Dataset", "RawData", "Rows", "Scaler", "available_memory",
           "check_fits", "fingerprint", "load_csv", "load_data", "load_digits", "load_idx_folder", "load_npy_pair",
           "load_npz", "read_idx", "row_hashes", "scored_rows", "split_rows", "stratified_split"]  # fmt: skip


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
            parts[k].append(idx[start : start + take])
            start += take
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


class ScaleOverflowError(ValueError):
    """A column's scaling statistics overflowed float64; ``column`` is its index."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


class Scaler:
    """Feature scaling fitted on training rows: ``standard`` (zero mean, unit variance), ``minmax``
    (to [0, 1]) or ``none``. Constant features are left centred but not divided by zero."""

    KINDS = ("standard", "minmax", "none")

    def __init__(self, kind: str = "standard") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown scaling {kind!r}: expected one of {', '.join(self.KINDS)}")
        self.kind = kind
        self.fitted = False
        self.shift: np.ndarray = np.zeros(0)  # (d,) once fitted
        self.scale: np.ndarray = np.ones(0)

    def fit(self, X: Any, rows: np.ndarray | None = None) -> Scaler:
        """Fit on ``X[rows]`` (all rows when None). A row source (memory-mapped file) is read in
        chunks of rows, its statistics accumulated in float64; nothing of its size is allocated."""
        if is_row_source(X):
            return self._fit_chunked(X, rows)
        if rows is not None:
            X = X[rows]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is named below, column by column
            if self.kind == "standard":
                self.shift, spread = X.mean(axis=0), X.std(axis=0)
            elif self.kind == "minmax":
                self.shift, spread = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
            else:
                self.shift, spread = np.zeros(X.shape[1]), np.ones(X.shape[1])
        return self._set(spread)

    def _set(self, spread: np.ndarray) -> Scaler:
        """scale ← spread (1 where a column is constant), refusing statistics that overflowed float64:
        scaling would turn such a column into zeros and train a model on nothing, silently."""
        bad = ~(np.isfinite(self.shift) & np.isfinite(spread))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ScaleOverflowError(f"column {j}: values too large to scale ({self.kind} scaling overflows float64: "
                             f"mean {self.shift[j]:.3g}, spread {spread[j]:.3g}); divide the data by a "
                             f"large constant first", j)  # fmt: skip
        self.scale = np.where(spread > 0, spread, 1.0)
        self.fitted = True
        return self

    def _fit_chunked(self, X: Any, rows: np.ndarray | None) -> Scaler:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is named in _set
            return self._set(self._chunked_spread(X, rows))

    def _chunked_spread(self, X: Any, rows: np.ndarray | None) -> np.ndarray:
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
        return spread

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
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
        scaler.fitted = True
        return scaler


FINGERPRINT_ROWS = 256  # rows a fingerprint hashes, at most


def _rows_for_one(fraction: float) -> int:
    """The fewest rows of a class for which the split's round(fraction × rows) is at least 1."""
    k = 1
    while round(fraction * k) < 1:
        k += 1
    return k


def sample_rows(n: int) -> np.ndarray:
    """Up to FINGERPRINT_ROWS evenly spaced row indices of ``n`` rows (the rows a fingerprint hashes)."""
    return np.unique(np.linspace(0, n - 1, min(n, FINGERPRINT_ROWS)).astype(np.int64)) if n else np.empty(0, np.int64)


def fingerprint(X: Any, y: Any = None) -> str:
    """``"n x d:hash"``: the shape and a hash of up to FINGERPRINT_ROWS evenly spaced rows (and their
    targets). The same file gives the same fingerprint wherever
    it lies; shuffled or edited rows (almost always) give another."""
    n = len(X)
    idx = sample_rows(n)
    h = hashlib.sha256(str(tuple(X.shape)).encode())
    h.update(np.ascontiguousarray(np.asarray(X[idx], dtype=np.float64)).tobytes())
    if y is not None:
        h.update("\x00".join(map(str, np.asarray(y)[idx].tolist())).encode())
    return f"{n}x{X.shape[1] if X.ndim > 1 else 1}:{h.hexdigest()[:16]}"


# -- which rows a model was trained on, by content ---------------------------------------------

_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on uint64: every input bit reaches every output bit."""
    h ^= h >> np.uint64(30)
    h *= _MIX[0]
    h ^= h >> np.uint64(27)
    h *= _MIX[1]
    h ^= h >> np.uint64(31)
    return h


def row_hashes(X: Any, rows: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash per row of ``X[rows]`` (all rows when None), shape (n,) uint64, of the row's
    values rounded to float32 in column order: the same row gives the same hash whatever its
    position, file format, label or dtype (a float32 and a float64 copy of the data agree; -0 is 0).
    Read in chunks of rows, so a memory-mapped file is never read whole."""
    n = len(X) if rows is None else len(rows)
    d = int(X.shape[1]) if len(X.shape) > 1 else 1
    out = np.empty(n, dtype=np.uint64)
    for part in chunks(n, chunk_rows(d, 16)):
        block = np.asarray(X[part] if rows is None else X[np.asarray(rows[part])]).reshape(-1, d)
        values = np.zeros((len(block), d + d % 2), dtype=np.float32)
        with np.errstate(over="ignore"):  # a value past float32 (a float64 run may hold 1e39) hashes as inf
            values[:, :d] = block
        values += np.float32(0)  # turns -0 into 0
        words = values.view(np.uint64)  # two float32 per 64-bit word: half the steps below
        h = np.full(len(block), np.uint64(d), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(words.shape[1]):  # a loop over column pairs, each step vectorised over the rows
                h ^= _mix(words[:, j] + _GOLDEN * np.uint64(j + 1))
                h = _mix(h)
        out[part] = h
    return out


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


def _places(raw: RawData, X: Any, index: np.ndarray | None, table: Table | None) -> Places | None:
    """Where a CSV's X came from (messages naming a cell): each row's line, from the frame's ``index``
    (rows with an empty label left out), and each column's file column, from ``table``'s rules."""
    if not is_csv(raw.source) or X is None or getattr(X, "ndim", 0) != 2:
        return None
    header = raw.feature_names is not None
    if table is not None:
        sources = [r.name for r in table.rules for _ in r.outputs]
    elif header:
        sources = list(raw.feature_names or [])
    else:  # the file's column number from 0, the label's column counted where it sits
        label = raw.label_index
        sources = [str(j + (label is not None and label <= j)) for j in range(int(X.shape[1]))]
    rows = np.arange(len(X)) if index is None else index
    return Places.of(rows, raw.first_line, sources, header, raw.label_column, raw.label_index)


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
    label_index: int | None = None  # the label's position among the file's columns (CSV)
    feature_names: list[str] | None = None  # the header's names of X's columns (CSV)
    notes: list[str] = field(default_factory=list)  # what reading the file decided (an index column dropped, ...)
    table: Table | None = None  # how a CSV's columns became X (gpubp.tables)
    places: Places | None = None  # a CSV's line of each row of X and file column of each column (messages)

    @classmethod
    def prepare(cls, data: RawData | str, *, task: str = "classify", label_column: str | int | None = None,
                val_fraction: float = 0.1, test_fraction: float = 0.2, split_seed: int = 0,
                scale: str = "standard", labels: Labels | None = None, scaler: Scaler | None = None,
                target: Scaler | None = None, task_chosen: bool = True, table: Table | None = None,
                choose: dict[str, Any] | None = None) -> Dataset:  # fmt: skip
        """Encode, split and scale ``data`` (a :class:`RawData` or a spec for :func:`load_data`).

        A CSV's columns become numbers by a :class:`~gpubp.tables.Table` fitted on the training
        rows (``choose``: its ``drop``, ``features`` and ``missing`` options), or by ``table``.
        ``labels``/``scaler``/``target``/``table``: reuse a model's (when resuming or evaluating)
        instead of fitting new ones. Regression targets are standardised on the training rows; predictions are
        mapped back with ``target.inverse``. ``task_chosen`` False (the command without ``--task``):
        a target of many whole numbers with few rows each is refused as ambiguous (a number or classes?).
        Raises :class:`DataError` when the rows cannot make the split or the targets the task."""
        raw = load_data(data, label_column) if isinstance(data, str) else data
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
        if raw.y is None:
            raise DataError(f"{raw.source}: no labels or targets found: training and evaluation need them")
        if (raw.X if raw.frame is None else raw.frame).shape[1] == 0 or (raw.frame is None and raw.X.ndim != 2):
            named = isinstance(raw.label_column, str)
            label = (
                ""
                if raw.label_column is None
                else (
                    f" than the label column {raw.label_column!r}"
                    if named
                    else f" than the label (column {raw.label_column})"
                )
            )
            raise DataError(f"{raw.source}: no feature columns: the file holds no column other{label}, and a "
                            "network needs at least one feature")  # fmt: skip
        has_test = raw.X_test is not None and raw.y_test is not None
        y, y_test = cls._encode(raw, task, labels)
        if task == "classify" and labels is None:
            labels = Labels.of(y, *([y_test] if has_test and y_test is not None else []))
            if len(labels) < 2:
                only = labels.classes.tolist()[0]
                raise DataError(f"{raw.source}: only one class ({only!r}) in the labels: nothing to learn")
            cls._check_classes(raw.source, y, labels, val_fraction, None if has_test else test_fraction)
            if not task_chosen:
                _check_task(raw, y, labels)
        if labels is not None:
            y = labels.encode(y, raw.source)
            y_test = None if y_test is None else labels.encode(y_test, raw.source)
        n = len(y)
        train, val, test = split_rows(y if task == "classify" else None, n, val_fraction,
                                      None if has_test else test_fraction, split_seed)  # fmt: skip
        cls._check_split(raw.source, n, train, val, test, val_fraction, None if has_test else test_fraction)
        X, notes = raw.X, list(raw.notes)
        index = None if raw.frame is None else raw.frame.index.to_numpy()  # the file's rows, some left out
        if raw.frame is not None:
            X, table = cls._table(raw, train, table, choose or {}, notes)
        places = _places(raw, X, index, table)
        if has_test and y_test is not None:
            rule = f"the data's own test files ({len(y_test)} rows)"
            test = np.arange(len(y_test))
        else:
            rule = (f"the {len(test)} rows held out from training (--test-fraction {test_fraction:g}, "
                    f"--split-seed {split_seed})")  # fmt: skip
        try:
            scaler = scaler if scaler is not None else Scaler(scale).fit(X, train)
        except ScaleOverflowError as exc:  # named by the file's line and column, not the matrix's index
            raise scale_overflow(raw.source, X, train, exc.column, places, "feature", scale) from None
        if task == "regress":
            if target is None:
                try:
                    target = Scaler("standard").fit(y[train].reshape(-1, 1))
                except ScaleOverflowError:
                    label_name = raw.label_column if isinstance(raw.label_column, str) else None
                    raise scale_overflow(raw.source, y, train, 0, places, "target", "standard", label_name) from None
            if target is not None:
                y = target.transform(y.reshape(-1, 1))[:, 0]
                y_test = None if y_test is None else target.transform(y_test.reshape(-1, 1))[:, 0]
        return cls(raw.source, task, X, y, train, val, test, scaler, labels, target,
                   raw.X_test if has_test else None, y_test, rule, raw.label_column,
                   fingerprint(X, raw.y), raw.note, raw.label_index, raw.feature_names,
                   notes, table, places)  # fmt: skip

    @staticmethod
    def _table(raw: RawData, train: np.ndarray, table: Table | None, choose: dict[str, Any],
               notes: list[str]) -> tuple[np.ndarray, Table]:  # fmt: skip
        """X from the file's columns by ``table``, or by a table fitted on the training rows (its
        decisions added to ``notes``); the frame is let go once X is made."""
        try:
            if table is None:
                for option in ("drop", "features"):
                    if raw.label_column is not None and str(raw.label_column) in (choose.get(option) or ()):
                        raise ValueError(f"{raw.source}: --{option} names {str(raw.label_column)!r}, the label column: "
                                         "--drop and --features choose among the features")  # fmt: skip
                if choose.get("missing") == "refuse":  # every row, not the training rows alone
                    names = kept_columns([str(c) for c in raw.frame.columns], choose.get("drop") or (),
                                   choose.get("features") or ())  # fmt: skip
                    refuse_missing(raw.frame[names], raw.source, raw.first_line)
                fitted = Table.fit(raw.frame.iloc[train], source=raw.source, first_line=raw.first_line,
                                   **{k: v for k, v in choose.items() if v is not None})  # fmt: skip
                notes.extend(log_lines(fitted))
                table = fitted
            if raw.feature_names is not None:  # named columns: a model needs only the ones it reads
                table = table.kept()
                missing = [c for c in table.inputs if c not in raw.frame.columns]
                if missing:
                    raise ValueError(f"{raw.source}: no column {missing[0]!r}, which the model reads")
                positions = [list(raw.frame.columns).index(c) for c in table.inputs]
            else:
                positions = list(range(raw.frame.shape[1]))
            X, more = table.transform(raw.frame, raw.source, raw.first_line, positions)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        notes.extend(more)
        raw.frame = None
        gc.collect()  # the frame's columns refer back to it (pandas' caches): freed now, before X is scaled
        return X, table

    @staticmethod
    def _check_classes(source: str, y: np.ndarray, labels: Labels, val_fraction: float,
                       test_fraction: float | None) -> None:  # fmt: skip
        """Refuse classes most of which have too few rows for a stratified split to give each a
        validation and a test row: such a target is a number (diabetes' 25..346), not a class."""
        need = max((_rows_for_one(f) for f in (val_fraction, test_fraction) if f), default=1)
        counts = np.bincount(labels.encode(y, source), minlength=len(labels))
        few = int((counts < need).sum())
        if len(labels) > 2 and 2 * few > len(labels):
            numbers = np.asarray(y).dtype.kind in "biuf"
            advice = ("is the target a number? use --task regress" if numbers
                      else "is this the label column? choose another with --label-column")  # fmt: skip
            raise DataError(f"{source}: {few} of the {len(labels)} classes have fewer than {need} rows, too few for "
                            f"the validation and test split: {advice}")  # fmt: skip

    @staticmethod
    def _encode(raw: RawData, task: str, labels: Labels | None) -> tuple[np.ndarray, np.ndarray | None]:
        ys = [raw.y, raw.y_test]
        if task == "regress":
            out: list[np.ndarray | None] = []
            for y in ys:
                if y is None:
                    out.append(None)
                    continue
                y = np.asarray(y)
                if y.dtype.kind not in "biuf":
                    first = y.reshape(-1)[0] if y.size else ""
                    raise DataError(f"{raw.source}: regression targets must be numbers, got text values (e.g. "
                                    f"{str(first)!r})")  # fmt: skip
                y = y.astype(np.float64).reshape(len(y), -1)
                if y.shape[1] != 1:
                    raise DataError(f"{raw.source}: --task regress expects one target per row, got {y.shape[1]}")
                out.append(y[:, 0])
            return cast(np.ndarray, out[0]), out[1]  # prepare has refused data without targets
        try:
            return tuple(None if y is None else as_labels(y, raw.source) for y in ys)  # type: ignore[return-value]
        except ValueError as exc:
            raise DataError(str(exc)) from None

    @staticmethod
    def _check_split(source: str, n: int, train: np.ndarray, val: np.ndarray, test: np.ndarray,
                     val_fraction: float, test_fraction: float | None) -> None:  # fmt: skip
        empty = [name for name, rows, frac in (("validation", val, val_fraction), ("test", test, test_fraction))
                 if frac and len(rows) == 0]  # fmt: skip
        held = val_fraction + (test_fraction or 0.0)
        if held >= 1:  # the fractions, not the data, leave nothing to train on
            plus = f" + test fraction {test_fraction:g}" if test_fraction else ""
            raise DataError(f"validation fraction {val_fraction:g}{plus} = {held:g} leaves no training rows: "
                            "they must add up to less than 1 (--val-fraction, --test-fraction)")  # fmt: skip
        if len(train) == 0 or empty:
            raise DataError(
                f"{source}: {n} rows are too few for the split ({len(train)} train, {len(val)} validation, "
                f"{len(test)} test rows): give more rows, or --val-fraction 0 / --test-fraction 0"
            )

    # -- rows -----------------------------------------------------------------------------------

    def _part(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if part not in ("train", "val", "test"):
            raise ValueError(f"unknown part {part!r}: expected train, val or test")
        if part == "test" and self.X_test is not None:
            return self.X_test, cast(np.ndarray, self.y_test), self.test  # a test pair has both
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
        rows = X[idx]  # a copy, scaled in place: Scaler.transform's numbers, with no second copy of the rows
        if rows.dtype != np.float64 or self.scaler.shift is None or rows.shape[1] != len(self.scaler.shift):
            return self.scaler.transform(rows)
        rows -= self.scaler.shift
        rows /= self.scaler.scale
        return rows

    def targets(self, part: str, n_out: int | None = None, loss: str = "cross_entropy") -> np.ndarray:
        """Targets of ``part``: class indices (one-hot or 0/1 for ``loss`` other than cross_entropy,
        given ``n_out``), or the (standardised) regression values."""
        _, y, idx = self._part(part)
        if self.task == "regress" or loss == "cross_entropy" or n_out is None:
            return y[idx]
        return targets(y[idx], n_out, loss)

    def n_outputs(self, loss: str) -> int:
        """Output units a network needs: 1 for regression, else :func:`gpubp.labels.output_count`."""
        if self.task == "regress" or self.labels is None:
            return 1
        return output_count(len(self.labels), loss)


# a numeric target with more distinct values than this, and fewer rows per value on average than
# ROWS_PER_CLASS, is as likely a number (a price in steps, a count) as classes: the command asks
MANY_CLASSES = 20
ROWS_PER_CLASS = 50


def _check_task(raw: RawData, y: np.ndarray, labels: Labels) -> None:
    """Refuse a target of many whole numbers with few rows each when the task was not chosen: a
    54-class classifier of prices in $10k steps scores 9 %, the same column regressed R² 0.88."""
    k, n = len(labels), len(y)
    if labels.classes.dtype.kind not in "biuf" or k <= MANY_CLASSES or n / k >= ROWS_PER_CLASS:
        return
    values = labels.classes
    shown = ", ".join(f"{v:g}" for v in values[:3].tolist()) + f", ..., {values[-1]:g}"
    column = f" {raw.label_column!r}" if isinstance(raw.label_column, str) else ""
    raise DataError(f"{raw.source}: the target{column} holds {k} distinct whole numbers ({shown}), {n / k:.1f} rows "
                    f"per value: a number to predict, or {k} classes? say which with --task regress or "
                    f"--task classify")  # fmt: skip


def scored_rows(data: RawData, split: str | None = None, hashes: dict[str, np.ndarray] | None = None,
                ) -> tuple[Any, np.ndarray | None, np.ndarray, str, str]:  # fmt: skip
    """The one rule for which rows of ``data`` a model is tested on.

    ``hashes``: the model's ``heldout`` and ``trained`` row hashes (:func:`row_hashes` of the rows
    held out from training and of the training and validation rows), None for a model saved before
    they were stored. Returns (X rows, y rows or None, row numbers in the file, "test" or "all", why
    in words). By default: the data's own test files if it has them; else, found by content (whatever
    the rows' order, the file's format or the labels), the model's held-out rows in the file, never
    one of its training rows; a file with none of them: every row that is not a training row. A model
    without hashes cannot tell: every row. ``split="all"``: every row of the main files;
    ``split="test"``: refuse data that holds none of the model's held-out rows."""
    if split not in (None, "test", "all"):
        raise ValueError(f"unknown split {split!r}: expected 'test' or 'all'")
    n = len(data.X)
    if split == "all":
        return data.X, data.y, np.arange(n), "all", f"all {n} rows (--split all)"
    if data.X_test is not None:
        return (data.X_test, data.y_test, np.arange(len(data.X_test)), "test",
                f"the {len(data.X_test)} rows of the data's own test files")  # fmt: skip
    if not hashes or "heldout" not in hashes or "trained" not in hashes:
        if split == "test":
            raise DataError(f"{data.source}: --split test: the model stores no hashes of its rows, so gpubp cannot "
                            "tell which rows were held out; leave --split out to use every row")  # fmt: skip
        return (data.X, data.y, np.arange(n), "all",
                f"all {n} rows (the model stores no hashes of its training rows: gpubp cannot tell whether these "
                "are they)")  # fmt: skip
    h = row_hashes(data.X)
    heldout, trained = np.asarray(hashes["heldout"]), np.asarray(hashes["trained"])
    # a held-out row equal to a training row (a duplicate in the data) counts as a training row
    is_trained = np.isin(h, trained)
    is_held = np.isin(h, heldout) & ~is_trained
    expected = len(np.setdiff1d(heldout, trained))
    n_held, n_trained = int(is_held.sum()), int(is_trained.sum())
    n_other = n - n_held - n_trained
    if n_held:
        rows = np.flatnonzero(is_held)
        found = (f"all {expected}" if len(np.unique(h[rows])) >= expected
                 else f"only {len(np.unique(h[rows]))} of the {expected}")  # fmt: skip
        also = [f"{n_trained} training rows" if n_trained else "", f"{n_other} other rows" if n_other else ""]
        also_text = " and ".join(a for a in also if a)
        why = (f"the {n_held} rows held out from training ({found} held-out rows of the model, found by content"
               + (f"; the file's {also_text} are not scored" if also_text else "") + ")")  # fmt: skip
        return (*_take(data, rows), "test", why)
    if split == "test":
        raise DataError(f"{data.source}: --split test: the file holds none of the rows the model held out from "
                        "training; leave --split out to use its other rows")  # fmt: skip
    if n_trained == n:
        none = "" if len(heldout) else " (it was trained with no test split)"
        raise DataError(f"{data.source}: all {n} rows are rows the model was trained on{none}, none held out: "
                        "use --split all to score them anyway")  # fmt: skip
    if n_trained:
        rows = np.flatnonzero(~is_trained)
        why = (f"the {len(rows)} rows that are not among the model's training rows (the file's {n_trained} "
               "training rows are not scored)")  # fmt: skip
        return (*_take(data, rows), "all", why)
    return data.X, data.y, np.arange(n), "all", f"all {n} rows (none is among the model's training rows)"


def _take(data: RawData, rows: np.ndarray) -> tuple[Any, np.ndarray | None, np.ndarray]:
    X = Rows(data.X, rows) if is_row_source(data.X) else data.X[rows]  # a mapped file: no copy
    return X, None if data.y is None else np.asarray(data.y)[rows], rows


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
        self.shape = (len(X) if self.index is None else len(self.index), int(X.shape[1]))
        self.dtype = np.dtype(np.float64) if scaler is not None else np.dtype(X.dtype)
        self.in_memory = in_memory(X)  # rows in this process's memory, not a file's (gpubp.rows.in_memory)
        at = where(X)  # errors name the file only when X is all of it; with an index, its rows in the file too
        if at:
            self.filename = at.removeprefix(" in ")
            if self.index is not None:
                self.row_in_file = self._row_in_file

    def __len__(self) -> int:
        return self.shape[0]

    def _row_in_file(self, i: int) -> int:
        """The file's row that is row ``i`` here (named in errors)."""
        return int(cast(np.ndarray, self.index)[i])  # set only where there is an index

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
