"""File plumbing at the bottom of the house: atomic writes and the one JSON encoder."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    The file is flushed and fsynced before the rename, so a crash never leaves a half-written file
    where a good one was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the mode an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse, before any work, a path that :func:`atomic_write` could not write: a missing
    folder, or an existing folder where the file should go."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{what} {path}: is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{what} {path}: folder {folder} is not writable")


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    """NaN and infinities as strings: JSON has no literal for them."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def to_json(obj: Any, *, strict: bool = False, **kwargs: Any) -> str:
    """The one JSON encoder: NumPy scalars and arrays as Python values. ``strict``: NaN and
    infinities as strings (standard JSON, for output others parse); otherwise as Python's
    ``NaN``/``Infinity`` literals, which ``json.loads`` reads back as floats (for gpubp's own files)."""
    text = json.dumps(obj, default=_plain, **({} if strict else kwargs))
    return json.dumps(_finite(json.loads(text)), **kwargs) if strict else text
