"""The gpubp command: outputs, files, exit codes. Most tests call it in-process (``run``, as a user's
shell would but without starting Python each time); the few that need a real process (the console
script, Ctrl-C, a closed pipe, what a fresh process prints once) start one (``run_process``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_calls import Done, run

import gpubp
from gpubp.data import load_digits

BIN = Path(sys.executable).parent / "gpubp"
ENV = {**os.environ, "GPUBP_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}


def run_process(*args: str, cwd: Path | None = None, check: int | None = 0,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """``python -m gpubp ARGS`` in a new process, for what only a process shows."""
    proc = subprocess.run([sys.executable, "-m", "gpubp", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, cwd=cwd, timeout=300)  # fmt: skip
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def assert_one_line_error(proc: Done | subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_from_the_console_script_and_python_m():
    assert "train" in run_process("--help").stdout
    assert "default: the --resume file" in " ".join(run("train", "--help").stdout.split())
    assert BIN.exists(), f"the console script is not installed beside {sys.executable} (run make install)"
    proc = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0
    assert "gradcheck" in proc.stdout


def test_default_train_reaches_97_percent(tmp_path):
    proc = run("train", "--json", cwd=tmp_path)
    result = json.loads(proc.stdout)
    assert result["test_accuracy"] >= 0.97
    assert result["epochs"] == 30
    assert (tmp_path / "gpubp-model.npz").exists()
    assert "epoch" in proc.stderr  # the table went to stderr with --json
    assert "test accuracy" in proc.stderr


def test_train_prints_a_table_and_the_saved_path(tmp_path):
    proc = run("train", "--epochs", "2", "--save", str(tmp_path / "m.npz"), "--plot", str(tmp_path / "c.png"))
    out = proc.stdout
    assert "train loss" in out
    assert "val acc" in out
    assert "samples/s" in out
    assert "test accuracy:" in out
    assert f"model saved to {tmp_path / 'm.npz'}" in out
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    net = gpubp.load(tmp_path / "m.npz", device="cpu")
    assert net.sizes == [64, 256, 10]
    assert len(net.history["epoch"]) == 2


def weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files) if k.startswith(("W_", "b_"))]


@pytest.mark.parametrize("extra", [[], ["--optimizer", "adam", "--lr", "0.001"], ["--patience", "2"]],
                         ids=["sgd-momentum", "adam", "early-stopping"])  # fmt: skip
def test_resume_5_plus_5_equals_10(tmp_path, extra):
    common = ["train", "--hidden", "32", *extra]
    run(*common, "--epochs", "10", "--save", str(tmp_path / "straight.npz"))
    run(*common, "--epochs", "5", "--save", str(tmp_path / "resumed.npz"))
    run("train", "--epochs", "10", "--resume", str(tmp_path / "resumed.npz"), cwd=tmp_path)  # saves back there
    for a, b in zip(weights(tmp_path / "straight.npz"), weights(tmp_path / "resumed.npz")):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_stops_saves_and_exits_130(tmp_path):
    ckpt = tmp_path / "run.npz"
    proc = subprocess.Popen([sys.executable, "-m", "gpubp", "train", "--epochs", "100000", "--save", str(ckpt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    try:
        for line in proc.stdout:  # wait until training runs
            if line.strip().startswith("2 "):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted in epoch" in err or "interrupted after epoch" in err
    assert f"checkpoint saved to {ckpt}" in err
    assert "Traceback" not in err
    net = gpubp.load(ckpt, device="cpu")
    assert len(net.history["epoch"]) >= 2
    # and it resumes
    run("train", "--epochs", str(len(net.history["epoch"]) + 1), "--resume", str(ckpt), "--save", str(ckpt))


def test_evaluate_and_predict(tmp_path):
    model = tmp_path / "m.npz"
    run("train", "--epochs", "5", "--save", str(model))
    out = run("evaluate", str(model)).stdout
    assert "accuracy:" in out
    assert "precision" in out
    assert "confusion matrix" in out
    result = json.loads(run("evaluate", str(model), "--json", "--plot", str(tmp_path / "cm.png")).stdout)
    assert result["split"] == "test"
    assert result["rows"] == 359
    assert sum(map(sum, result["confusion"])) == 359
    assert (tmp_path / "cm.png").exists()
    # predictions for user data without labels
    X = load_digits().X[:7]
    np.savetxt(tmp_path / "rows.csv", X, delimiter=",", fmt="%g")
    run("predict", str(model), "--data", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p.csv"))
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["row", "prediction", "p_0"]
    assert len(lines) == 8


def test_gradcheck_command_passes():
    proc = run("gradcheck", "--hidden", "16,8", "--activation", "tanh")
    assert "PASS" in proc.stdout
    assert proc.stdout.count("e-") >= 6  # one relative error per W_l and b_l


def test_info_reports_backend_and_gpu_status():
    out = run("info").stdout
    assert "numpy" in out
    assert "default device: cpu" in out
    assert "gpu:" in out
    info = json.loads(run("info", "--json").stdout)
    assert info["cpu"]["available"]
    assert f"kernels: {info['cpu']['kernels_note']}" in out
    assert info["cpu"]["kernels"] in ("numba", "numpy")


def test_cpu_kernels_chosen_by_environment(tmp_path):
    out = run_process("info", env={"GPUBP_CPU_KERNELS": "numpy"}).stdout
    assert "kernels: NumPy twins (GPUBP_CPU_KERNELS=numpy)" in out
    fast = {"GPUBP_CPU_KERNELS": "fast"}  # info still runs and says what is wrong; train refuses in one line
    assert (
        "kernels: GPUBP_CPU_KERNELS='fast': expected one of auto, numba, numpy" in run_process("info", env=fast).stdout
    )
    assert "default device: none: unknown device 'banana'" in run_process("info", env={"GPUBP_DEVICE": "banana"}).stdout
    proc = run_process("train", "--epochs", "1", "--no-save", cwd=tmp_path, check=None, env=fast)
    assert_one_line_error(proc, "GPUBP_CPU_KERNELS='fast': expected one of auto, numba, numpy")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--activation", "swish"], ["invalid choice: 'swish'"]),
        (["train", "--epochs", "zero"], ["--epochs", "expected a whole number > 0"]),
        (["train", "--split-seed", "-4"], ["--split-seed", "must be >= 0"]),
        (["train", "--lr", "-1"], ["must be > 0"]),
        (["train", "--hidden", "12,x"], ["widths like 128,64"]),
        (["train", "--data", "/nonexistent/file.csv"], ["file not found"]),
        (["train", "--device", "gpu", "--epochs", "1"], ["no usable GPU"]),
        (["train", "--device", "tpu", "--epochs", "1"], ["unknown device 'tpu'"]),
        (["train", "--loss", "bce", "--output", "softmax"], ["needs a sigmoid output"]),
        (["evaluate", "/nonexistent/model.npz"], ["model file not found"]),
        (["bogus"], ["invalid choice: 'bogus'"]),
        (["train", "--save", "/nonexistent/dir/m.npz"], ["--save", "does not exist"]),
        (["train", "--plot", "/nonexistent/dir/c.png"], ["--plot", "does not exist"]),
        (["train", "--save", ""], ["--save: empty file name", "--no-save"]),
        (["train", "--resume", "."], [". is a folder"]),
        (["train", "--hidden", ""], ["--hidden", "'none' for no hidden layer"]),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, args, fragments):
    if args[0] == "train" and "--save" not in args:
        args = [*args, "--no-save"]
    assert_one_line_error(run(*args, cwd=tmp_path, check=None), *fragments)


def test_a_resumed_run_names_resume_for_where_it_saves(tmp_path):
    proc = run("train", "--resume", str(tmp_path), check=None)  # no --save: it would save to the file resumed
    assert_one_line_error(proc, f"--resume {tmp_path}: is a folder")


def test_outputs_never_replace_a_special_file_or_a_link(tmp_path):
    """A rename over a device or pipe would replace it (as root, --save /dev/null once replaced /dev/null):
    such a path is refused before training; a symbolic link is written through, and stays a link."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_one_line_error(
        run("train", "--epochs", "1", "--save", str(fifo), check=None), "--save", "not a regular file"
    )
    assert fifo.is_fifo()
    target, link = tmp_path / "real.npz", tmp_path / "link.npz"
    target.write_bytes(b"old")
    link.symlink_to(target.name)
    run("train", "--epochs", "1", "--hidden", "8", "--save", str(link), "--quiet")
    assert link.is_symlink()
    assert target.stat().st_size > 1000
    assert_one_line_error(run("predict", str(link), "--data", "digits", "--out", str(fifo), check=None),
                          "--out", "not a regular file")  # fmt: skip
    proc = run("predict", str(link), "--data", "digits", "--out", "-")  # - is standard output
    assert proc.stdout.startswith("row,prediction,p_0,")
    assert len(proc.stdout.splitlines()) == 1 + 1797  # one per row of the data
    assert "to standard output" in proc.stderr
    assert not (tmp_path / "-").exists()


def test_bad_files_are_one_line_errors(tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    assert_one_line_error(run("train", "--data", str(bad_csv), "--no-save", check=None), "bad.csv", "line 3", "oops")
    corrupt = tmp_path / "model.npz"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    assert_one_line_error(run("evaluate", str(corrupt), check=None), "not a gpubp model")
    assert_one_line_error(run("train", "--resume", str(corrupt), check=None), "not a gpubp model")
    model = tmp_path / "m.npz"
    run("train", "--epochs", "1", "--hidden", "8", "--save", str(model))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("1,2,3,0\n4,5,6,1\n")
    assert_one_line_error(run("evaluate", str(model), "--data", str(wrong), check=None),
                          "4 columns and no names to match them by, the model was trained on 64 features")  # fmt: skip


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    from gpubp import cli

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = cli.main(["train", "--epochs", "1", "--hidden", "8", "--no-save", "--quiet",
                     "--plot", str(tmp_path / "x.png")])  # fmt: skip
    assert code == 2
    assert "pip install 'gpubp[plot]'" in capsys.readouterr().err


@pytest.fixture
def tabular(tmp_path, rng):
    X = rng.normal(size=(300, 4))
    y = X[:, 0] * 2 + np.sin(X[:, 1])
    np.savetxt(tmp_path / "reg.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,d,target",
               comments="", fmt="%.6f")  # fmt: skip
    kind = np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")
    rows = [",".join(f"{v:.5f}" for v in row) + f",{k}" for row, k in zip(X, kind)]
    (tmp_path / "cls.csv").write_text("a,b,c,d,kind\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_regression_needs_numeric_targets(tabular):
    proc = run("train", "--data", str(tabular / "cls.csv"), "--task", "regress", "--no-save", check=None)
    assert_one_line_error(proc, "cls.csv", "regression targets must be numbers")


def test_regression_task_from_csv(tabular):
    model = tabular / "reg.npz"
    result = json.loads(run("train", "--data", str(tabular / "reg.csv"), "--task", "regress", "--hidden", "16",
                            "--save", str(model), "--json").stdout)  # fmt: skip
    assert result["test_r2"] > 0.9
    assert "R²" in run("evaluate", str(model)).stdout
    run("predict", str(model), "--data", str(tabular / "reg.csv"), "--out", str(tabular / "p.csv"))
    assert (tabular / "p.csv").read_text().splitlines()[0] == "row,prediction"


@pytest.mark.parametrize("loss", [["--loss", "bce"], ["--loss", "mse", "--output", "sigmoid"], []],
                         ids=["bce", "sigmoid-mse", "cross-entropy"])  # fmt: skip
def test_string_labels_from_csv(tabular, loss):
    model = tabular / "cls.npz"
    proc = run("train", "--data", str(tabular / "cls.csv"), "--epochs", "20", "--hidden", "8",
               "--save", str(model), *loss)  # fmt: skip
    assert "val acc" in proc.stdout
    assert json.loads(run("evaluate", str(model), "--json").stdout)["classes"] == ["neg", "pos"]
    run("predict", str(model), "--data", str(tabular / "cls.csv"), "--out", str(tabular / "q.csv"))
    header, first = (tabular / "q.csv").read_text().splitlines()[:2]
    assert header == "row,prediction,p_neg,p_pos"
    assert first.split(",")[1] in ("neg", "pos")


def test_train_on_an_mnist_style_folder(tmp_path, rng):
    from test_data import write_idx

    images = rng.integers(0, 256, (120, 6, 6)).astype(np.uint8)
    labels = (images.reshape(120, -1).mean(axis=1) > 127).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:100], compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:100], compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[100:], compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[100:], compress=True)
    proc = run("train", "--data", str(tmp_path), "--epochs", "2", "--hidden", "8", "--save", str(tmp_path / "c.npz"))
    assert "90 train / 10 validation / 20 test rows, 36 features, 2 classes" in proc.stdout
    assert json.loads(run("evaluate", str(tmp_path / "c.npz"), "--json").stdout)["rows"] == 20  # the t10k files
    run("train", "--data", str(tmp_path), "--task", "regress", "--epochs", "2", "--hidden", "8",
        "--save", str(tmp_path / "r.npz"))  # fmt: skip
    result = json.loads(run("evaluate", str(tmp_path / "r.npz"), "--json").stdout)
    assert result["rows"] == 20  # test targets, not the training ones, beside the test images


def test_bench_prints_a_quick_table():
    proc = run("bench", "--seconds", "0.05", "--json")
    rows = json.loads(proc.stdout)
    assert next(r["config"] for r in rows) == "64-32-10 B32 relu float32"
    assert all(r["samples_per_s"] > 0 for r in rows)
    # never above 100 % of the GEMM ceiling: a busy machine gives None and says it was noisy
    assert all((r["fraction_of_gemm"] is None and r["noisy"]) or 0 < r["fraction_of_gemm"] <= 1 for r in rows)


def test_npz_with_one_hot_targets(tmp_path):
    ds = load_digits()
    np.savez(tmp_path / "d.npz", X=ds.X[:600], y=np.eye(10)[ds.y[:600]])
    proc = run("train", "--data", str(tmp_path / "d.npz"), "--epochs", "3", "--hidden", "32", "--no-save")
    assert "10 classes" in proc.stdout
    np.savez(tmp_path / "bad.npz", X=ds.X[:10], y=np.ones((10, 3)))
    assert_one_line_error(run("train", "--data", str(tmp_path / "bad.npz"), "--no-save", check=None),
                          "one label per row (or one-hot rows)")  # fmt: skip


# -- issue #12: a model is its preprocessing; every option works or is refused ---------------------


def _labelled_csv(path: Path, rng: np.random.Generator, n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Label column first, named so that no guess finds it; labels 7/8/9; features far from 0 ± 1."""
    X = rng.normal(loc=50.0, scale=10.0, size=(n, 4))
    y = 7 + np.digitize(X[:, 0] - X[:, 1], [-5.0, 5.0])
    rows = [f"{k}," + ",".join(f"{v:.4f}" for v in row) for k, row in zip(y, X)]
    path.write_text("kind,a,b,c,d\n" + "\n".join(rows) + "\n")
    return X, y


def test_a_loaded_model_predicts_from_raw_rows_as_the_command_does(tmp_path, rng):
    X, y = _labelled_csv(tmp_path / "k.csv", rng)
    model = tmp_path / "m.npz"
    # sgd: 15 epochs of 16 units are too few steps for the Adam at η 0.001 a CSV table gets by default
    out = run("train", "--data", str(tmp_path / "k.csv"), "--label-column", "kind", "--epochs", "15",
              "--hidden", "16", "--optimizer", "sgd", "--save", str(model)).stdout  # fmt: skip
    assert "label: 'kind'" in out  # training says which column it took
    run("predict", str(model), "--data", str(tmp_path / "k.csv"), "--out", str(tmp_path / "p.csv"))
    cells = [line.split(",") for line in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    cli_pred = np.array([int(c[1]) for c in cells])
    m = gpubp.load(model, device="cpu")
    lib_pred = m.predict(X)
    np.testing.assert_array_equal(lib_pred, cli_pred)
    assert set(np.unique(lib_pred)) <= {7, 8, 9}
    # the file's rows as a DataFrame, label column (first) included: matched by name, as the command does
    frame = pd.read_csv(tmp_path / "k.csv")
    np.testing.assert_array_equal(m.predict(frame), cli_pred)
    np.testing.assert_array_equal(m.predict(frame[frame.columns[::-1]]), cli_pred)  # in any order
    # rows without names must have exactly the model's width: neither the label nor a row id is guessed away
    for extra in (y, np.arange(len(X))):
        with pytest.raises(ValueError, match="features"):
            m.predict(np.column_stack([extra, X]))
    # string labels: the file's rows as a DataFrame, label column included
    text = np.array([line.split(",") for line in (tmp_path / "k.csv").read_text().splitlines()[1:]])
    named = np.where(text[:, 0] == "7", "low", np.where(text[:, 0] == "8", "mid", "high"))
    (tmp_path / "s.csv").write_text("kind,a,b,c,d\n" + "".join(
        f"{k}," + ",".join(row) + "\n" for k, row in zip(named, text[:, 1:])))  # fmt: skip
    run("train", "--data", str(tmp_path / "s.csv"), "--label-column", "kind", "--epochs", "15", "--hidden", "16",
        "--save", str(tmp_path / "s.npz"))  # fmt: skip
    s_model = gpubp.load(tmp_path / "s.npz", device="cpu")
    np.testing.assert_array_equal(s_model.predict(pd.read_csv(tmp_path / "s.csv")),
                                  s_model.predict(text[:, 1:].astype(float)))  # fmt: skip
    assert m.score(X, y) == pytest.approx(np.mean(cli_pred == y))
    assert m.score(X, y) > 0.8  # scaled as in training: raw rows would score near chance
    assert isinstance(m.net, gpubp.MLP)  # the lecture-level network is still there
    assert m.net.sizes == [4, 16, 3]


def test_string_labels_in_npz_and_npy(tmp_path, rng):
    X = rng.normal(size=(200, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    np.savez(tmp_path / "s.npz", X=X, y=y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    for data in (str(tmp_path / "s.npz"), f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}"):
        run("train", "--data", data, "--epochs", "10", "--hidden", "8", "--save", str(tmp_path / "m.npz"))
        assert json.loads(run("evaluate", str(tmp_path / "m.npz"), "--json").stdout)["classes"] == ["no", "yes"]


def test_the_test_set_is_the_same_whatever_the_path_spelling(tmp_path, rng):
    from test_data import write_idx

    images = rng.integers(0, 256, (130, 5, 5)).astype(np.uint8)
    labels = (images.reshape(130, -1).mean(axis=1) > 127).astype(np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:100])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:100])
    write_idx(folder / "t10k-images-idx3-ubyte", images[100:])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[100:])
    run("train", "--data", "mnist", "--epochs", "1", "--hidden", "4", "--save", "m.npz", cwd=tmp_path)
    for spelling in ("mnist", "./mnist", "mnist/", str(folder)):
        result = json.loads(run("evaluate", "m.npz", "--data", spelling, "--json", cwd=tmp_path).stdout)
        assert result["rows"] == 30, spelling  # the t10k pair, every time
        assert "own test files" in result["which_rows"]
    predict = run("predict", "m.npz", "--data", "./mnist", "--out", "p.csv", cwd=tmp_path).stdout
    assert "100 predictions, one per row of ./mnist in its order" in predict  # every row: predict never splits
    # a CSV: the held-out rows, found by content, not by the path's spelling
    _labelled_csv(tmp_path / "k.csv", rng, n=200)
    run("train", "--data", "k.csv", "--label-column", "kind", "--epochs", "1", "--save", "k.npz", cwd=tmp_path)
    for spelling in ("k.csv", "./k.csv", str(tmp_path / "k.csv")):
        result = json.loads(run("evaluate", "k.npz", "--data", spelling, "--json", cwd=tmp_path).stdout)
        assert result["rows"] == 40, spelling
        assert "held out from training" in result["which_rows"]


def test_a_float_target_is_not_a_class(tabular):
    proc = run("train", "--data", str(tabular / "reg.csv"), "--no-save", check=None)
    assert_one_line_error(proc, "reg.csv", "--task regress")


def test_as_many_classes_as_rows_is_refused(tmp_path, rng):
    X = rng.normal(size=(50, 3))
    np.savetxt(tmp_path / "ids.csv", np.column_stack([X, np.arange(50)]), delimiter=",", fmt="%g")
    assert_one_line_error(run("train", "--data", str(tmp_path / "ids.csv"), "--no-save", check=None), "--task regress")


def test_regression_and_mse_train_with_defaults(tabular):
    # targets far from 0 ± 1: standardised for training, mapped back at prediction
    text = (tabular / "reg.csv").read_text().splitlines()
    rows = [line.rsplit(",", 1) for line in text[1:]]
    (tabular / "big.csv").write_text(text[0] + "\n" + "\n".join(f"{a},{1000 + 300 * float(t):.4f}" for a, t in rows))
    result = json.loads(run("train", "--data", str(tabular / "big.csv"), "--task", "regress", "--json",
                            "--save", str(tabular / "r.npz")).stdout)  # fmt: skip
    assert result["status"] == "done"
    assert result["test_r2"] > 0.8
    model = gpubp.load(tabular / "r.npz", device="cpu")
    data = np.loadtxt(tabular / "big.csv", delimiter=",", skiprows=1)
    pred = model.predict(data[:, :4])
    assert abs(pred.mean() - data[:, 4].mean()) < 0.2 * data[:, 4].std()
    with pytest.raises(ValueError, match=r"trained on 4 features \(the label column 4 still in\?"):
        model.predict(data)  # the file's rows, target in: not guessed away (a target looks like a feature)
    with pytest.raises(ValueError, match=r"X must be 2-D, rows × 4 features, got shape \(4,\) \(one row"):
        model.predict(data[0, :4])
    result = json.loads(run("train", "--loss", "mse", "--json", "--no-save").stdout)
    assert result["test_accuracy"] > 0.9


@pytest.mark.parametrize(("args", "fragments"), [
    (["--task", "regress", "--loss", "cross_entropy"], ["--task regress", "--loss cross_entropy"]),
    (["--task", "regress", "--output", "softmax"], ["--task regress", "identity"]),
    (["--optimizer", "adam", "--momentum", "0.9"], ["--momentum", "adam"]),
    (["--optimizer", "adam", "--nesterov"], ["--nesterov", "adam"]),
    (["--save", "."], ["--save", "is a folder"]),
    (["--plot", "curves.txt"], ["--plot", ".png"]),
])  # fmt: skip
def test_contradictions_and_bad_outputs_are_refused_before_training(tmp_path, tabular, args, fragments):
    if "--task" in args:
        args = [*args, "--data", str(tabular / "reg.csv")]
    proc = run("train", *args, cwd=tmp_path, check=None)
    assert_one_line_error(proc, *fragments)
    assert "epoch" not in proc.stdout  # refused before any work


def test_too_little_data_for_the_split_says_so(tmp_path):
    (tmp_path / "four.csv").write_text("a,b,label\n1,2,0\n2,1,1\n3,4,0\n4,3,1\n")
    assert_one_line_error(run("train", "--data", str(tmp_path / "four.csv"), "--no-save", check=None),
                          "4 rows are too few")  # fmt: skip


def test_resume_refuses_other_options_data_and_finished_runs(tmp_path, rng):
    _labelled_csv(tmp_path / "k.csv", rng, n=120)
    ckpt = tmp_path / "run.npz"
    run("train", "--data", "k.csv", "--label-column", "kind", "--epochs", "2", "--hidden", "8", "--save", str(ckpt),
        cwd=tmp_path)  # fmt: skip
    with np.load(ckpt) as f:
        assert json.loads(str(f["meta"]))["cli"]["data"] == str(tmp_path / "k.csv")  # absolute
    for args, fragment in ((["--hidden", "32"], "--hidden 32 differs"), (["--lr", "0.5"], "--lr 0.5 differs"),
                           (["--data", "digits"], "not the data"), (["--epochs", "2"], "adds none")):  # fmt: skip
        assert_one_line_error(run("train", "--resume", str(ckpt), "--epochs", "4", *args, cwd=tmp_path, check=None),
                              fragment)  # fmt: skip
    # the same name with other contents (rows shuffled) is another data set
    lines = (tmp_path / "k.csv").read_text().splitlines()
    (tmp_path / "k.csv").write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    assert_one_line_error(run("train", "--resume", str(ckpt), "--epochs", "4", check=None), "not the data")
    (tmp_path / "k.csv").write_text("\n".join(lines) + "\n")
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    out = run("train", "--resume", str(ckpt), "--epochs", "3", "--hidden", "8", cwd=elsewhere).stdout
    assert out.count("(earlier run)") == 2  # the reprinted history is marked
    (elsewhere / "moved.csv").write_text((tmp_path / "k.csv").read_text())  # same rows, another name
    run("train", "--resume", str(ckpt), "--epochs", "4", "--data", "moved.csv", cwd=elsewhere)
    with np.load(ckpt) as f:
        assert json.loads(str(f["meta"]))["cli"]["data"] == str(elsewhere / "moved.csv")


def test_gradcheck_on_few_rows_and_on_regression(tabular):
    for rows in ("1", "2", "4"):
        assert "PASS" in run("gradcheck", "--rows", rows, "--hidden", "6").stdout
    proc = run("gradcheck", "--data", str(tabular / "reg.csv"), "--task", "regress", "--hidden", "6")
    assert "8 rows" in proc.stdout
    assert "PASS" in proc.stdout


def test_evaluate_plot_of_a_regression_model_and_predict_out_folder(tabular):
    model = tabular / "r.npz"
    run("train", "--data", str(tabular / "reg.csv"), "--task", "regress", "--epochs", "1", "--save", str(model))
    assert_one_line_error(run("evaluate", str(model), "--plot", str(tabular / "x.png"), check=None),
                          "regression model")  # fmt: skip
    assert_one_line_error(run("predict", str(model), "--data", str(tabular / "reg.csv"), "--out", str(tabular),
                              check=None), "--out", "is a folder")  # fmt: skip


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "gpubp", "train", "--epochs", "200", "--no-save"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)  # fmt: skip
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=120)
    assert "Broken pipe" not in err, err
    assert "BrokenPipeError" not in err
    assert "Traceback" not in err
    assert proc.returncode == 141


def test_files_that_are_not_what_they_claim(tmp_path, rng):
    from test_data import write_idx

    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    proc = run("evaluate", str(tmp_path / "obj.npz"), check=None)
    assert_one_line_error(proc, "not a gpubp model")
    assert "pickle" not in proc.stderr
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    assert_one_line_error(run("train", "--data", str(tmp_path / "bad-idx3-ubyte"), "--no-save", check=None),
                          "not an IDX file (magic 0x12340801)")  # fmt: skip
    write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 2, 20).astype(np.uint8))
    assert_one_line_error(run("train", "--data", str(tmp_path / "train-labels-idx1-ubyte"), "--no-save", check=None),
                          "labels file", "images")  # fmt: skip
    assert_one_line_error(run("train", "--data", str(tmp_path), "--no-save", check=None),
                          "train-labels-idx1-ubyte", "train-images-idx3-ubyte")  # fmt: skip


def test_quiet_is_quiet_and_info_says_why_once():
    env = {k: v for k, v in ENV.items() if k != "GPUBP_DEVICE"}  # auto: the CPU-fallback line is due
    proc = subprocess.run([sys.executable, "-m", "gpubp", "train", "--epochs", "1", "--hidden", "8", "--no-save",
                           "--quiet"], capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert proc.stdout.startswith("test accuracy:")
    assert proc.stdout.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "gpubp", "info"], capture_output=True, text=True, env=env)
    reason = gpubp.backend.gpu_unavailable_reason()
    if reason is not None:  # pragma: no branch - no GPU here or in CI
        assert (proc.stdout + proc.stderr).count(reason) == 1


def test_help_does_not_probe_the_gpu(monkeypatch, capsys):
    from gpubp import backend, cli

    def probe() -> None:
        raise AssertionError("--help probed the GPU")

    monkeypatch.setattr(backend, "gpu_unavailable_reason", probe)
    monkeypatch.setattr(backend, "get_device", probe)
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_json_also_when_interrupted_or_diverged(tmp_path):
    proc = run("train", "--lr", "1000", "--momentum", "0", "--json", "--no-save", check=1)
    result = json.loads(proc.stdout)
    assert result["status"] == "diverged"
    assert "diverged" in result["error"]
    proc = subprocess.Popen([sys.executable, "-m", "gpubp", "train", "--epochs", "100000", "--json", "--no-save"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    try:
        for line in proc.stderr:  # the table goes to stderr with --json
            if line.strip().startswith("2 "):
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    result = json.loads(out)
    assert result["status"] == "interrupted"
    assert result["epochs"] >= 2


def test_a_mapped_npy_pair_trains_as_the_same_rows_in_memory(tmp_path):
    ds = load_digits()
    np.save(tmp_path / "X.npy", ds.X)
    np.save(tmp_path / "y.npy", ds.y)
    np.savez(tmp_path / "d.npz", X=ds.X, y=ds.y)
    out = run("train", "--data", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", "--epochs", "3", "--hidden", "16",
              "--save", str(tmp_path / "mapped.npz")).stdout  # fmt: skip
    assert "memory-mapped" in out
    out = run("train", "--data", str(tmp_path / "d.npz"), "--epochs", "3", "--hidden", "16",
              "--save", str(tmp_path / "memory.npz")).stdout  # fmt: skip
    assert "cannot memory-map .npz members" in out
    for a, b in zip(weights(tmp_path / "mapped.npz"), weights(tmp_path / "memory.npz")):
        np.testing.assert_array_equal(a, b)
    mapped = json.loads(run("evaluate", str(tmp_path / "mapped.npz"), "--json").stdout)
    memory = json.loads(run("evaluate", str(tmp_path / "memory.npz"), "--json").stdout)
    assert mapped["rows"] == memory["rows"] == 359
    assert mapped["accuracy"] == memory["accuracy"]


# -- found trying main as a new user: the cause named, and a result line always --------------------


def test_fractions_that_leave_no_training_rows_are_blamed_not_the_data():
    assert_one_line_error(run("train", "--val-fraction", "0.9", "--test-fraction", "0.2", "--no-save", check=None),
                          "validation fraction 0.9 + test fraction 0.2 = 1.1 leaves no training rows")  # fmt: skip


def test_a_text_file_given_as_a_model_is_not_an_npz(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    for name in ("x.csv", "empty.npz"):
        proc = run("evaluate", str(tmp_path / name), check=None)
        assert proc.returncode == 2
        assert f"{name} is not a gpubp model (not a .npz file)" in proc.stderr
        assert "pickle" not in proc.stderr
        assert "Python objects" not in proc.stderr


def test_text_regression_targets_say_text_not_a_dtype_code(tmp_path):
    rows = "".join(f"{i},{i % 3},{'cat' if i % 2 else 'dog'}\n" for i in range(40))
    (tmp_path / "s.csv").write_text("a,b,y\n" + rows)
    assert_one_line_error(run("train", "--data", str(tmp_path / "s.csv"), "--task", "regress", "--no-save", check=None),
                          "regression targets must be numbers, got text values (e.g. 'dog')")  # fmt: skip


@pytest.mark.parametrize("quiet", [False, True])
def test_training_with_no_test_rows_says_nothing_was_scored(quiet):
    proc = run("train", "--test-fraction", "0", "--epochs", "1", "--hidden", "8", "--no-save", *(["--quiet"] * quiet))
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "no test rows held out (--test-fraction 0): nothing scored"
    if quiet:
        assert proc.stdout.count("\n") == 1  # the result line alone
    else:
        assert "train loss" in proc.stdout  # after the table


def test_ctrl_c_while_the_command_starts_prints_one_line(tmp_path):
    """Ctrl-C while NumPy and the rest load (the first ~0.2 s) ends in one line and 130, no traceback.
    The interpreter's own start-up (before any gpubp code runs) is timed first and left out."""

    def start_up() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gpubp.__main__"], env=ENV, check=True)
        return time.perf_counter() - start

    # the slowest of three, with a margin: on a loaded machine one start-up can take twice another
    bare = 1.5 * max(start_up() for _ in range(3))
    for delay in (0.0, 0.03, 0.06, 0.1, 0.15, 0.2):
        proc = subprocess.Popen([str(BIN), "train", "--no-save", "--epochs", "1"], cwd=tmp_path, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(bare + delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, f"Ctrl-C {bare + delay:.2f} s after the start:\n{err}"
        if proc.returncode != 0:  # 0: it had finished before the signal came
            assert proc.returncode == 130, err
            assert err.strip().splitlines()[-1].endswith("interrupted"), err


def test_evaluate_and_predict_quiet(tmp_path):
    env = {"GPUBP_DEVICE": ""}  # auto: a CPU-fallback line would be due
    model = tmp_path / "m.npz"
    run("train", "--epochs", "1", "--hidden", "8", "--save", str(model), "--quiet")
    proc = run("evaluate", str(model), "--quiet", env=env)
    assert proc.stderr == ""
    assert proc.stdout.startswith("accuracy: ")
    assert proc.stdout.count("\n") == 1
    proc = run("predict", str(model), "--data", "digits", "--out", str(tmp_path / "p.csv"), "--quiet", env=env)
    assert (proc.stdout, proc.stderr) == ("", "")
    assert (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "gradcheck", "bench"])
def test_a_wrong_option_names_the_subcommand(command):
    given = {"evaluate": ["m.npz"], "predict": ["m.npz", "--out", "p.csv"]}.get(command, [])
    proc = run(command, *given, "--no-such-option", check=None)
    assert_one_line_error(proc, f"gpubp {command}: error: unrecognized arguments: --no-such-option",
                          f"see gpubp {command} --help")  # fmt: skip
