"""IDX files (MNIST's format), their declared sizes checked before their data is read.

An IDX header declares the dtype and every dimension. A plain file's length is compared with that
declaration before anything else. Then, once the memory check allows it, the data is read (a gzipped
file decompressed) a chunk at a time into anonymous memory of exactly the declared size, counting the
bytes as they come: the peak is the data in the file's own dtype (a quarter of float32 for MNIST's
bytes), and a gzipped file that ends early is called truncated, with the bytes declared and found.
The array is a row source held in memory (gpubp.rows.in_memory): never converted whole to float64;
on the CPU the training rows are copied once into the network's dtype, a chunk at a time.

Problems are ``ValueError`` naming the file; :func:`gpubp.loaders.read_idx` wraps them as DataError.
"""

from __future__ import annotations

import gzip
import io
import mmap
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CHUNK = 16 << 20  # bytes decompressed per step: the only temporary besides the array itself
READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error)

BinaryFile = gzip.GzipFile | io.BufferedReader  # what the IDX readers take: a plain or gzipped file


@dataclass(frozen=True)
class Header:
    """What an IDX header declares: ``dtype`` (big-endian, as stored), ``dims`` and where the data
    starts (``offset``)."""

    dtype: np.dtype
    dims: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.dims, dtype=object)) * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{' × '.join(map(str, self.dims))} {self.dtype.newbyteorder('=').name}"


def is_gzipped(path: str) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


def _read_header(f: BinaryFile, path: str) -> Header:
    head = f.read(4)
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in TYPES:
        what = f"magic 0x{head.hex()}" if head else "empty file"
        raise ValueError(f"{path}: not an IDX file ({what})")
    ndim = head[3]
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions declared, {len(raw) // 4} found)")
    return Header(np.dtype(TYPES[head[2]]), tuple(int(d) for d in np.frombuffer(raw, ">u4")), 4 + 4 * ndim)


def header(path: str) -> Header:
    """The header of the IDX file at ``path`` (gzipped or not); nothing else is read."""
    try:
        with gzip.open(path, "rb") if is_gzipped(path) else open(path, "rb") as f:
            return _read_header(f, path)
    except READ_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            raise ValueError(f"{path}: file not found") from None
        raise ValueError(f"{path}: cannot read: {exc}") from None


def _truncated(path: str, h: Header, found: int) -> ValueError:
    return ValueError(f"{path}: truncated IDX file: its header declares {h} ({h.nbytes:,} data bytes) but the file "
                      f"holds {found:,}")  # fmt: skip


def _longer(path: str, h: Header) -> ValueError:
    return ValueError(f"{path}: IDX file longer than its header says ({h}, {h.nbytes:,} data bytes)")


def read(path: str, fits: Callable[[int], None]) -> np.ndarray:
    """The array of the IDX file at ``path``, shaped as its header declares, in the file's dtype, read
    (decompressed) into memory once ``fits(bytes)`` (which raises when that much memory is not
    available) has allowed it."""
    h = header(path)
    try:
        if not is_gzipped(path):
            size = os.path.getsize(path) - h.offset
            if size < h.nbytes:
                raise _truncated(path, h, size)
            if size > h.nbytes:
                raise _longer(path, h)
            fits(h.nbytes)
            with open(path, "rb") as f:
                return _fill(f, path, h)
        try:
            fits(h.nbytes)
        except ValueError:
            found = _count(path, h)  # a file too big to hold, or a short one whose header claims too much?
            if found != h.nbytes:
                raise _truncated(path, h, found) if found < h.nbytes else _longer(path, h) from None
            raise
        with gzip.open(path, "rb") as f:
            return _fill(f, path, h)
    except READ_ERRORS as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None


def _count(path: str, h: Header) -> int:
    """Data bytes of a gzipped IDX file whose declared size does not fit in memory: the declared size
    when the gzip trailer's size (modulo 2³²) matches it, else counted while decompressing (stopping
    one byte past the declared size), in constant memory."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        trailer = int.from_bytes(f.read(4), "little")
    if trailer == (h.offset + h.nbytes) % 2**32:
        return h.nbytes
    found = 0
    with gzip.open(path, "rb") as f:
        f.seek(h.offset)
        while found <= h.nbytes:
            n = len(f.read(min(CHUNK, h.nbytes + 1 - found)))
            if not n:
                break
            found += n
    return found


def _fill(f: BinaryFile, path: str, h: Header) -> np.ndarray:
    """The data after the header of stream ``f`` read into anonymous memory of the declared size, a
    chunk at a time, counting the bytes as they come."""
    if h.nbytes == 0:
        return np.empty(h.dims, h.dtype)
    buffer = mmap.mmap(-1, h.nbytes)  # pages are taken as they are written: a short file costs what it holds
    view = memoryview(buffer)
    got = 0
    f.seek(h.offset)
    while got < h.nbytes:
        n = f.readinto(view[got : got + CHUNK])
        if not n:
            break
        got += n
    longer = got == h.nbytes and f.read(1)
    view.release()
    if got < h.nbytes:
        buffer.close()
        raise _truncated(path, h, got)
    if longer:
        buffer.close()
        raise _longer(path, h)
    out = np.ndarray(h.dims, h.dtype, buffer=buffer)  # its base is the mapping: a row source held in memory
    out.flags.writeable = False
    return out
