"""One polarity for keeping the best validation epoch: ``keep_best`` in the library, ``--keep-best`` /
``--no-keep-best`` in the command; the old ``--keep-last`` is refused naming the new spelling, and a
checkpoint written with it resumes."""

from __future__ import annotations

import json
import zipfile

import numpy as np
from cli_calls import cli, refused


def test_the_old_spelling_is_refused_naming_the_new_one(capsys):
    line = refused(capsys, "train", "--keep-last", "--no-save")
    assert line.startswith("gpubp train: error: argument --keep-last: is now --no-keep-best (one polarity, keep_best")


def test_no_keep_best_keeps_the_last_epoch_and_keep_best_the_best(capsys):
    common = ("train", "--epochs", "4", "--hidden", "8", "--no-save", "--json", "--lr", "0.5")
    last = json.loads(cli(capsys, *common, "--no-keep-best")[1])
    assert (last["kept_epoch"], last["kept"]) == (4, "last epoch")
    best = json.loads(cli(capsys, *common, "--keep-best")[1])
    assert best["kept"] == "best validation loss"
    assert json.loads(cli(capsys, *common)[1])["kept"] == "best validation loss"  # the default


def test_a_checkpoint_that_says_keep_last_resumes(tmp_path, capsys):
    """Checkpoints of the command before the rename store keep_last: read as keep_best = not keep_last."""
    ckpt = tmp_path / "run.npz"
    code, _, err = cli(capsys, "train", "--epochs", "1", "--hidden", "8", "--no-keep-best", "--save", ckpt, "--quiet")
    assert code == 0, err
    with np.load(ckpt) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    meta["cli"]["keep_last"] = not meta["cli"].pop("keep_best")
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(ckpt, **arrays)
    assert zipfile.is_zipfile(ckpt)
    code, out, err = cli(capsys, "train", "--resume", ckpt, "--epochs", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["kept"] == "last epoch"
    line = refused(capsys, "train", "--resume", ckpt, "--epochs", "3", "--keep-best")
    assert "--keep-best True differs from the checkpoint's False" in line
