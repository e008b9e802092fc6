"""Data bigger than memory: memory-mapped files and other row sources are checked in chunks,
streamed per batch and evaluated in chunks, with the same results as in-memory arrays."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gpubp
import gpubp.rows
from gpubp.rows import Feeder, is_row_source, open_npy
from gpubp.training import Trainer

MIB = 1 << 20


def write_npy(path, array):
    """``array`` written to ``path`` through a memory map (as a big file would be made)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    out[...] = array
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


class Rows:
    """Only the row-source contract: shape, dtype, ndim, len() and rows by slice or index array.
    Records the largest block asked for."""

    def __init__(self, array):
        self._a, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.largest = 0

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        block = np.array(self._a[rows])  # a fresh array, as a lazily scaled view would return
        self.largest = max(self.largest, block.shape[0])
        return block


@pytest.fixture
def data(rng):
    X = rng.normal(size=(300, 12)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    return X, y


def trained(X, y, **kwargs):
    net = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
    fit = {"epochs": 3, "batch_size": 32, "lr": 0.05, "momentum": 0.9, **kwargs}
    history = net.fit(X, y, **fit)
    return net, history


def same_weights(a, b):
    for Wa, Wb in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(Wa, Wb)


def test_a_memmap_is_a_row_source_and_its_slices_too(tmp_path, data):
    X = write_npy(tmp_path / "X.npy", data[0])
    assert is_row_source(X)
    assert is_row_source(X[10:20])
    assert is_row_source(np.asarray(X))  # a plain ndarray view still maps the file
    assert not is_row_source(X[[1, 2]])  # fancy indexing copies into memory
    assert not is_row_source(data[0])
    assert not is_row_source([[1.0, 2.0]])
    assert is_row_source(Rows(data[0]))

    class WithArray(Rows):  # pandas-like: converted with np.asarray, not read by row
        def __array__(self, dtype=None, copy=None):
            return np.asarray(self._a, dtype)

    assert not is_row_source(WithArray(data[0]))


def test_memmap_fit_and_score_equal_in_memory(tmp_path, data):
    X, y = data
    Xm, ym = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", y)
    ref, ref_history = trained(X, y, validation_data=(X[:50], y[:50]))
    net, history = trained(Xm, ym, validation_data=(Xm[:50], ym[:50]))
    same_weights(ref, net)
    assert history["train_loss"] == ref_history["train_loss"]
    assert history["val_loss"] == ref_history["val_loss"]
    assert net.score(Xm, ym) == ref.score(X, y)
    assert net.evaluate(Xm, ym) == ref.evaluate(X, y)
    np.testing.assert_array_equal(net.predict(Xm), ref.predict(X))
    np.testing.assert_array_equal(net.predict_proba(Xm), ref.predict_proba(X))


def test_an_array_like_with_only_the_contract_trains_like_the_array(data, monkeypatch):
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 2048)  # checks and inference in many chunks
    X, y = data
    ref, _ = trained(X, y)
    Xr, yr = Rows(X), Rows(y)
    net, _ = trained(Xr, yr, validation_data=(Rows(X[:40]), Rows(y[:40])))
    same_weights(ref, net)
    assert net.score(Xr, yr) == ref.score(X, y)
    np.testing.assert_array_equal(net.forward(Xr), ref.forward(X))
    assert Xr.largest <= 32  # never read whole: a batch or a chunk at a time


@pytest.mark.parametrize("loss", ["cross_entropy", "bce", "mse"])
def test_forced_streaming_trains_bit_identically_to_the_in_memory_path(loss, rng):
    X = rng.normal(size=(203, 7))  # float64 rows for a float32 network: converted per batch
    n_out = 1 if loss == "bce" else 3
    if loss == "cross_entropy":
        Y = rng.integers(0, 3, 203)
    elif loss == "bce":
        Y = rng.integers(0, 2, 203).astype(np.float64)
    else:
        Y = rng.normal(size=(203, 3))
    nets = []
    for stream in (False, True):
        net = gpubp.MLP([7, 9, n_out], "tanh", loss=loss, device="cpu", seed=1)
        trainer = Trainer(net, X, Y, batch_size=16, lr=0.05, momentum=0.9, shuffle=True,
                          validation_data=(X[:30], Y[:30]), stream=stream)  # fmt: skip
        assert trainer.stream is stream
        trainer.run(3)
        nets.append(net)
    same_weights(*nets)
    for key in ("train_loss", "val_loss", "val_r2" if loss == "mse" else "val_accuracy"):
        assert nets[0].history[key] == nets[1].history[key]


def test_a_memmap_can_be_loaded_whole_in_chunks(tmp_path, data):
    X, y = data
    Xm, ym = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", y)
    ref, _ = trained(X, y)
    net = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
    trainer = Trainer(net, Xm, ym, batch_size=32, lr=0.05, momentum=0.9, stream=False)
    assert isinstance(trainer.data.X, np.ndarray)
    assert not is_row_source(trainer.data.X)
    trainer.run(3)
    same_weights(ref, net)


def test_a_memmap_epoch_reads_the_loss_once(tmp_path, data):
    Xm, ym = write_npy(tmp_path / "X.npy", data[0]), write_npy(tmp_path / "y.npy", data[1])
    net = gpubp.MLP([12, 16, 4], device="cpu", seed=0)
    before = net.device.host_reads
    net.fit(Xm, ym, epochs=2, batch_size=10, validation_data=(Xm[:100], ym[:100]))
    assert net.device.host_reads - before == 2 * 2
    before = net.device.host_reads
    net.evaluate(Xm, ym)
    assert net.device.host_reads - before == 1


def test_fit_and_score_on_a_memmap_take_memory_bounded_by_the_batch_not_the_data(tmp_path):
    n, d = 25_000, 784  # a 78 MB file; about 7 MiB were measured
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=(n, d))
    for part in range(0, n, 2500):
        X[part : part + 2500] = np.random.default_rng(part).random((2500, d), dtype=np.float32)
    X.flush()
    del X
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.int64, shape=(n,))
    y[:] = np.arange(n) % 10
    y.flush()
    del y
    X, y = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    net = gpubp.MLP([d, 32, 10], "relu", device="cpu", seed=0)
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=1, batch_size=64, lr=0.01, validation_data=(X[:5000], y[:5000]))
        net.score(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 5, f"peak {peak / MIB:.1f} MiB for a {X.nbytes / MIB:.0f} MiB file"


def test_nan_in_the_middle_of_a_memmap_names_the_row_and_file_before_training(tmp_path, data):
    X = data[0].copy()
    X[217, 5] = np.nan
    Xm, ym = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", data[1])
    net = gpubp.MLP([12, 16, 4], device="cpu", seed=0)
    before = net.weights[0].copy()
    with pytest.raises(ValueError, match=r"X in .*X\.npy contains NaN or infinite values: NaN at row 217$"):
        net.fit(Xm, ym)
    np.testing.assert_array_equal(net.weights[0], before)  # refused before any step
    assert net.history is None
    X[217, 5] = np.inf
    with pytest.raises(ValueError, match=r"an infinite value at row 217"):
        net.predict(write_npy(tmp_path / "X2.npy", X))


def test_values_too_large_for_float32_name_the_row(tmp_path, data):
    X = data[0].astype(np.float64)
    X[299, 0] = 1e300
    with pytest.raises(ValueError, match=r"X in .*X\.npy has values too large for float32: 1e\+300 at row 299"):
        gpubp.MLP([12, 4], device="cpu").score(write_npy(tmp_path / "X.npy", X), data[1])


def test_a_non_numeric_memmap_is_refused_with_its_file(tmp_path, data):
    text = write_npy(tmp_path / "X.npy", np.full((3, 12), "ab"))
    with pytest.raises(TypeError, match=r"X in .*X\.npy must be numeric .* got dtype <U2"):
        gpubp.MLP([12, 4], device="cpu").fit(text, np.zeros(3, int))


def test_a_label_file_shorter_than_the_data_is_refused(tmp_path, data):
    Xm, ym = write_npy(tmp_path / "X.npy", data[0]), write_npy(tmp_path / "y.npy", data[1][:299])
    with pytest.raises(ValueError, match=r"Y in .*y\.npy has 299 rows but X has 300 samples"):
        gpubp.MLP([12, 4], device="cpu").fit(Xm, ym)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1, 4, 2] * 75), r"labels in \[0, 4\] .* 4 outputs"),
        (np.array([0, 1, 2.5, 2] * 75), r"whole numbers \(row 2\)"),
        (np.array([0, 1, np.nan, 2] * 75), "NaN at row 2"),
    ],
)
def test_bad_labels_in_a_memmap_are_found_in_chunks(tmp_path, data, labels, message):
    Xm, ym = write_npy(tmp_path / "X.npy", data[0]), write_npy(tmp_path / "y.npy", labels)
    with pytest.raises(ValueError, match=message):
        gpubp.MLP([12, 4], device="cpu").fit(Xm, ym)


def test_a_truncated_npy_is_a_clear_value_error(tmp_path, data):
    write_npy(tmp_path / "X.npy", data[0])
    whole = (tmp_path / "X.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.npy is truncated: its header promises 300 × 12 float32"):
        open_npy(tmp_path / "cut.npy")
    (tmp_path / "short.npy").write_bytes(whole[:20])
    with pytest.raises(ValueError, match=r"short\.npy is not a \.npy file"):
        open_npy(tmp_path / "short.npy")
    np.save(tmp_path / "obj.npy", np.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        open_npy(tmp_path / "obj.npy")
    assert is_row_source(open_npy(tmp_path / "X.npy"))


def test_the_feeder_turns_labels_into_one_hot_rows_per_batch(data):
    net = gpubp.MLP([12, 4], device="cpu")
    out = np.full((3, 4), 7, np.float32)
    Feeder(net.device, data[1], net.dtype, onehot=4, tag="test")(np.array([5, 0, 9]), out)
    np.testing.assert_array_equal(out, np.eye(4, dtype=np.float32)[data[1][[5, 0, 9]]])


@pytest.mark.gpu
def test_streaming_on_the_gpu_trains_like_the_resident_path(data):
    X, y = data
    nets = []
    for stream in (False, True):
        net = gpubp.MLP([12, 16, 4], "relu", device="gpu", seed=3)
        Trainer(net, X, y, batch_size=32, lr=0.05, momentum=0.9, stream=stream).run(3)
        nets.append(net)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(a.get(), b.get())


def test_in_memory_labels_next_to_a_memmap_are_one_hot_per_chunk_only(tmp_path, monkeypatch):
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 4096)
    X = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    y = np.arange(5000) % 50
    Xm = write_npy(tmp_path / "X.npy", X)
    net = gpubp.MLP([4, 50], device="cpu", seed=0)
    expected = net.evaluate(X, y)
    tracemalloc.start()
    try:
        got = net.evaluate(Xm, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got["accuracy"] == expected["accuracy"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert peak < 5000 * 50 * 4 / 2  # the whole one-hot matrix (1 MB) is never made


def test_gradcheck_takes_a_memmap(tmp_path, data):
    net = gpubp.MLP([12, 5, 4], "tanh", device="cpu", seed=0)
    Xm, ym = write_npy(tmp_path / "X.npy", data[0][:6]), write_npy(tmp_path / "y.npy", data[1][:6])
    assert gpubp.gradcheck(net, Xm, ym) == gpubp.gradcheck(net, data[0][:6], data[1][:6])


def test_a_streamed_run_stopped_mid_epoch_resumes_exactly(tmp_path, data):
    Xm, ym = write_npy(tmp_path / "X.npy", data[0]), write_npy(tmp_path / "y.npy", data[1])
    whole = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
    Trainer(whole, Xm, ym, batch_size=32, lr=0.05, momentum=0.9).run(2)
    parts = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
    trainer = Trainer(parts, Xm, ym, batch_size=32, lr=0.05, momentum=0.9)
    trainer.run(2, on_batch=lambda batch, n: batch == 4)  # stops after batch 4 of epoch 1
    assert (trainer.epoch, trainer.position) == (0, 128)
    trainer.run(2)
    same_weights(whole, parts)


def fake_gpu(log: list, entry) -> tuple:
    """A ``gpu:0`` Device over the fake CuPy of tests/fake_gpu.py (no GPU here): each copy from the host
    appends ``entry(host)`` to ``log``, each event waited on ("wait", n), n counting the events made. Returns
    the Device and a function making a (rows, cols) float32 array on it."""
    from fake_gpu import FakeCupy, fake_device

    fake = FakeCupy(1)
    fake.log, fake.copy_entry = log, entry
    gpu = fake_device(fake, 0)

    def empty(shape):
        with gpu.use():
            return fake.empty(shape, np.float32)

    return gpu, empty


def test_gpu_staging_alternates_two_buffers_and_waits_for_the_copy_that_read_one(monkeypatch, data):
    """The GPU bookkeeping of Device.staging/upload, run against a stand-in for CuPy's streams and
    events (the real copies were never run on a GPU)."""
    log = []
    gpu, empty = fake_gpu(log, lambda host: ("copy", host.__array_interface__["data"][0]))
    feed = Feeder(gpu, data[0], np.dtype(np.float32))
    out = empty((5, 12))
    for batch in range(3):
        rows = np.arange(5 * batch, 5 * batch + 5)
        feed(rows, out)
        np.testing.assert_array_equal(out.get(), data[0][rows])
    (_, first), (_, second), wait, (_, third) = log
    assert first != second  # two pinned buffers, alternating
    assert third == first
    assert wait == ("wait", 1)  # the first buffer is refilled only after the first copy is done


def test_a_row_source_with_a_filename_is_named_in_errors(data):
    X = data[0].copy()
    X[7, 1] = np.inf
    source = Rows(X)
    source.filename = "scaled-X.npy"
    with pytest.raises(ValueError, match=r"X in scaled-X\.npy contains NaN .*: an infinite value at row 7"):
        gpubp.MLP([12, 4], device="cpu").predict(source)


def test_on_a_gpu_data_streams_only_when_it_would_not_fit(monkeypatch, data):
    """The GPU's decision, run on the CPU with its free memory stood in for."""
    X, y = data
    net = gpubp.MLP([12, 16, 4], device="cpu", seed=0)
    need = X.shape[0] * (12 + 4) * 4  # X and one-hot Y in float32
    for free, streams in ((100 * need, False), (need, True)):
        monkeypatch.setattr(net.device, "memory_free", lambda free=free: free)
        assert Trainer(net, X, y, batch_size=32).stream is streams


# -- review fixes (#11) ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", np.float64, np.dtype("float32")])
def test_a_row_source_may_give_its_dtype_as_a_string_or_a_type(data, dtype, monkeypatch):
    """The contract asks only that np.dtype accepts ``dtype``; loading whole (to_device) read .itemsize."""
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 1024)  # several chunks
    X, y = data
    Xr, yr = Rows(X.astype(dtype)), Rows(y)
    Xr.dtype, yr.dtype = dtype, "int64"
    net = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
    np.testing.assert_array_equal(gpubp.rows.to_device(net.device, Xr, net.dtype), X.astype(dtype).astype(np.float32))
    for stream in (False, True):
        net = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
        Trainer(net, Xr, yr, batch_size=32, lr=0.05, momentum=0.9, stream=stream).run(2)
        ref = gpubp.MLP([12, 16, 4], "relu", device="cpu", seed=3)
        Trainer(ref, X.astype(dtype), y, batch_size=32, lr=0.05, momentum=0.9).run(2)
        same_weights(ref, net)
        assert net.score(Xr, yr) == ref.score(X.astype(dtype), y)


def nan_file(tmp_path, row=1017, n=1200):
    X = np.random.default_rng(1).normal(size=(n, 12)).astype(np.float32)
    X[row, 3] = np.nan
    return write_npy(tmp_path / "X.npy", X)


def test_nan_in_a_whole_memmap_names_the_file_and_its_row(tmp_path):
    Xm = nan_file(tmp_path)
    for X in (Xm, np.asarray(Xm)):  # the memmap, or a plain ndarray view of all of it
        with pytest.raises(ValueError, match=r"^X in \S*X\.npy contains NaN or infinite values: NaN at row 1017$"):
            gpubp.MLP([12, 4], device="cpu").predict(X)


def test_nan_in_a_view_of_a_memmap_names_its_row_in_the_view_and_in_the_file(tmp_path):
    Xm = nan_file(tmp_path)
    net = gpubp.MLP([12, 4], device="cpu")
    in_file = r" \(row 1017 of \S*/X\.npy\)$"
    with pytest.raises(ValueError, match=r"^X contains NaN or infinite values: NaN at row 17 of X" + in_file):
        net.predict(Xm[1000:])
    with pytest.raises(ValueError, match=r"^X contains NaN .*: NaN at row 7 of X \(row 1017 of \S*X\.npy\)$"):
        net.predict(Xm[1010:1100][:50])  # a view of a view
    with pytest.raises(ValueError, match=r"^X_val contains NaN .*: NaN at row 1016 of X_val" + in_file):
        net.fit(Xm[:1000], np.zeros(1000, int), validation_data=(Xm[1:], np.zeros(1199, int)))
    # rows of the file, but not a run of them: the file's row is not known, so the file is not named
    W = np.zeros((1200, 24), np.float32)
    W[1017, 3] = np.nan
    W = write_npy(tmp_path / "W.npy", W)
    with pytest.raises(ValueError, match=r"^X contains NaN or infinite values: NaN at row 1017 of X$"):
        net.predict(W[:, :12])  # some columns
    with pytest.raises(ValueError, match=r"^X contains NaN or infinite values: NaN at row 508 of X$"):
        net.predict(W[1::2, :12])  # every other row


def test_bad_labels_in_a_view_of_a_label_file_name_both_rows(tmp_path, data):
    y = np.arange(1200) % 4
    y[1017] = 4
    ym = write_npy(tmp_path / "y.npy", y)
    X = np.zeros((200, 12), np.float32)
    with pytest.raises(ValueError, match=r"^Y has labels in \[0, 4\] .* 4 outputs: expected labels 0\.\.3 "
                                         r"\(label 4 at row 17 of Y \(row 1017 of \S*y\.npy\)\)$"):  # fmt: skip
        gpubp.MLP([12, 4], device="cpu").fit(X, ym[1000:])


def test_a_dataset_split_names_the_file_row_of_a_bad_value(tmp_path):
    from gpubp.data import Rows as DataRows

    Xm = nan_file(tmp_path)
    part = DataRows(Xm, np.array([5, 1017, 3]))
    with pytest.raises(ValueError, match=r"^X contains NaN .*: NaN at row 1 of X \(row 1017 of \S*X\.npy\)$"):
        gpubp.MLP([12, 4], device="cpu").predict(part)
    with pytest.raises(ValueError, match=r"^X in \S*X\.npy contains NaN .*: NaN at row 1017$"):
        gpubp.MLP([12, 4], device="cpu").predict(DataRows(Xm))


def test_a_threads_staging_buffers_are_freed_when_it_ends(data):
    """Buffers were kept per thread id and never freed: a process training in many short threads grew."""
    import gc
    import threading
    import weakref

    device = gpubp.MLP([12, 4], device="cpu").device
    kept = []

    def work():
        out = np.empty((32, 12), np.float32)
        feed = Feeder(device, Rows(data[0]), np.dtype(np.float32), tag="thread-test")  # staged every batch
        feed(np.arange(32), out)
        feed(np.arange(32, 64), out)  # both buffers of the pair
        kept.append(weakref.ref(device.staging((32, 12), np.float32, "thread-test").base))
        kept.append(weakref.ref(device.staging((32, 12), np.float32, "thread-test").base))

    mine = device.staging((32, 12), np.float32, "thread-test").base  # this thread's: not the worker's
    for _ in range(3):
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    gc.collect()
    assert len(kept) == 6
    assert all(ref() is None for ref in kept)
    assert device.staging((32, 12), np.float32, "thread-test").base is not mine  # the other of the pair
    assert device.staging((32, 12), np.float32, "thread-test").base is mine  # still here


def test_on_a_gpu_a_threads_staging_buffers_wait_for_their_copies_before_they_go(monkeypatch, data):
    """A pinned buffer may still be read by a copy when its thread ends: dropping it waits for that
    copy's event first. Run against a stand-in for CuPy's streams and events (not run on a GPU)."""
    import gc
    import threading

    log = []
    gpu, empty = fake_gpu(log, lambda host: "copy")

    def work():
        out = empty((5, 12))
        feed = Feeder(gpu, data[0], np.dtype(np.float32))
        feed(np.arange(5), out)
        feed(np.arange(5, 10), out)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    gc.collect()
    assert log[:2] == ["copy", "copy"]
    # both copies waited for as the thread's buffers went (events 1 and 3: each buffer's "copied" event; 2 and
    # 4 mark when the current stream had moved the rows on)
    assert sorted(log[2:]) == [("wait", 1), ("wait", 3)]


# -- chunked passes over many chunks: sums, row numbers, loads and threads -------------------------


def numpy_output(net, X):
    """A_L before the output activation, by the formula on the whole array (tanh hidden layers)."""
    A = np.asarray(X, np.float64)
    for l, (W, b) in enumerate(zip(net.weights, net.biases), 1):
        Z = A @ W.T + b.reshape(1, -1)
        A = Z if l == net.L else np.tanh(Z)
    return A


@pytest.mark.parametrize("n", [2999, 3000])
def test_evaluate_and_score_over_many_chunks_equal_the_formula_on_the_whole_array(tmp_path, monkeypatch, n):
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 4096)
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 12))
    Xm = write_npy(tmp_path / "X.npy", X)
    net = gpubp.MLP([12, 16, 5], "tanh", device="cpu", dtype="float64", seed=2)
    step = gpubp.rows.chunk_rows(12 + 16 + 5 + 12, 8)
    assert n // step >= 10  # many chunks, the last one partial for n = 2999
    y = np.argmax(numpy_output(net, X) + rng.normal(scale=0.3, size=(n, 5)), axis=1)  # ~half right
    ym = write_npy(tmp_path / "y.npy", y)
    hits = int((np.argmax(numpy_output(net, X), axis=1) == y).sum())
    assert 0 < hits < n
    for Xs, ys in ((Xm, ym), (Rows(X), Rows(y)), (Xm, y)):
        assert net.score(Xs, ys) == hits / n
        assert net.evaluate(Xs, ys)["accuracy"] == hits / n

    reg = gpubp.MLP([12, 16, 3], "tanh", loss="mse", device="cpu", dtype="float64", seed=2)
    reg.biases[-1][...] = 1000.0  # outputs and targets far from 0: Σy² ≫ Σ(y − ȳ)², as a naive sum would lose
    P = numpy_output(reg, X)
    Y = P + rng.normal(scale=0.5, size=(n, 3)) * np.array([1.0, 0.1, 3.0])
    r2 = float(np.mean(1 - ((Y - P) ** 2).sum(axis=0) / ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)))
    Ym = write_npy(tmp_path / "Y.npy", Y)
    assert 0.05 < r2 < 0.95
    for Xs, Ys in ((Xm, Ym), (Rows(X), Rows(Y))):
        assert reg.score(Xs, Ys) == pytest.approx(r2, rel=0, abs=1e-12)
        got = reg.evaluate(Xs, Ys)
        assert got["r2"] == pytest.approx(r2, rel=0, abs=1e-12)
        assert got["loss"] == pytest.approx(0.5 * ((Y - P) ** 2).sum() / n, rel=1e-12)


def test_bad_values_just_past_a_chunk_boundary_name_their_row(tmp_path, monkeypatch, data):
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 1024)
    n = 1000
    X = np.random.default_rng(0).normal(size=(n, 12)).astype(np.float32)
    step = gpubp.rows.chunk_rows(12, 8)  # rows per chunk of the checks
    assert 10 < 3 * step < n
    net = gpubp.MLP([12, 4], device="cpu")
    for row in (step, 3 * step, 3 * step + 1, n - 1):  # first rows of a chunk, and the last row
        bad = X.copy()
        bad[row, 11] = np.nan
        with pytest.raises(ValueError, match=rf"^X in \S*X{row}\.npy contains NaN .*: NaN at row {row}$"):
            net.fit(write_npy(tmp_path / f"X{row}.npy", bad), np.zeros(n, int))
        with pytest.raises(ValueError, match=rf"NaN at row {row}$"):
            net.predict(Rows(bad))
    step = gpubp.rows.chunk_rows(1, 8)
    for row in (step, 2 * step + 1):
        y = np.arange(n) % 4
        y[row] = 7
        with pytest.raises(ValueError, match=rf"labels in \[0, 7\] .*\(label 7 at row {row}\)$"):
            net.fit(X, write_npy(tmp_path / f"y{row}.npy", y))
        y = (np.arange(n) % 4).astype(np.float64)
        y[row] = np.nan
        with pytest.raises(ValueError, match=rf"Y contains NaN .*: NaN at row {row}$"):
            net.fit(X, Rows(y))


def test_to_device_over_many_chunks_equals_the_array(monkeypatch, data):
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 512)
    X = np.random.default_rng(0).normal(size=(1001, 12))
    y = np.arange(1001) % 7
    device = gpubp.MLP([12, 4], device="cpu").device
    assert 1001 // gpubp.rows.chunk_rows(12, 8) >= 10
    for dtype in (np.float32, np.float64):
        got = gpubp.rows.to_device(device, Rows(X), np.dtype(dtype))
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, X.astype(dtype))
        np.testing.assert_array_equal(gpubp.rows.to_device(device, Rows(y), np.dtype(dtype), onehot=7),
                                      np.eye(7, dtype=dtype)[y])  # fmt: skip


def test_two_threads_training_from_one_memmap_at_once_equal_one_thread_alone(tmp_path):
    import sys
    import threading

    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 64)).astype(np.float32)
    y = rng.integers(0, 4, 4000)
    Xm, ym = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", y)

    def train(seed):
        net = gpubp.MLP([64, 16, 4], "tanh", device="cpu", seed=seed)
        trainer = Trainer(net, Xm, ym, batch_size=100, lr=0.05, momentum=0.9, shuffle=True, stream=True,
                          validation_data=(Xm[:300], ym[:300]))  # fmt: skip
        trainer.run(3)
        return net

    alone = [train(seed) for seed in (1, 2)]
    together, errors = [None, None], []
    start = threading.Barrier(2)

    def work(i):
        try:
            start.wait()
            together[i] = train(i + 1)
        except BaseException as exc:  # reported below: the thread would swallow it
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that a buffer both used would be caught
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    for a, b in zip(alone, together):
        same_weights(a, b)
        assert a.history["val_loss"] == b.history["val_loss"]


# -- #11 "Bad input", from the library: one clear error naming file and row, before any step -------


def bad_inputs(tmp_path, X, y):
    """(X, y, validation_data, error, message) for each bad input of #11."""
    n = len(y)
    Xm, ym = write_npy(tmp_path / "X.npy", X), write_npy(tmp_path / "y.npy", y)
    nan_X = X.copy()
    nan_X[n // 2, 4] = np.nan
    nan_y = y.astype(np.float64)
    nan_y[n // 2 + 1] = np.nan
    mid = rf"contains NaN or infinite values: NaN at row {n // 2}$"
    return [
        (write_npy(tmp_path / "nanX.npy", nan_X), ym, None, ValueError, r"^X in \S*/nanX\.npy " + mid),
        (
            Xm,
            write_npy(tmp_path / "nany.npy", nan_y),
            None,
            ValueError,
            rf"^Y in \S*/nany\.npy contains NaN or infinite values: NaN at row {n // 2 + 1}$",
        ),
        (Xm, ym, (write_npy(tmp_path / "nanV.npy", nan_X), ym), ValueError, r"^X_val in \S*/nanV\.npy " + mid),
        (
            Xm,
            write_npy(tmp_path / "short.npy", y[:-1]),
            None,
            ValueError,
            rf"^Y in \S*/short\.npy has {n - 1} rows but X has {n} samples$",
        ),
        (
            write_npy(tmp_path / "text.npy", np.full(X.shape, "ab")),
            ym,
            None,
            TypeError,
            r"^X in \S*/text\.npy must be numeric \(bool, int or float\), got dtype <U2$",
        ),
        (
            Xm,
            write_npy(tmp_path / "ytext.npy", np.full(n, "ab")),
            None,
            TypeError,
            r"^Y in \S*/ytext\.npy must be numeric, got dtype <U2$",
        ),
        (
            str(tmp_path / "X.npy"),
            ym,
            None,
            TypeError,
            r"^X is a path \('\S*/X\.npy'\), not an array: pass gpubp\.rows\.open_npy\(path\)",
        ),
    ]


@pytest.mark.parametrize("case", range(7))
def test_bad_input_is_one_clear_error_before_any_training_step(tmp_path, data, case):
    X, y, validation, error, message = bad_inputs(tmp_path, *data)[case]
    net = gpubp.MLP([12, 16, 4], device="cpu", seed=0)
    before = [W.copy() for W in net.weights + net.biases]
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=2, batch_size=32, validation_data=validation)
    for W, was in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(W, was)
    assert net.history is None
    with pytest.raises(error, match=message):  # and the same from the Trainer
        Trainer(net, X, y, batch_size=32, validation_data=validation)


def test_a_truncated_npy_given_to_the_library_says_so_with_its_file(tmp_path, data):
    write_npy(tmp_path / "X.npy", data[0])
    whole = (tmp_path / "X.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-100])
    with pytest.raises(
        ValueError,
        match=r"^\S*/cut\.npy is truncated: its header promises 300 × 12 float32 "
        r"\(\d[\d,]* bytes with the header\) but the file has [\d,]+ bytes$",
    ):
        gpubp.MLP([12, 4], device="cpu").fit(open_npy(tmp_path / "cut.npy"), data[1])
