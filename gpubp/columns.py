"""Columns: which input column is which feature, by name, as scikit-learn's ``feature_names_in_``.

A model keeps the :class:`Columns` it was trained on (the feature names in the network's input
order, whether they came from the data or were generated as ``x0, x1, …``, and the label column's
name and position). :func:`match` finds them among another input's columns (a CSV header, a
DataFrame's columns); rows without names must have exactly the model's width. The rules, with an
example each, are in docs/data-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Columns:
    """``features``: names of the network's inputs, in order; ``named``: they came from the data
    (a header, a DataFrame) rather than generated ``x0..``; ``label``: the label column's name (its
    header cell, or None) and ``label_index`` its position among the training file's columns."""

    features: tuple[str, ...]
    named: bool = False
    label: str | None = None
    label_index: int | None = None

    @classmethod
    def of(cls, names: list[str] | None, width: int, label: str | int | None = None,
           label_index: int | None = None) -> Columns:  # fmt: skip
        """The columns of training data: its ``names`` (None: generated ``x0..x{width-1}``)."""
        if names is None:
            return cls(tuple(f"x{j}" for j in range(width)), False, None, label_index)
        if len(names) != width:
            raise ValueError(f"{len(names)} feature names for {width} features")
        return cls(tuple(str(n) for n in names), True, label if isinstance(label, str) else None, label_index)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "named": self.named, "label": self.label,
                "label_index": self.label_index}  # fmt: skip

    @classmethod
    def from_settings(cls, settings: dict[str, Any], width: int) -> Columns:
        """A model file's columns; a file written before columns were stored has generated names."""
        stored = settings.get("columns")
        if stored is None:
            label = settings.get("label_column")
            return cls(tuple(f"x{j}" for j in range(width)), False, label if isinstance(label, str) else None,
                       settings.get("label_index"))  # fmt: skip
        return cls(tuple(stored["features"]), bool(stored["named"]), stored.get("label"), stored.get("label_index"))


@dataclass(frozen=True)
class Selection:
    """Where the model's columns are in an input: ``features`` the input's column positions in the
    model's order, ``label`` the label's position (None: no label column), ``extra`` the names of
    columns that are neither (ignored)."""

    features: list[int]
    label: int | None
    extra: list[str]


def match(columns: Columns, names: list[str] | None, label_column: str | int | None = None,
          source: str = "data", width: int | None = None) -> Selection:  # fmt: skip
    """Find ``columns`` among an input's column ``names`` (None: the input has no header, and
    ``width`` columns).

    With names (and a model whose names came from data): each feature by its name, in any order;
    the label column is ``label_column`` when given (refused when absent), else the model's stored
    label name when present; other columns are extra. A missing feature is refused, naming it.
    Without names: exactly the model's width, or one more when ``label_column`` gives the label's
    position (one more without it is refused: an id column is as likely as the label)."""
    if names is not None and columns.named:
        position = {n: j for j, n in enumerate(names)}
        missing = [n for n in columns.features if n not in position]
        if missing and len(missing) == len(columns.features):  # not one of them: a list would mislead
            raise ValueError(f"{source}: no column in common with the model: the file has {_few(names)}, the "
                             f"model needs {_few(columns.features)}")  # fmt: skip
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            shown = ", ".join(repr(n) for n in missing[:5]) + more
            raise ValueError(f"{source}: no column {shown}, which the model was trained on (its features: "
                             f"{_few(columns.features)})")  # fmt: skip
        label = None
        if label_column is not None:
            label = _position(label_column, names, source)
        elif columns.label is not None and columns.label in position:
            label = position[columns.label]
        features = [position[n] for n in columns.features]
        used = {*features, label}
        return Selection(features, label, [n for j, n in enumerate(names) if j not in used])
    width = len(names) if names is not None else width
    return _by_width(columns, width, label_column, source, names)


def _by_width(columns: Columns, width: int | None, label_column: str | int | None, source: str,
              names: list[str] | None) -> Selection:  # fmt: skip
    d = len(columns.features)
    if width is None:
        raise ValueError("the number of columns is needed")
    if label_column is not None and names is not None and not _is_position(label_column):
        label = _position(label_column, names, source)
    elif label_column is not None:
        label = _position(label_column, names or [str(j) for j in range(width)], source)
    else:
        label = None  # one column more is an id as often as the label: never guessed by position
    have = width - (label is not None)
    if have != d:
        if label is None and width == d + 1:
            known = "" if columns.label_index is None else f" (it was column {columns.label_index} at training)"
            raise ValueError(f"{source}: {width} columns and no names to match them by, the model was trained on "
                             f"{d} features: say which column is the label with --label-column INDEX{known}, "
                             "or remove the extra column")  # fmt: skip
        if label is None:
            raise ValueError(f"{source}: {width} columns and no names to match them by, the model was trained "
                             f"on {d} features: give exactly those (or {d + 1}, the label's named by "
                             "--label-column)")  # fmt: skip
        raise ValueError(f"{source}: {have} feature columns besides the label column {label}, the model was "
                         f"trained on {d}")  # fmt: skip
    return Selection([j for j in range(width) if j != label], label, [])


def _is_position(label_column: str | int) -> bool:
    return isinstance(label_column, int) or str(label_column).lstrip("-").isdigit()


def _position(label_column: str | int, names: list[str], source: str) -> int:
    """The position of ``label_column``: a column of that exact name wins (a header ``1,x,y2``'s
    ``"1"``, a year ``"2020"``); else an index (an ``int`` is always one; negative counts from the
    end). A name found only in another case is refused, naming the column(s) it may mean."""
    text = str(label_column)
    if isinstance(label_column, str) and text in names:
        return names.index(text)
    if not _is_position(label_column):
        alike = [n for n in names if n.strip().lower() == text.strip().lower()]
        meant = ""
        if alike:
            meant = f": did you mean {' or '.join(map(repr, alike))}? names are compared exactly"
        raise ValueError(f"{source}: no label column {label_column!r}{meant} (columns are {_few(names)})")
    idx = int(label_column)
    if not -len(names) <= idx < len(names):
        raise ValueError(f"{source}: label column {idx} out of range for {len(names)} columns")
    return idx % len(names)


def _few(names: Any, k: int = 8) -> str:
    names = list(names)
    return ", ".join(map(str, names[:k])) + (f", … ({len(names)} in all)" if len(names) > k else "")
