"""Files from elsewhere cost a header read, not the machine (issue 32): each of the issue's five
cases, through the command in a child process whose peak memory is measured.

Each hostile file declares gigabytes (made in milliseconds by tests/bombs.py); before gpubp read
declarations first, each of these cost that much memory, or was refused with the wrong reason."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
from bombs import idx_header, lying_member, npz_members, write_gzip_zeros, write_zip, zeros_member

GiB = 1 << 30
# the child runs the command, then prints its own peak RSS (kB) as the last line of stderr
MEASURED = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(p.returncode)")  # fmt: skip


def gpubp(*args: object, cwd) -> tuple[int, str, int]:
    """(exit status, stderr without the measurement, peak RSS in bytes) of ``gpubp ARGS``."""
    env = {**os.environ, "GPUBP_DEVICE": "cpu"}
    p = subprocess.run([sys.executable, "-c", MEASURED, sys.executable, "-m", "gpubp", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=300)  # fmt: skip
    *lines, peak = p.stderr.strip().splitlines()
    return p.returncode, "\n".join(lines), int(peak) * 1024


def refused_cheaply(code: int, err: str, peak: int) -> str:
    assert code == 2, err
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert peak < GiB, f"refusing it took {peak / GiB:.2f} GiB: {err}"
    return err


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    subprocess.run([sys.executable, "-m", "gpubp", "train", "--epochs", "1", "--hidden", "16", "--quiet",
                    "--save", "m.npz"], cwd=folder, check=True, env={**os.environ, "GPUBP_DEVICE": "cpu"})  # fmt: skip
    return folder, npz_members(folder / "m.npz")


def test_row_hashes_that_would_expand_to_gigabytes_are_counted_against_the_meta_first(model):
    # case 1: 2 GiB of row hashes in a file of 13 MB; evaluate had read them all, then scored as if fine
    folder, members = model
    members["x_trained_row_hashes.npy"] = zeros_member((GiB // 4,), "<u8")
    write_zip(folder / "hashes.npz", members)
    err = refused_cheaply(*gpubp("evaluate", "hashes.npz", cwd=folder))
    assert "damaged gpubp model: member x_trained_row_hashes declares 268,435,456 rows" in err
    assert "the meta says the data had 1,797" in err


def test_a_weight_matrix_of_the_wrong_shape_is_refused_by_its_header(model):
    # case 2: W_1 of 3.2 GB and the wrong shape: refused, but only after reading it
    folder, members = model
    members["W_1.npy"] = zeros_member((16, 50_000_000), "<f4")
    write_zip(folder / "w1.npz", members)
    err = refused_cheaply(*gpubp("predict", "w1.npz", "--data", "digits", "--out", "p.csv", cwd=folder))
    assert "member W_1 declares shape (16, 50000000) float32; this file's config and meta make it shape (16, 64)" in err
    assert not (folder / "p.csv").exists()


def test_an_idx_file_that_ends_early_is_called_truncated_with_the_bytes_declared_and_found(tmp_path):
    # case 3: 4,000,000 images declared, 1,000 bytes held: had been called a memory shortage
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_header(0x08, (4_000_000, 28, 28)) + bytes(1000))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_header(0x08, (4_000_000,)) + bytes(4_000_000))
    err = refused_cheaply(*gpubp("train", "--data", tmp_path, "--no-save", cwd=tmp_path))
    assert ("train-images-idx3-ubyte: truncated IDX file: its header declares 4000000 × 28 × 28 uint8 "
            "(3,136,000,000 data bytes) but the file holds 1,000") in err  # fmt: skip
    assert "memory" not in err


def test_a_gzipped_idx_file_is_streamed_into_its_own_dtype_not_copied_into_floats(tmp_path):
    # case 4: 300,000 gzipped images (0.94 GB as float32) had peaked at several times their float64 size
    n = 300_000
    write_gzip_zeros(tmp_path / "train-images-idx3-ubyte.gz", idx_header(0x08, (n, 28, 28)), n * 28 * 28)
    write_gzip_zeros(tmp_path / "train-labels-idx1-ubyte.gz", idx_header(0x08, (n,)), n)
    code, err, peak = gpubp("train", "--data", tmp_path, "--no-save", cwd=tmp_path)
    assert code == 2, err
    assert err.endswith("only one class (0) in the labels: nothing to learn"), err
    as_float32 = n * 28 * 28 * 4
    assert peak < 2 * as_float32 / 2.5, f"{peak / GiB:.2f} GiB"  # the pixels as bytes, and little besides


def test_a_data_npz_too_big_to_load_whole_gets_the_advice_that_helps(tmp_path):
    # case 5: X declaring 8 TB was called "damaged NumPy file (MemoryError ...)"
    write_zip(tmp_path / "big.npz", {"X.npy": lying_member((1_000_000, 1_000_000), "<f8"),
                                     "y.npy": lying_member((1_000_000,), "<i8")})  # fmt: skip
    err = refused_cheaply(*gpubp("train", "--data", "big.npz", "--no-save", cwd=tmp_path))
    assert "big.npz: loading it whole needs about 7450" in err
    assert "save it as X.npy,y.npy" in err
    assert "damaged" not in err


def test_a_gzipped_idx_file_that_ends_early_is_counted_while_streaming(tmp_path):
    # the declaration fits in memory: the running count finds the end
    write_gzip_zeros(tmp_path / "x-idx3-ubyte.gz", idx_header(0x08, (1_000_000, 28, 28)), 5000)
    err = refused_cheaply(*gpubp("train", "--data", tmp_path / "x-idx3-ubyte.gz", "--no-save", cwd=tmp_path))
    assert "truncated IDX file: its header declares 1000000 × 28 × 28 uint8 (784,000,000 data bytes) but the file " \
           "holds 5,000" in err  # fmt: skip


def test_a_gzipped_idx_file_too_big_to_hold_is_told_apart_from_a_short_one(tmp_path, monkeypatch):
    import gpubp.loaders
    from gpubp.data import DataError, read_idx

    monkeypatch.setattr(gpubp.loaders, "available_memory", lambda: 10_000)
    write_gzip_zeros(tmp_path / "short.gz", idx_header(0x08, (1000, 28, 28)), 5000)
    with pytest.raises(DataError, match=r"truncated IDX file: .* \(784,000 data bytes\) but the file holds 5,000"):
        read_idx(str(tmp_path / "short.gz"))
    write_gzip_zeros(tmp_path / "whole.gz", idx_header(0x08, (1000, 28, 28)), 784_000)
    with pytest.raises(DataError, match=r"reading it needs 0.7 MiB but 0.0 MiB .* save the images as X.npy"):
        read_idx(str(tmp_path / "whole.gz"))
    monkeypatch.undo()
    X = read_idx(str(tmp_path / "whole.gz"))
    assert X.shape == (1000, 28, 28)
    assert X.dtype == np.uint8
    assert not X.any()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_images_held_as_bytes_train_exactly_as_the_same_rows_in_floats(tmp_path, rng, monkeypatch, compress):
    # the images stay in the file's dtype, a row source in memory: on the CPU the training rows are copied
    # once into the network's dtype when that fits, else gathered per batch; both give the floats' weights
    import gpubp.batches
    from gpubp import MLP
    from gpubp.data import Dataset, RawData, load_data
    from gpubp.rows import in_memory, is_row_source
    from gpubp.training import Trainer

    images, labels = rng.integers(0, 256, (120, 4, 4), dtype=np.uint8), rng.integers(0, 3, 120, dtype=np.uint8)
    for name, a in (("i-idx3-ubyte", images), ("l-idx1-ubyte", labels)):
        with (gzip.open if compress else open)(tmp_path / name, "wb") as f:
            f.write(idx_header(0x08, a.shape) + a.tobytes())
    raw = load_data(f"{tmp_path / 'i-idx3-ubyte'},{tmp_path / 'l-idx1-ubyte'}")
    assert raw.X.dtype == np.uint8
    assert is_row_source(raw.X)
    assert in_memory(raw.X)
    assert not in_memory(np.lib.format.open_memmap(tmp_path / "m.npy", "w+", np.uint8, (2, 2)))

    def weights(data: RawData, cheap_memory: bool) -> tuple[list, bool]:
        if cheap_memory:
            monkeypatch.setattr(gpubp.batches, "available_memory", lambda: 100)
        ds = Dataset.prepare(data)
        net = MLP([16, 8, 3], "tanh", device="cpu", dtype="float32", seed=0)
        trainer = Trainer(net, ds.features("train"), ds.targets("train"), batch_size=16, lr=0.05)
        trainer.run(2)
        monkeypatch.undo()
        return [np.asarray(W) for W in net.weights], trainer.data.stream

    floats = RawData(images.reshape(120, 16).astype(np.float64), labels.astype(np.int64), "floats")
    expected, _ = weights(floats, False)
    for cheap_memory in (False, True):
        got, streamed = weights(raw, cheap_memory)
        assert streamed is cheap_memory
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_a_gzipped_csv_of_one_endless_line_is_refused_at_the_sample(tmp_path):
    # 2 GiB without a line end in a 13 MB file: the layout's sample had read the line whole
    write_gzip_zeros(tmp_path / "one.csv.gz", b"a,b,label\n1", 2 * GiB)
    err = refused_cheaply(*gpubp("train", "--data", "one.csv.gz", "--no-save", cwd=tmp_path))
    assert err.endswith("one.csv.gz: its first 51 lines take more than 64 MiB: not a CSV file gpubp reads"), err
