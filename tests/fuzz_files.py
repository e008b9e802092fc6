"""Fuzzing every loader of files from elsewhere (issue 32), under a memory limit.

Each case takes a good file of one format (a model, a training checkpoint, a bare network, a data
``.npz``, ``X.npy``/``y.npy``, IDX plain and gzipped, CSV plain and gzipped), mutates it (bytes
flipped, set, cut, inserted or repeated; inside a zip member or a gzip stream as well as outside;
a zip member replaced by a bomb declaring up to 2⁶² bytes; IDX dimensions set to large values) and
loads it as the command would. A case must end in a result or a refusal the command prints as one
line with exit status 2 (ValueError, TypeError, OSError): anything else (another exception, a
message of several lines, MemoryError) is a failure, kept with the mutation that caused it.

    python tests/fuzz_files.py --examples 5000 --limit-mb 2048

The process limits its own address space (RLIMIT_AS) before the first case, and prints as JSON
the cases tried per format, the distinct outcomes (messages with their numbers and paths taken
out), the failures, the seconds and the peak RSS. tests/test_fuzz_files.py runs a short run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import io
import json
import os
import re
import resource
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("GPUBP_DEVICE", "cpu")

import numpy as np
from bombs import lying_member, write_gzip_zeros, write_zip, zeros_member
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

REFUSALS = (ValueError, TypeError, OSError)  # what the command prints as one line, exit status 2
REAL_BOMB = 256 << 20  # bombs up to this many bytes are real zeros; larger ones only declare their size


def make_seeds(folder: Path) -> dict[str, Path]:
    """One good file of each format."""
    import gpubp
    from gpubp.cli import main
    from gpubp.training import Trainer

    rng = np.random.default_rng(0)
    os.chdir(folder)
    with contextlib.redirect_stdout(io.StringIO()):  # the report is the only output
        main(["train", "--epochs", "1", "--hidden", "8", "--quiet", "--save", "model.npz"])
    net = gpubp.MLP([5, 6, 3], "tanh", device="cpu", seed=0)
    net.save(folder / "net.npz")
    X, y = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    trainer = Trainer(net, X, y, batch_size=16, optimizer="adam", lr=0.01)
    trainer.run(1)
    trainer.save(str(folder / "checkpoint.npz"))
    np.savez_compressed(folder / "data.npz", X=X, y=y)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    images, labels = rng.integers(0, 256, (40, 4, 4), dtype=np.uint8), rng.integers(0, 3, 40, dtype=np.uint8)
    for name, a in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        raw = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes()
        (folder / name).write_bytes(raw)
        (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
    text = "a,b,c,label\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{c}\n" for r, c in zip(X, y))
    (folder / "data.csv").write_text(text)
    (folder / "data.csv.gz").write_bytes(gzip.compress(text.encode()))
    return {p.name: p for p in folder.iterdir()}


def loaders(seeds: dict[str, Path]) -> dict[str, tuple[str, object]]:
    """format -> (seed file name, load(path) as the command reads that file)."""
    import gpubp
    from gpubp.data import load_data
    from gpubp.state import read_checkpoint

    def pair(first: str, second: str, which: int):
        def load(path: Path):
            files = [str(seeds[first]), str(seeds[second])]
            files[which] = str(path)
            return load_data(",".join(files))

        return load

    return {
        "model": ("model.npz", lambda p: gpubp.load(p, device="cpu")),
        "checkpoint": ("checkpoint.npz", lambda p: read_checkpoint(str(p))),
        "network": ("net.npz", lambda p: gpubp.load(p, device="cpu")),
        "data.npz": ("data.npz", lambda p: load_data(str(p))),
        "X.npy": ("X.npy", pair("X.npy", "y.npy", 0)),
        "y.npy": ("y.npy", pair("X.npy", "y.npy", 1)),
        "idx": ("images-idx3-ubyte", pair("images-idx3-ubyte", "labels-idx1-ubyte", 0)),
        "idx labels": ("labels-idx1-ubyte", pair("images-idx3-ubyte", "labels-idx1-ubyte", 1)),
        "idx.gz": ("images-idx3-ubyte.gz", pair("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz", 0)),
        "csv": ("data.csv", lambda p: load_data(str(p))),
        "csv.gz": ("data.csv.gz", lambda p: load_data(str(p))),
    }


@st.composite
def edits(draw, size: int):
    """A list of byte edits of a ``size``-byte file."""
    ops = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "repeat", "u32"]))
        at = draw(st.integers(0, max(size - 1, 0)))
        if kind == "flip":
            ops.append((kind, at, 1 << draw(st.integers(0, 7))))
        elif kind in ("set", "insert"):
            ops.append((kind, at, draw(st.binary(min_size=1, max_size=8))))
        elif kind == "cut":
            ops.append((kind, at, 0))
        elif kind == "repeat":
            ops.append((kind, at, draw(st.integers(1, 4096))))
        else:  # a big-endian 32-bit count: IDX dimensions, zip sizes, header fields
            ops.append((kind, at, draw(st.sampled_from([0, 1, 2**16, 2**24, 2**31, 2**32 - 1]))))
    return ops


def apply(raw: bytes, ops) -> bytes:
    data = bytearray(raw)
    for kind, at, value in ops:
        at = min(at, len(data))
        if kind == "flip" and at < len(data):
            data[at] ^= value
        elif kind == "set":
            data[at : at + len(value)] = value
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = value
        elif kind == "repeat":
            data[at:at] = data[at : at + 64] * (value // 64 + 1)
        elif kind == "u32":
            data[at : at + 4] = value.to_bytes(4, "big")
    return bytes(data)


def mutate(draw, name: str, raw: bytes, path: Path) -> str:
    """Write a mutation of file ``name`` (bytes ``raw``) to ``path``; return what was done."""
    where = draw(st.sampled_from(["outside", "inside", "bomb"]))
    if raw[:2] == b"PK" and where != "outside":
        with zipfile.ZipFile(path.parent / name) as zf:
            members = {info.filename: zf.read(info) for info in zf.infolist()}
        member = draw(st.sampled_from(sorted(members)))
        if where == "inside":
            ops = draw(edits(len(members[member])))
            members[member] = apply(members[member], ops)
            what = f"inside {member}: {ops}"
        else:
            shape = tuple(draw(st.lists(st.sampled_from([1, 3, 64, 1024, 2**16, 2**20]), min_size=0, max_size=3)))
            dtype = draw(st.sampled_from(["<f4", "<f8", "<u8", "<i8", "<U8", "|u1"]))
            size = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
            while size >= 2**62:  # what a zip64 size field holds
                shape = shape[:-1]
                size = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
            members[member] = zeros_member(shape, dtype) if size <= REAL_BOMB else lying_member(shape, dtype)
            what = f"bomb {member}: {shape} {dtype}"
        write_zip(path, members)
        return what
    if raw[:2] == b"\x1f\x8b" and where != "outside":
        inner = gzip.decompress(raw)
        if where == "inside":
            ops = draw(edits(len(inner)))
            path.write_bytes(gzip.compress(apply(inner, ops), compresslevel=1))
            return f"inside the gzip stream: {ops}"
        zeros = draw(st.sampled_from([0, 1000, 1 << 20, 64 << 20]))
        head = apply(inner[:64], draw(edits(64)))
        write_gzip_zeros(path, head, zeros)
        return f"gzip bomb: {head[:16].hex()}… then {zeros} zeros"
    ops = draw(edits(len(raw)))
    path.write_bytes(apply(raw, ops))
    return f"bytes: {ops}"


def outcome(exc: BaseException | None) -> str:
    """A case's outcome with its numbers and paths taken out: 'result' or the refusal's words."""
    if exc is None:
        return "result"
    text = re.sub(r"/\S*", "PATH", str(exc))
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return f"{type(exc).__name__}: {re.sub(r'[0-9][0-9,.]*', 'N', text)[:160]}"


def run(examples: int, seed_value: int, folder: Path) -> dict:
    seeds = make_seeds(folder)
    formats = loaders(seeds)
    tried: collections.Counter = collections.Counter()
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: list[dict] = []
    case_path = folder / "case"

    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.data())
    def case(data) -> None:
        fmt = data.draw(st.sampled_from(sorted(formats)))
        name, load = formats[fmt]
        suffix = "".join(Path(name).suffixes) or ("-idx3-ubyte" if "images" in name else "-idx1-ubyte")
        path = case_path.with_name(f"case{suffix}")
        what = mutate(data.draw, name, seeds[name].read_bytes(), path)
        tried[fmt] += 1
        try:
            load(path)
            exc = None
        except REFUSALS as e:
            exc = e
            if "\n" in str(e).strip():
                failures.append({"format": fmt, "mutation": what, "error": f"several lines: {e}"})
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append({"format": fmt, "mutation": what, "error": traceback.format_exc(limit=-3)})
            return
        outcomes[fmt][outcome(exc)] += 1

    start = time.perf_counter()
    case()
    return {
        "cases": sum(tried.values()),
        "tried": dict(tried),
        "results": {f: c["result"] for f, c in outcomes.items()},
        "distinct_outcomes": sum(len(c) for c in outcomes.values()),
        "outcomes": {f: dict(c.most_common()) for f, c in outcomes.items()},
        "failures": failures,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-mb", type=int, default=2048, help="address-space limit (RLIMIT_AS)")
    args = parser.parse_args()
    limit = args.limit_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory() as folder:
        report = run(args.examples, args.seed, Path(folder))
    report["limit_mb"] = args.limit_mb
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
