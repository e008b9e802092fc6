"""Loaders: every format users bring, and the one-line errors for files that are not what they claim."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from gpubp.data import DataError, Scaler, load_data, load_digits, read_idx, stratified_split
from gpubp.labels import Labels


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


@pytest.fixture
def mnist_folder(tmp_path, rng):
    images = rng.integers(0, 256, (30, 4, 4)).astype(np.uint8)
    labels = rng.integers(0, 10, 30).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:10])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:10])
    return tmp_path, images, labels


def test_embedded_digits():
    ds = load_digits()
    assert ds.X.shape == (1797, 64)
    assert ds.X.min() == 0
    assert ds.X.max() == 16
    assert np.bincount(ds.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_idx_folder_gzipped_and_plain(mnist_folder):
    folder, images, labels = mnist_folder
    ds = load_data(str(folder))
    np.testing.assert_array_equal(ds.X, images.reshape(30, 16))
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_array_equal(ds.X_test, images[:10].reshape(10, 16))
    pair = load_data(f"{folder}/t10k-images-idx3-ubyte,{folder}/t10k-labels-idx1-ubyte")
    np.testing.assert_array_equal(pair.y, labels[:10])


def test_truncated_and_foreign_idx(tmp_path, rng):
    images = rng.integers(0, 256, (5, 3, 3)).astype(np.uint8)
    write_idx(tmp_path / "a.idx", images)
    data = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "cut.idx").write_bytes(data[:-4])
    declared = r"its header declares 5 × 3 × 3 uint8 \(45 data bytes\) but the file holds 41"
    with pytest.raises(DataError, match=rf"cut.idx: truncated IDX file: {declared}"):
        read_idx(str(tmp_path / "cut.idx"))
    (tmp_path / "png.idx").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(str(tmp_path / "png.idx"))
    (tmp_path / "long.idx").write_bytes(data + b"\x00")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(str(tmp_path / "long.idx"))
    write_idx(tmp_path / "labels.idx", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"5 images but .* 4 labels"):
        load_data(f"{tmp_path / 'a.idx'},{tmp_path / 'labels.idx'}")


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no IDX files found"):
        load_data(str(tmp_path))


def test_npz_and_npy_pair(tmp_path, rng):
    X, y = rng.normal(size=(8, 3)), rng.integers(0, 2, 8)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = load_data(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(ds.X, X)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y[:7])
    with pytest.raises(DataError, match=r"8 rows but .*y\.npy has 7"):
        load_data(f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}")
    np.savez(tmp_path / "nox.npz", features=X)
    with pytest.raises(DataError, match="'X' and 'y'"):
        load_data(str(tmp_path / "nox.npz"))
    X[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=y)
    with pytest.raises(DataError, match=r"nan\.npz: X contains NaN"):
        load_data(str(tmp_path / "nan.npz"))


def test_csv_header_detection_and_label_column(tmp_path):
    (tmp_path / "h.csv").write_text("f1,f2,species\n1,2,cat\n3,4,dog\n5,6,cat\n")
    ds = load_data(str(tmp_path / "h.csv"), label_column="species")
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6]])
    assert ds.y.tolist() == ["cat", "dog", "cat"]
    assert ds.feature_names == ["f1", "f2"]
    (tmp_path / "n.csv").write_text("0,1.5,2.5\n1,3.5,4.5\n")
    ds = load_data(str(tmp_path / "n.csv"), label_column="0")
    np.testing.assert_array_equal(ds.X, [[1.5, 2.5], [3.5, 4.5]])
    assert ds.y.tolist() == [0, 1]
    ds = load_data(str(tmp_path / "n.csv"))  # default: the last column
    assert ds.y.tolist() == [2.5, 4.5]
    (tmp_path / "semi.csv").write_text("a;b;label\n1;2;0\n3;4;1\n")
    assert load_data(str(tmp_path / "semi.csv")).X.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,b,label\n1,2,0\n3,x,1\n", r"line 3, column 'b': not a number: 'x' \(if that column holds the labels"),
        ("a,b,label\n1,2,0\n3,4,5,6\n", r"Expected 3 fields in line 3, saw 4"),
        ("", "empty CSV"),
        ("a,b,label\n", "no data rows"),
    ],
)
def test_bad_csv(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        load_data(str(path))


def test_csv_unknown_label_column_and_binary(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no label column 'c'"):
        load_data(str(tmp_path / "h.csv"), label_column="c")
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DataError, match="not a text CSV"):
        load_data(str(tmp_path / "bin.csv"))


def test_unknown_format(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="unknown data format"):
        load_data(str(tmp_path / "x.parquet"))


def test_stratified_split_is_fixed_and_proportional():
    y = np.repeat(np.arange(4), 50)
    test, val, train = stratified_split(y, (0.2, 0.1), seed=0)
    assert len(test) == 40
    assert len(val) == 20
    assert len(train) == 140
    assert np.bincount(y[test]).tolist() == [10, 10, 10, 10]
    assert not set(test) & set(val) | set(test) & set(train) | set(val) & set(train)
    again = stratified_split(y, (0.2, 0.1), seed=0)
    np.testing.assert_array_equal(test, again[0])


def test_scalers_standardise_and_stretch_to_0_1(rng):
    X = rng.normal(5, 3, size=(100, 3))
    X[:, 2] = 7.0  # a constant feature
    s = Scaler("standard").fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1)
    assert np.all(Z[:, 2] == 0)
    m = Scaler("minmax").fit(X)
    assert m.transform(X)[:, :2].min() == 0
    assert m.transform(X)[:, :2].max() == 1
    with pytest.raises(ValueError, match="unknown scaling"):
        Scaler("robust")
    with pytest.raises(ValueError, match="2 features, the model was trained on 3"):
        s.transform(X[:, :2])


# -- the Dataset: rows + index sets + scaler ---------------------------------------------------------


def test_dataset_holds_index_sets_not_copies(rng):
    from gpubp.data import Dataset

    ds = Dataset.prepare("digits")
    assert ds.X is load_digits().X or ds.X.shape == (1797, 64)
    parts = np.concatenate([ds.train, ds.val, ds.test])
    assert parts.dtype == np.int64
    np.testing.assert_array_equal(np.sort(parts), np.arange(1797))  # disjoint, and every row once
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (1259, 179, 359)
    np.testing.assert_allclose(ds.scaler.shift, ds.X[ds.train].mean(axis=0))  # fitted on train rows only
    np.testing.assert_array_equal(ds.features("val"), ds.scaler.transform(ds.X[ds.val]))
    assert ds.targets("train", 10, "mse").shape == (1259, 10)
    assert "359 rows held out" in ds.test_rule


def test_dataset_refuses_what_cannot_be_split_or_classified(rng):
    from gpubp.data import Dataset, RawData

    X = rng.normal(size=(4, 2))
    with pytest.raises(DataError, match="4 rows are too few"):
        Dataset.prepare(RawData(X, np.array([0, 1, 0, 1]), "tiny"))
    with pytest.raises(DataError, match="--task regress"):
        Dataset.prepare(RawData(rng.normal(size=(40, 2)), rng.normal(size=40), "floats"))
    reg = Dataset.prepare(RawData(rng.normal(size=(40, 2)), 500 + 10 * rng.normal(size=40), "r"), task="regress")
    assert abs(reg.targets("train").mean()) < 1e-9  # standardised on the training rows
    np.testing.assert_allclose(reg.target.inverse(reg.y.reshape(-1, 1))[:, 0][reg.train].mean(), reg.target.shift[0])


def test_labels_encode_decode_and_refuse_strangers():
    from gpubp.labels import as_labels, class_index

    labels = Labels.of(np.array([9, 7, 8, 7]))
    np.testing.assert_array_equal(labels.encode(np.array([7, 9])), [0, 2])
    np.testing.assert_array_equal(labels.decode([2, 0]), [9, 7])
    with pytest.raises(ValueError, match="label 5 was not among"):
        labels.encode(np.array([5]))
    words = Labels.of(np.array(["b", "a"]))
    np.testing.assert_array_equal(words.encode(np.array(["a", "b", "a"])), [0, 1, 0])
    np.testing.assert_array_equal(as_labels(np.array([[0, 1], [1, 0]])), [1, 0])
    np.testing.assert_array_equal(class_index(np.array([[0.2], [0.7]])), [0, 1])


def test_one_rule_for_the_test_rows(mnist_folder, tmp_path, rng):
    from gpubp.data import RawData, row_hashes, scored_rows

    folder, _, _ = mnist_folder
    raw = load_data(str(folder))
    X, _, _, split, why = scored_rows(raw)
    assert (len(X), split) == (10, "test")
    assert "own test files" in why
    data = RawData(rng.normal(size=(50, 3)), rng.integers(0, 2, 50), "a.csv")
    test, train = np.arange(40, 50), np.arange(40)
    hashes = {"heldout": np.sort(row_hashes(data.X, test)), "trained": np.sort(row_hashes(data.X, train))}
    X, _, rows, split, why = scored_rows(RawData(data.X, data.y, "./a.csv"), hashes=hashes)
    assert (split, rows.tolist()) == ("test", test.tolist())
    assert "all 10 held-out rows" in why
    np.testing.assert_array_equal(X, data.X[rows])
    # shuffled, labels edited, as float32: the same held-out rows, found by content (#18)
    order = rng.permutation(50)
    other = RawData(data.X[order].astype(np.float32), 1 - data.y[order], "b.npz")
    X, y, rows, split, _ = scored_rows(other, hashes=hashes)
    assert split == "test"
    assert sorted(order[rows].tolist()) == test.tolist()
    np.testing.assert_array_equal(y, 1 - data.y[order[rows]])
    # part of the held-out rows with training rows: only the held-out ones, and it says so
    part = RawData(data.X[35:45], data.y[35:45], "c.csv")
    X, _, rows, split, why = scored_rows(part, hashes=hashes)
    assert (split, rows.tolist()) == ("test", list(range(5, 10)))
    assert "only 5 of the 10 held-out rows" in why
    assert "5 training rows are not scored" in why
    # training rows and new rows: the new rows alone
    new = RawData(np.vstack([data.X[:5], rng.normal(size=(3, 3))]), np.zeros(8, int), "d.csv")
    X, _, rows, split, why = scored_rows(new, hashes=hashes)
    assert (split, rows.tolist()) == ("all", [5, 6, 7])
    with pytest.raises(DataError, match="--split test"):
        scored_rows(new, split="test", hashes=hashes)
    with pytest.raises(DataError, match="all 5 rows are rows the model was trained on"):
        scored_rows(RawData(data.X[:5], data.y[:5], "e.csv"), hashes=hashes)
    # a held-out row equal to a training row is a training row: never scored as held out
    dup = data.X.copy()
    dup[45] = dup[0]
    dup_hashes = {"heldout": row_hashes(dup, test), "trained": row_hashes(dup, train)}
    _, _, rows, _, why = scored_rows(RawData(dup, data.y, "f.csv"), hashes=dup_hashes)
    assert 45 not in rows.tolist()
    assert "all 9 held-out rows" in why
    # a model that stores no row hashes cannot tell: every row, and it says so
    X, _, _, split, why = scored_rows(RawData(data.X, data.y, "a.csv"))
    assert (len(X), split) == (50, "all")
    assert "cannot tell" in why


def test_row_hashes_are_per_row_content(rng):
    from gpubp.data import row_hashes

    X = rng.normal(size=(1000, 7))
    h = row_hashes(X)
    assert h.dtype == np.uint64
    assert len(np.unique(h)) == 1000
    np.testing.assert_array_equal(row_hashes(X[::-1]), h[::-1])
    np.testing.assert_array_equal(row_hashes(X.astype(np.float32)), h)
    np.testing.assert_array_equal(row_hashes(X, np.array([3, 1])), h[[3, 1]])
    swapped = X[:, [1, 0, 2, 3, 4, 5, 6]]
    assert not np.isin(row_hashes(swapped), h).any()  # the column order is part of a row
    zero = np.zeros((1, 7))
    assert row_hashes(-zero)[0] == row_hashes(zero)[0]


# -- memory-mapped inputs: index sets, chunked statistics, rows scaled per batch --------------------


def test_rows_view_reads_and_scales_only_what_is_asked(tmp_path, rng):
    from gpubp.data import Rows
    from gpubp.rows import is_row_source

    X = rng.normal(loc=3.0, size=(50, 4))
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    idx = np.array([40, 3, 17, 8, 25])
    scaler = Scaler("standard").fit(X)
    view = Rows(mapped, idx, scaler)
    assert is_row_source(view)
    assert (view.shape, view.ndim, len(view), view.dtype) == ((5, 4), 2, 5, np.float64)
    assert view.filename == str(tmp_path / "X.npy")
    np.testing.assert_array_equal(view[1:4], scaler.transform(X[idx[1:4]]))
    np.testing.assert_array_equal(view[np.array([4, 0, 2])], scaler.transform(X[idx[[4, 0, 2]]]))  # any order
    np.testing.assert_array_equal(Rows(mapped)[np.array([7, 2])], X[[7, 2]])  # unscaled, all rows
    assert not hasattr(view, "__array__")  # never converted whole
    with pytest.raises(IndexError, match="1-D integer"):
        view[np.array([[0]])]
    with pytest.raises(IndexError, match="out of range"):
        view[np.array([5])]


def test_chunked_scaler_statistics_match_in_memory_ones(tmp_path, rng, monkeypatch):
    import gpubp.rows

    X = rng.normal(loc=1e4, scale=3.0, size=(3000, 5))
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    monkeypatch.setattr(gpubp.rows, "CHUNK_BYTES", 40 * 8 * 5)  # 40-row chunks: many merges
    rows = np.sort(rng.choice(3000, 2000, replace=False))
    for kind in Scaler.KINDS:
        chunked, whole = Scaler(kind).fit(mapped, rows), Scaler(kind).fit(X[rows])
        np.testing.assert_allclose(chunked.shift, whole.shift, rtol=1e-12)
        np.testing.assert_allclose(chunked.scale, whole.scale, rtol=1e-9)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_a_scaler_refuses_statistics_that_overflow_instead_of_zeroing_a_column(tmp_path, rng, kind):
    """Values near 1e300 once gave an infinite spread, so the column became zeros and the run trained on
    nothing at chance level with exit status 0: now one error names the column, in memory and mapped."""
    X = rng.normal(size=(50, 3))
    X[:, 2] = rng.choice([-1.5e308, 1.5e308], 50)  # max − min and the squares overflow float64
    np.save(tmp_path / "X.npy", X)
    for data in (X, np.load(tmp_path / "X.npy", mmap_mode="r")):
        with pytest.raises(ValueError, match=r"column 2: values too large to scale"):
            Scaler(kind).fit(data)
    assert np.isfinite(Scaler(kind).fit(X[:, :2]).scale).all()


def test_npy_inputs_are_memory_mapped_and_others_say_their_size(tmp_path, rng):
    from gpubp.data import Dataset, Rows
    from gpubp.rows import is_mapped

    X, y = rng.normal(size=(100, 3)).astype(np.float32), rng.integers(0, 2, 100)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    raw = load_data(f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}")
    assert is_mapped(raw.X)
    assert raw.X.dtype == np.float32  # not converted whole
    assert "memory-mapped" in raw.note
    ds = Dataset.prepare(raw)
    assert isinstance(ds.features("train"), Rows)
    first = ds.scaler.transform(X[ds.train[:3]].astype(np.float64))
    np.testing.assert_allclose(ds.features("train")[np.arange(3)], first)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert "cannot memory-map .npz" in load_data(str(tmp_path / "d.npz")).note
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",")
    assert "loaded whole" in load_data(str(tmp_path / "d.csv")).note


def test_data_larger_than_memory_suggests_npy(tmp_path, rng, monkeypatch):
    import gpubp.loaders

    np.savetxt(tmp_path / "d.csv", rng.normal(size=(50, 3)), delimiter=",")
    monkeypatch.setattr(gpubp.loaders, "available_memory", lambda: 100)
    with pytest.raises(DataError, match=r"d\.csv: loading it whole needs about .* save it as X.npy,y.npy"):
        load_data(str(tmp_path / "d.csv"))
    write_idx(tmp_path / "img-idx3-ubyte.gz", rng.integers(0, 256, (10, 4, 4)).astype(np.uint8), compress=True)
    with pytest.raises(DataError, match=r"reading it needs .* save the images as X.npy"):
        read_idx(str(tmp_path / "img-idx3-ubyte.gz"))


def test_nan_in_the_middle_of_a_mapped_file_names_the_row(tmp_path, rng):
    X = rng.normal(size=(5000, 3))
    X[3210, 1] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", rng.integers(0, 2, 5000))
    with pytest.raises(DataError, match="row 3210"):
        load_data(f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}")


def test_bad_npy_pairs_are_named_before_any_work(tmp_path, rng):
    X = rng.normal(size=(40, 3))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "short.npy", rng.integers(0, 2, 39))
    np.save(tmp_path / "words.npy", np.array(["a"] * 40 * 3).reshape(40, 3))
    blob = (tmp_path / "X.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[: len(blob) - 100])
    with pytest.raises(DataError, match=r"cut\.npy is truncated"):
        load_data(f"{tmp_path / 'cut.npy'},{tmp_path / 'short.npy'}")
    with pytest.raises(DataError, match=r"X\.npy has 40 rows but .*short\.npy has 39"):
        load_data(f"{tmp_path / 'X.npy'},{tmp_path / 'short.npy'}")
    with pytest.raises(DataError, match="X must be numeric"):
        load_data(f"{tmp_path / 'words.npy'},{tmp_path / 'short.npy'}")


def test_a_file_named_npz_that_is_not_numpy_says_what_it_is(tmp_path):
    """np.load takes any non-NumPy file for a pickle and suggests allow_pickle, which would run code."""
    import pickle

    (tmp_path / "csv.npz").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(DataError, match=r"csv\.npz: is neither a \.npy nor a \.npz file .*a CSV\? name it \.csv"):
        load_data(str(tmp_path / "csv.npz"))
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"X": 1}))
    with pytest.raises(DataError, match=r"p\.npz: holds Python objects \(a pickle\), which gpubp never loads"):
        load_data(str(tmp_path / "p.npz"))
