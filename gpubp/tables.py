"""Tables as they come: each column's type, and the rules that turn it into the network's numbers.

:meth:`Table.fit` decides, on the training rows of a frame of raw feature columns (as
``gpubp.loaders`` reads a CSV: numbers as float64 with NaN where a cell is missing, text as
text), what each column is and how it becomes numbers, as fastai's ``Categorify`` /
``FillMissing`` or scikit-learn's ``OneHotEncoder`` + ``SimpleImputer(add_indicator=True)`` do:

- **number**: as it is; a missing cell becomes the training median, plus an indicator column
  ``NAME missing`` (1 where the cell was missing) when the training rows had missing cells;
- **bool** (every cell true/false, any case): 1 / 0; missing as a number's;
- **category** (text): one column ``NAME=LEVEL`` per level seen in the training rows (one-hot),
  a missing cell its own level ``NAME=(missing)`` when training had one; a level never seen in
  training is all zeros, counted in the log;
- **date** (every cell ``YYYY-MM-DD``, optionally with a time): days since 1970-01-01, missing as
  a number's;
- **left out**: free text and identifiers (a text column with a distinct value in nearly every
  row, a whole-number column unique and increasing, a column named like an id and nearly unique),
  and the columns ``--drop`` names; a column named in ``--features`` is never left out by a guess.

The decisions are data of the model (:meth:`to_dict`, stored in the model file) and
:meth:`transform` applies them unchanged at predict time. The rules, each with a test, are in
docs/data-formats.md ("Columns of a table").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# cells that are missing in a feature column (compared stripped, any case); a label's only missing cell is empty
MISSING = ("", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>", "?")
MISSING_LEVEL = "(missing)"
FREE_TEXT = 0.9  # a text column with distinct values in at least this share of its rows is free text
FEW_ROWS = 30  # identifiers and free text are told only on at least this many rows
_BOOL = {"true": 1.0, "false": 0.0}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_ID_NAME = re.compile(r"^(?:id|.*[_\s.-]id|id[_\s.-].*|.*[a-z]Id|.*[a-z]ID|.*_?ID)$")
KINDS = ("number", "bool", "category", "date", "left out")


def named_like_id(name: str) -> bool:
    """``id``, ``customer_id``, ``id_2``, ``PassengerId``, ``CustomerID``: a name that says identifier."""
    return bool(_ID_NAME.match(name.strip())) or name.strip().lower() == "id"


@dataclass
class Rule:
    """How one raw column becomes numbers: its ``kind`` (one of KINDS), the ``fill`` for a missing
    cell (number, bool, date: the training median), the category ``levels`` (in their column
    order), whether an ``indicator`` column marks missing cells, the training rows' ``missing``
    count, and ``why`` a column was left out."""

    name: str
    kind: str
    fill: float = 0.0
    levels: list[str] = field(default_factory=list)
    indicator: bool = False
    missing: int = 0
    why: str = ""

    @property
    def outputs(self) -> list[str]:
        """Names of the network's input columns this column becomes."""
        if self.kind == "left out":
            return []
        if self.kind == "category":
            return [f"{self.name}={level}" for level in self.levels]
        return [self.name] + ([f"{self.name} missing"] if self.indicator else [])


def is_missing(column: Any) -> np.ndarray:
    """Which cells of a pandas column are missing (NaN, None, or one of MISSING as text), (n,) bool."""
    values = column.to_numpy()
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "biu":
        return np.zeros(len(values), dtype=bool)
    text = column.astype(str).str.strip().str.lower()
    return (column.isna() | text.isin(MISSING)).to_numpy()


def _text(column: Any) -> Any:
    return column.astype(str).str.strip()


class Table:
    """The rules of a table's feature columns, in the order of the model's raw input columns."""

    def __init__(self, rules: Sequence[Rule], refuse: bool = False) -> None:
        self.rules = list(rules)
        self.refuse = refuse  # --missing refuse: a missing cell is refused at predict time too

    @property
    def inputs(self) -> list[str]:
        """The raw columns the rules read, in order."""
        return [r.name for r in self.rules]

    @property
    def features(self) -> list[str]:
        """The network's input columns, in order."""
        return [name for r in self.rules for name in r.outputs]

    @property
    def width(self) -> int:
        return len(self.features)

    @property
    def identity(self) -> bool:
        """Whether the rules pass numbers through unchanged (every column a number, nothing imputed)."""
        return all(r.kind == "number" and not r.indicator for r in self.rules)

    def kept(self) -> Table:
        """The rules without the left-out columns (what a file with named columns must provide)."""
        return Table([r for r in self.rules if r.kind != "left out"], self.refuse)

    # -- fitting ----------------------------------------------------------------------------------

    @classmethod
    def fit(cls, frame: Any, *, drop: Sequence[str] = (), features: Sequence[str] = (), missing: str = "impute",
            source: str = "data", first_line: int = 1) -> Table:  # fmt: skip
        """The rules for ``frame``'s columns (a pandas DataFrame of the training rows' raw feature
        columns; its index is the row number in the file, line ``index + first_line``). ``drop``:
        columns left out; ``features``: the only columns kept (never left out by a guess);
        ``missing="refuse"``: a missing cell is refused, counted per column. Raises ValueError for
        a name that is no column, and for missing cells under ``refuse``."""
        names = [str(c) for c in frame.columns]
        for option, chosen in (("--drop", drop), ("--features", features)):
            unknown = [c for c in chosen if c not in names]
            if unknown:
                raise ValueError(f"{source}: {option}: no column {unknown[0]!r} (the feature columns are "
                                 f"{', '.join(names[:12])}{', …' if len(names) > 12 else ''})")  # fmt: skip
        both = set(drop) & set(features)
        if both:
            raise ValueError(f"--drop and --features both name {sorted(both)[0]!r}: give it in one of them")
        if missing not in ("impute", "refuse"):
            raise ValueError(f"unknown missing rule {missing!r}: expected impute or refuse")
        gaps = {name: is_missing(frame.iloc[:, j]) for j, name in enumerate(names)}
        if missing == "refuse":  # the columns the network reads: a dropped column's gaps are no matter
            refuse_missing(frame, source, first_line, {n: gaps[n] for n in kept_columns(names, drop, features)})
        rules = []
        for j, name in enumerate(names):
            if name in drop or (features and name not in features):
                why = "--drop" if name in drop else "not in --features"
                rules.append(Rule(name, "left out", why=why, missing=int(gaps[name].sum())))
                continue
            rules.append(_rule(name, frame.iloc[:, j], gaps[name], guess=name not in features))
        if all(r.kind == "left out" for r in rules):
            raise ValueError(f"{source}: no feature column is left ({'; '.join(describe(r) for r in rules[:3])})")
        return cls(rules, refuse=missing == "refuse")

    # -- applying ---------------------------------------------------------------------------------

    def transform(self, frame: Any, source: str = "data", first_line: int = 1,
                  positions: Sequence[int] | None = None, *,
                  number: Callable[[str], str | None] | None = None) -> tuple[np.ndarray, list[str]]:  # fmt: skip
        """The network's input columns (n, width) float64 for ``frame``'s raw columns, taken by
        position (the caller matched them to :attr:`inputs`; ``positions``: the frame's columns that
        are the inputs, read in place rather than copied into a new frame), and the log's notes:
        unseen levels and missing cells where training had none, counted per column. A number
        column holding text is refused, naming the line; its numbers written as text are read strictly
        by ``number`` (a cell's text as float() reads it, or None: a file's decimal mark and thousands
        separator, :func:`gpubp.csvfiles.number_text`; default: a point, no separators)."""
        if positions is not None:
            frame = _Columns(frame, positions)
        if frame.shape[1] != len(self.rules):
            raise ValueError(f"{source}: {frame.shape[1]} columns, the table's rules read {len(self.rules)} "
                             f"({', '.join(self.inputs)})")  # fmt: skip
        if self.refuse:
            gaps = {r.name: is_missing(frame.iloc[:, j]) for j, r in enumerate(self.rules) if r.kind != "left out"}
            refuse_missing(frame, source, first_line, gaps, advice=REFUSED_AT_PREDICT)
        n = len(frame)
        X = np.empty((n, self.width), dtype=np.float64)
        notes: list[str] = []
        k = 0
        for j, rule in enumerate(self.rules):
            width = len(rule.outputs)
            if width:
                _encode(rule, frame.iloc[:, j], X[:, k : k + width], notes, source, first_line, number)
            k += width
        return X, notes

    # -- storing ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [asdict(r) for r in self.rules], "refuse": self.refuse}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Table:
        return cls([Rule(**r) for r in stored["rules"]], bool(stored.get("refuse", False)))


class _Columns:
    """Some of a frame's columns, by position, without a copy (what transform reads of a frame)."""

    def __init__(self, frame: Any, positions: Sequence[int]) -> None:
        self.frame, self.positions = frame, list(positions)
        self.shape = (len(frame), len(self.positions))
        self.index = frame.index
        self.iloc = self

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, key: tuple[Any, int]) -> Any:
        return self.frame.iloc[:, self.positions[key[1]]]


def describe(rule: Rule) -> str:
    """One log line for a column that is not a plain number: its kind, levels and missing count."""
    gaps = f", {rule.missing} missing" if rule.missing else ""
    if rule.kind == "left out":
        if rule.why in ("--drop", "not in --features"):
            return f"column {rule.name!r}: left out ({rule.why})"
        return f"column {rule.name!r}: left out, {rule.why} (to use it, name it in --features)"
    if rule.kind == "category":
        shown = [lv for lv in rule.levels if lv != MISSING_LEVEL]
        few = ", ".join(shown[:6]) + (f", … ({len(shown)} in all)" if len(shown) > 6 else "")
        own = f" (missing cells are their own level {MISSING_LEVEL})" if MISSING_LEVEL in rule.levels else ""
        return f"column {rule.name!r}: category, {len(shown)} levels ({few}), one-hot{gaps}{own}"
    fill = f"{rule.fill:.6g}" if rule.kind != "date" else f"{rule.fill:.1f} days"
    filled = f" (filled with the training median {fill}, and a column '{rule.name} missing')" if rule.indicator else ""
    what = {"bool": "boolean, true 1 / false 0", "date": "date, as days since 1970-01-01",
            "number": "number"}[rule.kind]  # fmt: skip
    return f"column {rule.name!r}: {what}{gaps}{filled}"


def log_lines(table: Table) -> list[str]:
    """The log's lines for a fitted table: one per column that is not a number without missing cells."""
    return [describe(r) for r in table.rules if not (r.kind == "number" and not r.missing)]


def kept_columns(names: Sequence[str], drop: Sequence[str] = (), features: Sequence[str] = ()) -> list[str]:
    """The columns ``--drop`` and ``--features`` leave to the network, in ``names``' order."""
    return [n for n in names if n not in drop and (not features or n in features)]


REFUSED_AT_TRAIN = "leave --missing out to fill them (median, or a level of their own) and mark them"
REFUSED_AT_PREDICT = "the model was trained with --missing refuse: fill them, or train it again without that option"


def refuse_missing(frame: Any, source: str = "data", first_line: int = 1,
                   gaps: dict[str, np.ndarray] | None = None, advice: str = REFUSED_AT_TRAIN) -> None:  # fmt: skip
    """Refuse (ValueError) a frame with missing cells: counted per column, the first line of each
    and of all named (``--missing refuse``); line = the row's index + ``first_line``; ``advice``
    says what to do (at training time, or with a trained model)."""
    if gaps is None:
        gaps = {str(name): is_missing(frame.iloc[:, j]) for j, name in enumerate(frame.columns)}
    counted = [(name, int(g.sum()), int(frame.index[np.flatnonzero(g)[0]]) + first_line)
               for name, g in gaps.items() if g.any()]  # fmt: skip
    if counted:
        first = min(line for _, _, line in counted)
        shown = ", ".join(f"{name!r} {k} (first at line {line})" for name, k, line in counted[:6])
        more = f" and {len(counted) - 6} more columns" if len(counted) > 6 else ""
        raise ValueError(f"{source}: line {first}: missing cells (--missing refuse): {shown}{more}; {advice}")


def _rule(name: str, column: Any, gap: np.ndarray, guess: bool) -> Rule:
    """The rule for one column of training rows (``guess``: identifiers and free text may be left out)."""
    present = column[~gap]
    n, missing = len(column), int(gap.sum())
    if len(present) == 0:
        return Rule(name, "left out", why="every cell is missing", missing=missing)
    values = present.to_numpy()
    if values.dtype.kind == "b":
        values = values.astype(np.float64)
        return Rule(name, "bool", float(np.median(values)), indicator=missing > 0, missing=missing)
    if values.dtype.kind in "iuf":
        values = values.astype(np.float64)
        whole = bool(np.all(values == np.round(values)))
        distinct = len(np.unique(values))
        if guess and n >= FEW_ROWS and whole and distinct == len(values) and bool(np.all(np.diff(values) > 0)):
            return Rule(name, "left out", why="an identifier (whole numbers, unique and increasing)", missing=missing)
        if guess and n >= FEW_ROWS and named_like_id(name) and distinct >= FREE_TEXT * len(values):
            return Rule(name, "left out", why="an identifier (named like one, a distinct value in nearly every row)",
                        missing=missing)  # fmt: skip
        return Rule(name, "number", float(np.median(values)), indicator=missing > 0, missing=missing)
    text = _text(present)
    lower = set(text.str.lower().unique())
    if lower <= set(_BOOL):
        ones = text.str.lower().map(_BOOL).to_numpy(dtype=np.float64)
        return Rule(name, "bool", float(np.median(ones)), indicator=missing > 0, missing=missing)
    if bool(text.str.match(_DATE).all()):
        days = _days(text)
        if not np.isnan(days).any():
            return Rule(name, "date", float(np.median(days)), indicator=missing > 0, missing=missing)
    distinct = text.nunique()
    if guess and n >= FEW_ROWS and distinct >= FREE_TEXT * len(text):
        kind = "an identifier (named like one" if named_like_id(name) else "free text ("
        sep = ", " if kind.endswith("one") else ""
        return Rule(name, "left out", why=f"{kind}{sep}{distinct} distinct values in {len(text)} rows)",
                    missing=missing)  # fmt: skip
    levels = sorted(text.unique().tolist()) + ([MISSING_LEVEL] if missing else [])
    return Rule(name, "category", levels=levels, missing=missing)


def _days(text: Any) -> np.ndarray:
    """Days since 1970-01-01 of ISO dates (NaN where a cell is not a real date, as 2024-02-30)."""
    import pandas as pd

    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601")
    days = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return np.asarray(days, dtype=np.float64)


def _encode(rule: Rule, column: Any, out: np.ndarray, notes: list[str], source: str, first_line: int,
            number: Callable[[str], str | None] | None = None) -> None:  # fmt: skip
    """Write ``column``'s numbers into ``out`` (n, len(rule.outputs)) by ``rule`` (``number``: as
    :meth:`Table.transform`)."""
    gap = is_missing(column)
    n_gap = int(gap.sum())
    if rule.kind == "category":
        text = _text(column).to_numpy()
        out[:] = 0.0
        position = {level: k for k, level in enumerate(rule.levels)}
        codes = np.fromiter((position.get(t, -1) for t in text), dtype=np.int64, count=len(text))
        if MISSING_LEVEL in position:
            codes[gap] = position[MISSING_LEVEL]
        else:
            codes[gap] = -2
        seen = codes >= 0
        out[np.flatnonzero(seen), codes[seen]] = 1.0
        unseen = int((codes == -1).sum())
        if unseen:
            few = sorted(set(text[codes == -1].tolist()))
            shown = ", ".join(repr(t) for t in few[:3]) + (", …" if len(few) > 3 else "")
            notes.append(f"column {rule.name!r}: {unseen} cells hold a level not seen in training ({shown}): "
                         "encoded as no level (all zeros)")  # fmt: skip
        if n_gap and MISSING_LEVEL not in position:
            notes.append(f"column {rule.name!r}: {n_gap} missing cells, none in training: encoded as no level")
        return
    values = np.array(_numbers(rule, column, gap, source, first_line, number), dtype=np.float64)  # writable
    if n_gap and not rule.indicator:
        notes.append(f"column {rule.name!r}: {n_gap} missing cells, none in training: filled with the training "
                     f"median {rule.fill:.6g}")  # fmt: skip
    values[gap] = rule.fill
    out[:, 0] = values
    if rule.indicator:
        out[:, 1] = gap


def _numbers(rule: Rule, column: Any, gap: np.ndarray, source: str, first_line: int,
             number: Callable[[str], str | None] | None = None) -> np.ndarray:  # fmt: skip
    """The column's cells as float64 (any value where missing) by a number, bool or date rule; a
    number written as text read strictly by ``number`` (default :func:`_point_number`)."""
    raw = column.to_numpy()
    if rule.kind == "number" and raw.dtype.kind in "biuf":
        return raw.astype(np.float64)  # a copy: the caller fills the gaps
    if rule.kind == "bool" and raw.dtype.kind == "b":
        return raw.astype(np.float64)
    text = _text(column)
    if rule.kind == "bool":
        values = text.str.lower().map(_BOOL).to_numpy(dtype=np.float64)
    elif rule.kind == "date":
        values = _days(text.where(~gap, "1970-01-01"))
    else:  # as the loaders read a file's numbers, never pandas' looser to_numeric
        reader = number or _point_number
        read = text.map(lambda c: reader(c) if isinstance(c, str) else None)
        values = read.where(~gap & read.notna(), "nan").astype(np.float64).to_numpy()
    bad = np.isnan(values) & ~gap
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        expected = {"number": "a number", "bool": "true or false", "date": "a date (YYYY-MM-DD)"}[rule.kind]
        raise ValueError(f"{source}: line {int(column.index[r]) + first_line}, column {rule.name!r}: "
                         f"{text.iloc[r]!r} is not {expected}, as the column was in training")  # fmt: skip
    return values


def _point_number(cell: str) -> str | None:
    """``cell`` when float() reads it (as gpubp.csvfiles.number_text does with a decimal point and no
    thousands separator: csvfiles reads this module's MISSING, so it is not imported here), else None."""
    try:
        float(cell)
    except ValueError:
        return None
    return cell
