"""Saving and loading: round trips, atomic writes, and files that are not models."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpubp
from gpubp._io import atomic_write, to_json


def test_save_and_load_round_trip(tmp_path, rng):
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)
    net = gpubp.MLP([3, 5, 2], "tanh", device="cpu", dtype="float64", seed=4)
    net.fit(X, y, epochs=2, batch_size=5)
    path = tmp_path / "model.npz"
    net.save(path)
    back = gpubp.load(path, device="cpu")
    assert back.config() == net.config()
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float64
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.history == net.history
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"the good model")

    def crash(f):
        f.write(b"half a mod")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_bytes() == b"the good model"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_atomic_write_refuses_a_special_file_and_writes_through_a_link(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe: not a regular file"):
        atomic_write(fifo, lambda f: f.write(b"x"))
    assert fifo.is_fifo()
    with pytest.raises(ValueError, match="/dev/stdout: not a regular file"):  # it resolves to stdout's file
        atomic_write("/dev/stdout", lambda f: f.write(b"x"))
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to("real")
    atomic_write(tmp_path / "link", lambda f: f.write(b"new"))
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real").read_bytes() == b"new"


def test_a_link_of_another_user_is_not_followed(tmp_path, monkeypatch):
    """In a shared folder (/tmp) another user's link could point at any of this user's files."""
    (tmp_path / "mine").write_bytes(b"precious")
    (tmp_path / "planted").symlink_to("mine")
    monkeypatch.setattr(os, "getuid", lambda: os.lstat(tmp_path / "planted").st_uid + 1)  # as if another's
    with pytest.raises(ValueError, match="planted: a symbolic link of another user's"):
        atomic_write(tmp_path / "planted", lambda f: f.write(b"x"))
    assert (tmp_path / "mine").read_bytes() == b"precious"


def test_a_long_file_name_gets_a_temporary_name_that_fits(tmp_path):
    name = "m" * 250 + ".npz"  # 254 bytes: '.<name>.<random>.tmp' would pass the 255-byte limit
    atomic_write(tmp_path / name, lambda f: f.write(b"ok"))
    assert (tmp_path / name).read_bytes() == b"ok"


def test_writing_into_a_missing_folder_says_so(tmp_path):
    net = gpubp.MLP([2, 2], device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.save(tmp_path / "nope" / "model.npz")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a gpubp model"),
        (b"PK\x03\x04 truncated zip", "not a gpubp model"),
        (b"hello, I am a text file", "not a gpubp model"),
    ],
)
def test_files_that_are_not_models_are_refused(tmp_path, content, match):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        gpubp.load(path)


def test_foreign_npz_and_truncated_model(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, X=np.ones(3))
    with pytest.raises(ValueError, match="no gpubp format marker"):
        gpubp.load(foreign)
    good = tmp_path / "good.npz"
    gpubp.MLP([3, 4, 2], device="cpu").save(good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a gpubp model"):
        gpubp.load(cut)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        gpubp.load(tmp_path / "absent.npz")


def test_load_onto_either_device(tmp_path, device):
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=1)
    net.save(tmp_path / "m.npz")
    back = gpubp.load(tmp_path / "m.npz", device=device)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(back.device.to_host(back.forward(x)), net.forward(x), rtol=1e-6)


def test_a_plain_npy_file_is_not_a_model(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ValueError, match="not a gpubp model"):
        gpubp.load(path)


def test_saved_files_get_ordinary_permissions(tmp_path):
    path = tmp_path / "m.npz"
    gpubp.MLP([2, 2], device="cpu").save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_model_whose_arrays_disagree_with_its_config_is_damaged(tmp_path):
    good = tmp_path / "good.npz"
    gpubp.MLP([3, 4, 2], device="cpu").save(good)
    with np.load(good) as f:
        contents = {k: f[k] for k in f.files}
    contents["b_1"] = np.zeros(5)
    np.savez(tmp_path / "bad.npz", **contents)
    with pytest.raises(ValueError, match=r"damaged gpubp model: member b_1 declares shape \(5,\) .* shape \(4,\)"):
        gpubp.load(tmp_path / "bad.npz")


def test_the_library_resumes_a_training_run_exactly(tmp_path, rng):
    from gpubp.training import Trainer

    X, y = rng.normal(size=(90, 4)), rng.integers(0, 3, 90)
    Xv, yv = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)

    def trainer() -> Trainer:
        net = gpubp.MLP([4, 6, 3], "tanh", device="cpu", dtype="float64", seed=1)
        return Trainer(net, X, y, batch_size=16, lr=0.05, optimizer="adam", validation_data=(Xv, yv), patience=50)

    whole = trainer()
    whole.run(6)
    first = trainer()
    first.run(3)
    first.save(tmp_path / "run.npz")
    second = Trainer.resume(tmp_path / "run.npz", X, y, validation_data=(Xv, yv), load=gpubp.network.load, device="cpu")
    assert second.epoch == 3
    second.run(6)
    for a, b in zip(second.net.weights + second.net.biases, whole.net.weights + whole.net.biases):
        np.testing.assert_array_equal(a, b)
    for key in ("epoch", "train_loss", "val_loss", "val_accuracy"):  # not the timings
        assert second.history[key] == whole.history[key], key
    plain = tmp_path / "plain.npz"
    whole.net.save(plain)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        Trainer.resume(plain, X, y, load=gpubp.network.load)


def test_a_pickled_npz_is_not_a_model_and_no_pickle_is_suggested(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a gpubp model") as info:
        gpubp.load(path)
    assert "allow_pickle" not in str(info.value)


def test_one_json_encoder():
    assert to_json({"a": np.float32(1.5), "b": np.arange(2), "c": float("nan")}) == '{"a": 1.5, "b": [0, 1], "c": NaN}'
    assert to_json({"c": [float("inf"), 1.0]}, strict=True) == '{"c": ["inf", 1.0]}'


def test_a_cli_style_model_round_trips_with_its_preprocessing(tmp_path, rng):
    from gpubp.data import Dataset, RawData

    X = rng.normal(loc=100, scale=20, size=(120, 3))
    y = np.where(X[:, 0] > 100, "hi", "lo")
    ds = Dataset.prepare(RawData(X, y, "mem"))
    net = gpubp.MLP([3, 8, 2], "tanh", "softmax", device="cpu", dtype="float64", seed=0)
    net.fit(ds.features("train"), ds.targets("train"), epochs=30, lr=0.2)
    model = gpubp.Model(net, ds.scaler, ds.labels, settings={"scale": "standard"})
    model.save(tmp_path / "m.npz")
    back = gpubp.load(tmp_path / "m.npz", device="cpu")
    assert isinstance(back, gpubp.Model)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert set(back.predict(X)) <= {"hi", "lo"}
    assert back.score(X, y) > 0.9
    np.testing.assert_allclose(back.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("age", ["no rows' fingerprint", "per-parameter optimiser lists"])
def test_a_checkpoint_of_an_earlier_layout_is_refused_by_name_and_still_loads_as_a_model(tmp_path, rng, age):
    from gpubp.checkpoint import read_file, save_model
    from gpubp.training import Trainer

    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    net = gpubp.MLP([4, 6, 3], "tanh", device="cpu", dtype="float64", seed=1)
    trainer = Trainer(net, X, y, batch_size=16, lr=0.05, momentum=0.9)
    trainer.run(2)
    path = tmp_path / "run.npz"
    trainer.save(path)
    _, _, meta, arrays = read_file(path)
    if age == "no rows' fingerprint":
        del meta["trainer"]["data"]
    else:
        del meta["trainer"]["optimizer"]["_arrays"]
    old = tmp_path / "old.npz"
    save_model(net, old, meta=meta, arrays=arrays)
    with pytest.raises(ValueError, match=r"from an earlier gpubp .* cannot be resumed"):
        Trainer.resume(old, X, y, load=gpubp.network.load, device="cpu")
    np.testing.assert_array_equal(gpubp.load(old, device="cpu").predict(X), net.predict(X))
