"""What a NumPy file declares, read before its data: each array's shape, dtype and size.

An ``.npy`` header states the array's shape and dtype in its first bytes, and a zip's directory
states each member's uncompressed size. Both are read here without decompressing any data, so that
a file can be checked against what it must hold (a model's config, the memory available) before
anything is read: a file of a few megabytes that expands to gigabytes costs a header read.

:class:`NpzReader` opens an ``.npz``, gives each member's :class:`Declared` and reads a member only
when asked, after its header and the zip agree on its size (zipfile then never yields more than the
declared bytes, and checks the CRC). Every problem is a ``ValueError`` naming the member.
"""

from __future__ import annotations

import io
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np

# the largest .npy header NumPy itself reads without being told to trust the file
MAX_HEADER = 10_000
# what reading a damaged zip member can raise, besides ValueError
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, KeyError,
               TypeError, SyntaxError, OverflowError, tokenize.TokenError)  # fmt: skip


@dataclass(frozen=True)
class Declared:
    """An array as its header declares it: ``shape``, ``dtype``, data bytes ``nbytes`` (product of
    the shape times the item size) and the header's length in bytes ``offset``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize

    def __str__(self) -> str:
        return f"shape {self.shape} {self.dtype}"


def read_header(f: IO[bytes]) -> Declared:
    """The header of the ``.npy`` stream ``f`` (positioned at its start), read without its data.
    ``ValueError`` for anything but a version 1 or 2 header of plain values (no Python objects)."""
    fmt = np.lib.format
    try:
        start = f.read(8)  # the magic string and the version
        version = fmt.read_magic(io.BytesIO(start))
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        width = 2 if version == (1, 0) else 4
        raw = f.read(width)
        length = int.from_bytes(raw, "little")
        if length > MAX_HEADER:  # NumPy would read all of it before looking at its length
            raise ValueError(f"a header of {length:,} bytes declared; at most {MAX_HEADER:,} are read")
        text = raw + f.read(length)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(io.BytesIO(text), max_header_size=MAX_HEADER)
    except READ_ERRORS as exc:
        raise ValueError(f"no .npy header ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise ValueError(f"holds Python objects (dtype {dtype}), which gpubp never loads")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"impossible shape {shape}")
    return Declared(tuple(int(n) for n in shape), dtype, 8 + len(text))


def npy_declared(path: str | os.PathLike) -> Declared:
    """The header of the ``.npy`` file at ``path``; ``ValueError`` naming the file when it is not one or
    is shorter than its header declares (the bytes declared and found)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            declared = read_header(f)
        except ValueError as exc:
            raise ValueError(f"{path} is not a .npy file ({exc})") from None
    want, have = declared.offset + declared.nbytes, os.path.getsize(path)
    if have < want:
        dims = " × ".join(str(d) for d in declared.shape)
        raise ValueError(f"{path} is truncated: its header promises {dims} {declared.dtype} ({want:,} bytes with the "
                         f"header) but the file has {have:,} bytes")  # fmt: skip
    return declared


class NpzReader:
    """An ``.npz`` opened for checking before reading: ``names`` (members without ``.npy``), and for
    each ``declared(name)`` and ``read(name)``. Use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except READ_ERRORS as exc:
            raise ValueError(f"not a readable zip file ({type(exc).__name__}: {exc})") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename.removesuffix(".npy")
            if name in self._infos:  # zipfile would read the last one, NumPy's listing shows both
                self._zip.close()
                raise ValueError(f"member {name!r} appears twice")
            self._infos[name] = info
        self._declared: dict[str, Declared] = {}

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> list[str]:
        return list(self._infos)

    def declared(self, name: str) -> Declared:
        """Member ``name``'s header (the first bytes of its data are decompressed, nothing more),
        checked against the zip's uncompressed size."""
        if name not in self._declared:
            info = self._infos[name]
            try:
                with self._zip.open(info) as f:
                    declared = read_header(f)
            except ValueError as exc:
                raise ValueError(f"member {name}: {exc}") from None
            except READ_ERRORS as exc:
                raise ValueError(f"member {name}: unreadable ({type(exc).__name__}: {exc})") from None
            if declared.offset + declared.nbytes != info.file_size:
                raise ValueError(f"member {name} declares {declared} ({declared.nbytes:,} bytes of data) but the zip "
                                 f"holds {info.file_size - declared.offset:,}")  # fmt: skip
            self._declared[name] = declared
        return self._declared[name]

    def read(self, name: str) -> np.ndarray:
        """Member ``name`` in full, once :meth:`declared` has been checked: at most its declared bytes
        are decompressed, into one array of its declared shape."""
        declared = self.declared(name)
        try:
            with self._zip.open(self._infos[name]) as f:
                array = np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER)
        except ValueError as exc:
            raise ValueError(f"member {name}: {exc}") from None
        except READ_ERRORS as exc:
            raise ValueError(f"member {name}: unreadable ({type(exc).__name__}: {exc})") from None
        if array.shape != declared.shape or array.dtype != declared.dtype:  # the header is read once more
            raise ValueError(f"member {name} changed while it was read")
        return array


def scalar_text(npz: NpzReader, name: str, limit: int) -> str:
    """A 0-d text member (a JSON document, a marker) of at most ``limit`` characters, as ``str``."""
    declared = npz.declared(name)
    if declared.shape != () or declared.dtype.kind != "U":
        raise ValueError(f"member {name} must be one text value, it declares {declared}")
    if declared.dtype.itemsize // 4 > limit:
        raise ValueError(f"member {name} declares {declared.dtype.itemsize // 4:,} characters; at most {limit:,} "
                         "are read")  # fmt: skip
    return str(npz.read(name)[()])


def scalar_int(npz: NpzReader, name: str) -> int:
    """A 0-d integer member."""
    declared = npz.declared(name)
    if declared.shape != () or declared.dtype.kind not in "iu":
        raise ValueError(f"member {name} must be one integer, it declares {declared}")
    return int(npz.read(name)[()])
