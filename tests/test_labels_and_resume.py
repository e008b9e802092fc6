"""Where the table rules met the number rules and checkpoints: an empty label cell in a file of decimal
commas, a checkpoint saved before column rules were stored, and a resume refused with its reason."""

from __future__ import annotations

import numpy as np
import pytest
from cli_calls import cli, refused

from gpubp.checkpoint import read_file, write_file


@pytest.fixture(autouse=True)
def _cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUBP_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)


def test_an_empty_label_in_a_file_of_decimal_commas_is_left_out_not_a_crash(capsys, tmp_path):
    # the empty cell stays NaN through astype(str) under pandas' string dtype: it had reached
    # number_text and ended in "argument of type 'float' is not iterable"
    rows = ["a;b;label"] + [f"{i},5;{i % 3};{'cat' if i % 2 else 'dog'}" for i in range(40)]
    rows[5] = "4,5;1;"
    (tmp_path / "lab.csv").write_text("\n".join(rows) + "\n")
    code, out, err = cli(capsys, "train", "--data", "lab.csv", "--epochs", "1", "--no-save")
    assert code == 0, err
    assert "1 row with an empty label cell ('label') left out (lines 6)" in out


def test_a_checkpoint_without_stored_column_rules_resumes_on_its_own_file(capsys, tmp_path):
    # before column rules were stored, every column was a number: resuming must read them so, not fit
    # new rules (a table fitted anew leaves out 'n', unique and increasing, and the rows then "differ")
    rng = np.random.default_rng(0)
    x = rng.normal(size=100)
    lines = ["n,x,label"] + [f"{i},{v:.4f},{int(v > 0)}" for i, v in enumerate(x)]
    (tmp_path / "res.csv").write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "train", "--data", "res.csv", "--features", "n,x", "--epochs", "2",
                       "--save", "ck.npz")  # fmt: skip
    assert code == 0, err
    config, params, meta, arrays = read_file("ck.npz")
    del meta["cli"]["table"]  # as the command wrote it before
    for option in ("drop", "features", "missing"):
        meta["cli"].pop(option, None)
    L = len(config["sizes"]) - 1
    write_file("ck.npz", config, [params[f"W_{l}"] for l in range(1, L + 1)],
               [params[f"b_{l}"] for l in range(1, L + 1)], meta, arrays)  # fmt: skip
    code, out, err = cli(capsys, "train", "--data", "res.csv", "--resume", "ck.npz", "--epochs", "4", "--no-save")
    assert code == 0, err
    assert "after 4 epochs" in out


def test_a_resume_on_a_file_missing_a_column_says_which(capsys, tmp_path):
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=(2, 80))
    rows = ["x,z,label"] + [f"{a:.3f},{b:.3f},{int(a > b)}" for a, b in zip(x, z)]
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    code, _, err = cli(capsys, "train", "--data", "two.csv", "--epochs", "2", "--save", "ck.npz")
    assert code == 0, err
    (tmp_path / "two.csv").write_text("\n".join(r.split(",", 1)[1] for r in rows) + "\n")  # x gone
    line = refused(capsys, "train", "--data", "two.csv", "--resume", "ck.npz", "--epochs", "3")
    assert "'x'" in line, line  # the reason, not only "rows differ"


def test_r_na_among_numeric_labels_is_a_missing_label(capsys, tmp_path):
    # R writes a missing value as a bare NA: among numbers it is a missing label, left out and counted,
    # not a refusal ("regression targets must be numbers") nor, for classes, a class named 'NA'
    rng = np.random.default_rng(3)
    rows = ['"","x","weight"'] + [f'"{i}",{rng.random():.3f},' + ("NA" if i % 9 == 0 else f"{rng.random() * 10:.2f}")
                                  for i in range(1, 101)]  # fmt: skip
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    code, out, err = cli(capsys, "train", "--data", "r.csv", "--label-column", "weight", "--task", "regress",
                         "--epochs", "1", "--no-save")  # fmt: skip
    assert code == 0, err
    assert "11 rows with an empty or missing (NA) label cell ('weight') left out (lines 10, 19" in out
    words = ['"","x","y"'] + [f'"{i}",{rng.random():.3f},' + ("NA" if i % 9 == 0 else rng.choice(["a", "b"]))
                              for i in range(1, 101)]  # fmt: skip
    (tmp_path / "w.csv").write_text("\n".join(words) + "\n")
    code, out, err = cli(capsys, "train", "--data", "w.csv", "--epochs", "1", "--no-save")
    assert code == 0, err
    assert "3 classes" in out  # among words, NA stays a class, as docs/data-formats.md says
