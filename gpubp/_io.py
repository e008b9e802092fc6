"""File plumbing at the bottom of the house: atomic writes, the memory available, the one JSON encoder."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    The file is flushed and fsynced before the rename, so a crash never leaves a half-written file
    where a good one was."""
    given = os.fspath(path)
    try:
        path = _target(given)
    except ValueError as exc:
        raise ValueError(f"cannot write {given}: {exc}") from None
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {given}: folder {folder} does not exist")
    try:
        fd, tmp = _temporary_beside(path)
    except OSError as exc:  # a read-only or virtual file system (/proc, /sys), no permission
        raise OSError(exc.errno, f"cannot write {given}: cannot create a file in {folder}: {exc.strerror}") from None
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


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new hidden file in ``path``'s folder (name cut short: the file system's limit is 255 bytes)."""
    return tempfile.mkstemp(prefix=f".{os.path.basename(path)[:80]}.", suffix=".tmp", dir=os.path.dirname(path))


def _target(path: str) -> str:
    """The absolute file a write to ``path`` lands in: a symbolic link of this user's is written through
    (the link stays a link); one of another user's is refused (in a shared folder such as /tmp it could
    point at any of this user's files). Refused too: anything but a regular file (a device such as
    /dev/null, a pipe, a socket), and paths into /dev and /proc (/dev/stdout resolves to whatever file
    standard output is), which a rename would replace."""
    absolute = os.path.abspath(path)
    if absolute.startswith(("/dev/", "/proc/")):
        raise ValueError("not a regular file (a device, pipe or socket); name a file")
    if os.path.islink(absolute) and os.lstat(absolute).st_uid != os.getuid():
        raise ValueError("a symbolic link of another user's; name a file of yours")
    real = os.path.realpath(absolute)
    if os.path.exists(real) and not os.path.isfile(real) and not os.path.isdir(real):
        raise ValueError("not a regular file (a device, pipe or socket); name a file")
    return real


def check_writable(path: str | os.PathLike[str], what: str) -> None:
    """Refuse, before any work, a path that :func:`atomic_write` could not write: a missing
    folder, an existing folder or special file where the file should go, or a folder in which no
    file can be made (tried: permissions alone do not tell, e.g. for root on /proc or /sys)."""
    path = os.fspath(path)
    if path == "":
        raise ValueError(f"{what}: empty file name")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path}: is a folder, expected a file name")
    try:
        target = _target(path)
    except ValueError as exc:
        raise ValueError(f"{what} {path}: {exc}") from None
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path}: folder {folder} does not exist")
    try:
        fd, probe = _temporary_beside(target)
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot create a file in {folder}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: MemAvailable on Linux, less where this process's
    address-space limit (``ulimit -v``, RLIMIT_AS) leaves less; None if unknown."""
    have = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    have = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if have is None:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    limit = _address_space_left()
    return have if limit is None else limit if have is None else min(have, limit)


def _address_space_left() -> int | None:
    """What RLIMIT_AS leaves of this process's address space (None: no limit, or not Linux)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (ImportError, OSError, ValueError, StopIteration):
        return None
    return max(soft - used, 0)


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
