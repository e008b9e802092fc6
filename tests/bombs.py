"""Hostile files for the tests, made in milliseconds however much they declare.

A zip member of gigabytes of zeros is written as a hand-made deflate stream (fixed Huffman codes: the
bytes of a ``.npy`` header as literals, then a zero and copies of 258 zeros at distance 1, 13 bytes
for every 2,064 zeros) with the CRC of its content computed as zlib's crc32_combine does, so that
nothing of the size it expands to is ever held or compressed here.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def bits(self, value: int, n: int) -> None:  # LSB first, as deflate packs header fields
        self.acc |= value << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, code: int, n: int) -> None:  # Huffman codes go most significant bit first
        self.bits(int(f"{code:0{n}b}"[::-1], 2), n)

    def literal(self, byte: int) -> None:
        if byte < 144:
            self.code(0x30 + byte, 8)
        else:
            self.code(0x190 + byte - 144, 9)

    def zeros_258(self) -> None:  # length 258 (code 285), distance 1 (code 0)
        self.code(0xC5, 8)
        self.code(0, 5)


def deflate_then_zeros(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` followed by ``zeros`` zero bytes."""
    w = _Bits()
    w.bits(1, 1)  # the final block
    w.bits(1, 2)  # fixed Huffman codes
    for byte in prefix:
        w.literal(byte)
    left = zeros
    if left:
        w.literal(0)
        left -= 1
    units, left = divmod(left, 258 * 8)
    if units >= 2:  # after one unit the 104 bits of 8 copies leave the same 13 bytes every time
        for _ in range(8):
            w.zeros_258()
        start = len(w.out)
        for _ in range(8):
            w.zeros_258()
        period = bytes(w.out[start:])
        w.out += period * (units - 2)
    else:
        for _ in range(8 * units):
            w.zeros_258()
    copies, left = divmod(left, 258)
    for _ in range(copies):
        w.zeros_258()
    for _ in range(left):
        w.literal(0)
    w.code(0, 7)  # end of block
    if w.n:
        w.out.append(w.acc & 0xFF)
    return bytes(w.out)


def _gf2_times(mat: list[int], vec: int) -> int:
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_then_zeros(crc: int, zeros: int) -> int:
    """The CRC-32 of a content whose CRC is ``crc``, followed by ``zeros`` zero bytes (zlib's
    crc32_combine with the CRC of the zeros' contribution folded in)."""
    # appending zeros to a CRC: the register without pre/post conditioning is linear in GF(2)
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)  # 2 zero bits
    odd = _gf2_square(even)  # 4 zero bits
    crc ^= 0xFFFFFFFF
    n = zeros
    while n:
        even = _gf2_square(odd)
        if n & 1:
            crc = _gf2_times(even, crc)
        n >>= 1
        if not n:
            break
        odd = _gf2_square(even)
        if n & 1:
            crc = _gf2_times(odd, crc)
        n >>= 1
    return crc ^ 0xFFFFFFFF


def npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The bytes of a version 1.0 ``.npy`` header declaring ``shape`` and ``dtype``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def write_zip(path, members: dict[str, bytes | tuple[bytes, int, int]]) -> None:
    """A zip of ``members``: bytes (deflated here), or (raw deflate stream, CRC, uncompressed size)
    as made above. Zip64 fields where a size passes 4 GiB."""
    local, central = bytearray(), bytearray()
    for name, value in members.items():
        if isinstance(value, bytes):
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            value = (c.compress(value) + c.flush(), zlib.crc32(value), len(value))
        data, crc, size = value
        raw = name.encode()
        big = size >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if big else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if big else (len(data), size)
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, *sizes, len(raw), len(extra))
        local += raw + extra + data
        central_extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if big else b""
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc, *sizes, len(raw),
                               len(central_extra), 0, 0, 0, 0, offset)  # fmt: skip
        central += raw + central_extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    with open(path, "wb") as f:
        f.write(bytes(local) + bytes(central) + end)


def zeros_member(shape: tuple[int, ...], dtype: str) -> tuple[bytes, int, int]:
    """A ``.npy`` member of zeros declaring ``shape``: (deflate stream, CRC, uncompressed size)."""
    head = npy_header(shape, dtype)
    n = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    return deflate_then_zeros(head, n), crc32_then_zeros(zlib.crc32(head), n), len(head) + n


def lying_member(shape: tuple[int, ...], dtype: str) -> tuple[bytes, int, int]:
    """A member whose header and zip entry declare ``shape`` but whose data is a few zeros: what a
    reader that checks the declaration before reading refuses without decompressing (16 MiB of
    zeros follow the header, so that the stream does not end within zipfile's first read)."""
    head = npy_header(shape, dtype)
    n = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    return deflate_then_zeros(head, 16 << 20), 0, len(head) + n


def npz_members(path) -> dict[str, bytes]:
    """The raw ``.npy`` bytes of each member of an existing ``.npz``."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_gzip_zeros(path, prefix: bytes, zeros: int) -> None:
    """A gzip file of ``prefix`` then ``zeros`` zero bytes, with a true trailer (CRC, size mod 2³²)."""
    crc = crc32_then_zeros(zlib.crc32(prefix), zeros)
    size = (len(prefix) + zeros) % 2**32
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflate_then_zeros(prefix, zeros))
        f.write(struct.pack("<II", crc, size))


def idx_header(dtype_code: int, dims: tuple[int, ...]) -> bytes:
    """An IDX header: magic (two zeros, the type, the rank) and each dimension, big-endian."""
    return bytes([0, 0, dtype_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
