"""The members a gpubp file may hold, and what each must declare, from the file's own config and meta.

A model or checkpoint file (gpubp.checkpoint) is checked member by member against :data:`MEMBERS`
before any array in it is read: a member the table does not know, a member of another shape or
dtype than the config and meta make it, or a count that disagrees with the meta is refused, naming
the member. A new kind of member is one line of the table: a name pattern and the rule that says
what it must declare (:class:`Expect`), or None where the file's meta gives it no place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .npzfiles import Declared

# characters of JSON a file's config and meta may declare (the meta holds the history: a long run's
# is a few MB; a meta that declares more is not read)
CONFIG_CHARS = 1 << 20
META_CHARS = 16 << 20
# the members read before the table applies: what decides the rest
HEAD = ("format", "format_version", "config", "meta")


@dataclass(frozen=True)
class Expect:
    """What a member must declare: its ``shape`` (None: any length, at most ``most``), dtype
    ``kinds`` (NumPy's kind letters) and whether it is ``read`` (False: a member of an older
    layout that nothing uses, never decompressed)."""

    shape: tuple[int | None, ...] | None  # None: any shape
    kinds: str
    most: int | None = None
    read: bool = True


def _count(text: Any, pattern: str) -> int | None:
    """The leading row count of a fingerprint (``"1797x64:…"``, ``"1259 rows:…"``), or None."""
    found = re.match(pattern, text) if isinstance(text, str) else None
    return int(found.group(1)) if found else None


class Facts:
    """What a file's ``config`` and ``meta`` say about its members: the parameters' shapes ``params``
    ([W_1, b_1, W_2, …]), the data's rows (``rows``, from the command's settings), the training rows
    of a checkpoint (``train_rows``), its optimiser slots and weight copies. ``ValueError`` when
    the config does not describe a network."""

    def __init__(self, config: Any, meta: Any) -> None:
        if not isinstance(config, dict) or not isinstance(meta, dict):
            raise ValueError("config and meta must be JSON objects")
        sizes = config.get("sizes")
        if not (isinstance(sizes, list) and len(sizes) >= 2 and all(type(n) is int and n > 0 for n in sizes)):
            raise ValueError(f"config sizes must be a list of at least two positive whole numbers, got {sizes!r}")
        self.sizes = sizes
        self.L = len(sizes) - 1
        self.params = [s for l in range(1, self.L + 1) for s in ((sizes[l], sizes[l - 1]), (sizes[l],))]
        self.param_names = [f"{p}_{l}" for l in range(1, self.L + 1) for p in ("W", "b")]
        cli: dict[str, Any] = meta["cli"] if isinstance(meta.get("cli"), dict) else {}
        self.rows = _count(cli.get("fingerprint"), r"(\d+)x\d+:")
        trainer = meta.get("trainer") if isinstance(meta.get("trainer"), dict) else None
        self.trainer = trainer is not None
        trainer = trainer or {}
        self.train_rows = _count(trainer.get("data"), r"(\d+) rows:")
        optimizer: dict[str, Any] = trainer["optimizer"] if isinstance(trainer.get("optimizer"), dict) else {}
        arrays = optimizer.get("_arrays")
        # a layout of an earlier gpubp (no rows' fingerprint, per-parameter optimiser lists) is never
        # resumed (gpubp.state refuses it): its training members are known but not read
        self.current = self.train_rows is not None and isinstance(arrays, dict)
        self.copies = {f"opt_{slot}": n for slot, n in (arrays or {}).items()}
        self.copies.update({name: trainer[f"has_{name}"] for name in ("best", "live") if f"has_{name}" in trainer})
        for name, n in self.copies.items():
            if n != 2 * self.L:
                raise ValueError(f"the meta gives {name} {n!r} arrays; a network of {self.L} layers has "
                                 f"{2 * self.L} (W_1, b_1, …)")  # fmt: skip

    def param(self, kind: str, l: int) -> Expect | None:
        """W_l or b_l of the config's network."""
        return Expect(self.params[2 * (l - 1) + (kind == "b")], "f") if 1 <= l <= self.L else None

    def copy(self, name: str, i: int) -> Expect | None:
        """Piece ``i`` of a per-parameter copy (an optimiser slot, the best or live weights)."""
        if not self.trainer:
            return None
        if not self.current:
            return Expect(None, "f", read=False) if i < 2 * self.L else None
        if name not in self.copies or i >= self.copies[name]:
            return None
        return Expect(self.params[i], "f")

    def training_rows(self, kinds: str) -> Expect | None:
        if not self.trainer:
            return None
        if not self.current:
            return Expect(None, kinds, read=False)
        return Expect((self.train_rows,), kinds)

    def hashes(self) -> Expect | None:
        return None if self.rows is None else Expect((None,), "u", most=self.rows)

    def classes(self) -> Expect:
        k = self.sizes[-1]
        return Expect((2 if k == 1 else k,), "biufUS")

    def required(self) -> list[str]:
        """Members the config and meta say the file holds."""
        names = ["format", "format_version", "config", *self.param_names]
        if self.current:
            names += [f"x_{name}_{i}" for name, n in self.copies.items() for i in range(n)]
        return names


Rule = Callable[[Facts, "re.Match[str]"], "Expect | None"]

# name pattern -> what the member must declare, given the file's Facts (None: not expected in this file)
MEMBERS: list[tuple[str, Rule]] = [
    (r"format", lambda f, m: Expect((), "U")),
    (r"format_version", lambda f, m: Expect((), "iu")),
    (r"config", lambda f, m: Expect((), "U")),
    (r"meta", lambda f, m: Expect((), "U")),
    (r"([Wb])_(\d+)", lambda f, m: f.param(m[1], int(m[2]))),
    # preprocessing (gpubp.model.Model): feature scaler, classes, regression target scaling, row hashes
    (r"x_scaler_(shift|scale)", lambda f, m: Expect((f.sizes[0],), "f")),
    (r"x_target_(shift|scale)", lambda f, m: Expect((f.sizes[-1],), "f")),
    (r"x_classes", lambda f, m: f.classes()),
    (r"x_(heldout|trained)_row_hashes", lambda f, m: f.hashes()),
    # training state (gpubp.state): row order, sample weights, optimiser slots, weight copies
    (r"x_order", lambda f, m: f.training_rows("iu")),
    (r"x_sample_weight", lambda f, m: f.training_rows("f")),
    (r"x_(opt_.+|best|live)_(\d+)", lambda f, m: f.copy(m[1], int(m[2]))),
]


def expected(facts: Facts, name: str) -> Expect | None:
    """What member ``name`` must declare in a file with ``facts``; None for a member with no place."""
    for pattern, rule in MEMBERS:
        m = re.fullmatch(pattern, name)
        if m:
            return rule(facts, m)
    return None


def check(facts: Facts, declared: dict[str, Declared]) -> list[str]:
    """Check every member's declaration against :data:`MEMBERS`; return the names to read.
    ``ValueError`` naming the first member that is unknown, missing, or of the wrong shape or dtype,
    or row hashes whose count disagrees with the meta."""
    for name in facts.required():
        if name not in declared:
            raise ValueError(f"member {name} is missing")
    read = []
    for name, got in declared.items():
        want = expected(facts, name)
        if want is None:
            raise ValueError(f"member {name} has no place in this file (config and meta give it none)")
        shape = want.shape
        fits = shape is None or (len(got.shape) == len(shape) and all(w in (None, g) for w, g in zip(shape, got.shape)))
        if not fits and shape is not None:
            shown = tuple("n" if w is None else w for w in shape)
            raise ValueError(f"member {name} declares {got}; this file's config and meta make it shape {shown}")
        if got.dtype.kind not in want.kinds:
            raise ValueError(f"member {name} declares {got}; it must be of dtype kind {'/'.join(want.kinds)}")
        if want.most is not None and got.shape[0] > want.most:
            raise ValueError(f"member {name} declares {got.shape[0]:,} rows; the meta says the data had {want.most:,}")
        if want.read:
            read.append(name)
    hashes = [declared[f"x_{k}_row_hashes"].shape[0] for k in ("heldout", "trained") if f"x_{k}_row_hashes" in declared]
    if hashes and facts.rows is not None and sum(hashes) != facts.rows:
        raise ValueError(f"members x_heldout_row_hashes and x_trained_row_hashes declare {sum(hashes):,} rows; the "
                         f"meta says the data had {facts.rows:,}")  # fmt: skip
    return read


def data_bytes(declared: dict[str, Declared], names: list[str]) -> int:
    """Bytes the members ``names`` declare: what reading them costs."""
    return sum(declared[n].nbytes for n in names)
