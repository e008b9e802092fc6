"""Every member of a model or checkpoint file accounted for (issue 32): each is checked against the
table in gpubp.members, by its declared shape and dtype, before any array is read."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from bombs import lying_member, npz_members, write_zip

import gpubp
from gpubp import members
from gpubp.checkpoint import read_file


def npy(value) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def array(raw: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(raw))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The members of a checkpoint `gpubp train` wrote: preprocessing, row hashes, momentum, best and live weights."""
    folder = tmp_path_factory.mktemp("members")
    subprocess.run([sys.executable, "-m", "gpubp", "train", "--epochs", "1", "--hidden", "8", "--quiet",
                    "--save", "m.npz"], cwd=folder, check=True, env={**os.environ, "GPUBP_DEVICE": "cpu"})  # fmt: skip
    return npz_members(folder / "m.npz")


def refusal(tmp_path, contents: dict) -> str:
    write_zip(tmp_path / "f.npz", contents)
    with pytest.raises(ValueError, match="damaged gpubp model") as info:
        read_file(tmp_path / "f.npz")
    return str(info.value).split("damaged gpubp model: ", 1)[1]


def with_meta(contents: dict, change) -> dict:
    meta = json.loads(str(array(contents["meta.npy"])))
    change(meta)
    return {**contents, "meta.npy": npy(json.dumps(meta))}


def test_the_file_as_written_reads_back(tmp_path, saved):
    write_zip(tmp_path / "f.npz", saved)
    _, params, _, extra = read_file(tmp_path / "f.npz")
    assert set(extra) >= {"scaler_shift", "classes", "trained_row_hashes", "order", "opt_velocity_3", "best_0"}
    assert params["W_1"].shape == (8, 64)


def test_an_unknown_member_is_refused_by_name(tmp_path, saved):
    assert refusal(tmp_path, {**saved, "x_notes.npy": npy([1, 2])}).startswith("member x_notes has no place")


def test_a_member_of_the_wrong_dtype_is_refused_by_name(tmp_path, saved):
    weights = array(saved["W_2.npy"]).astype(np.int32)
    assert "member W_2 declares shape (10, 8) int32; it must be of dtype kind f" in refusal(
        tmp_path, {**saved, "W_2.npy": npy(weights)}
    )


def test_row_hashes_must_add_up_to_the_rows_of_the_meta(tmp_path, saved):
    held = array(saved["x_heldout_row_hashes.npy"])[:-1]
    assert refusal(tmp_path, {**saved, "x_heldout_row_hashes.npy": npy(held)}) == (
        "members x_heldout_row_hashes and x_trained_row_hashes declare 1,796 rows; the meta says the data had 1,797"
    )


def test_the_optimiser_slots_and_copies_are_counted_against_the_meta(tmp_path, saved):
    three = with_meta(saved, lambda m: m["trainer"]["optimizer"]["_arrays"].update(velocity=3))
    assert refusal(tmp_path, three) == "the meta gives opt_velocity 3 arrays; a network of 2 layers has 4 (W_1, b_1, …)"
    missing = {k: v for k, v in saved.items() if k != "x_opt_velocity_3.npy"}
    assert refusal(tmp_path, missing) == "member x_opt_velocity_3 is missing"
    other_slot = with_meta(saved, lambda m: m["trainer"]["optimizer"].update(_arrays={"m": 4}))
    assert refusal(tmp_path, other_slot).startswith("member x_opt_m_0 is missing")


def test_the_row_order_has_the_checkpoints_training_rows(tmp_path, saved):
    order = array(saved["x_order.npy"])
    assert f"member x_order declares shape ({len(order) + 1},) int64; this file's config and meta make it shape " \
           f"({len(order)},)" in refusal(tmp_path, {**saved, "x_order.npy": npy(np.append(order, 0))})  # fmt: skip


def test_a_meta_that_declares_more_text_than_a_file_holds_is_not_read(tmp_path, saved):
    text = refusal(tmp_path, {**saved, "meta.npy": lying_member((), "<U50000000")})
    assert text == "member meta declares 50,000,000 characters; at most 16,777,216 are read"


def test_a_new_member_is_one_line_of_the_table(tmp_path, saved, monkeypatch):
    contents = {**saved, "x_column_kinds.npy": npy(np.zeros(64, np.int8))}
    assert refusal(tmp_path, contents).startswith("member x_column_kinds has no place")
    rule = (r"x_column_kinds", lambda f, m: members.Expect((f.sizes[0],), "i"))
    monkeypatch.setattr(members, "MEMBERS", [*members.MEMBERS, rule])
    assert read_file(tmp_path / "f.npz")[3]["column_kinds"].shape == (64,)


def test_a_bare_network_file_has_no_place_for_training_members(tmp_path):
    gpubp.MLP([3, 4, 2], device="cpu").save(tmp_path / "net.npz")
    contents = npz_members(tmp_path / "net.npz")
    assert refusal(tmp_path, {**contents, "x_order.npy": npy(np.arange(5))}).startswith("member x_order has no place")


def test_a_file_whose_config_and_arrays_agree_on_more_than_memory_holds_is_refused_unread(tmp_path):
    gpubp.MLP([3, 4, 2], device="cpu").save(tmp_path / "net.npz")
    contents = npz_members(tmp_path / "net.npz")
    config = json.loads(str(array(contents["config.npy"])))
    config["sizes"] = [3, 200_000, 200_000]
    contents["config.npy"] = npy(json.dumps(config))
    for name, shape in (("W_1", (200_000, 3)), ("b_1", (200_000,)), ("W_2", (200_000, 200_000)), ("b_2", (200_000,))):
        contents[f"{name}.npy"] = lying_member(shape, "<f4")
    write_zip(tmp_path / "huge.npz", contents)
    unread = r"huge\.npz: its arrays declare 149\.0\d GiB but .* available \(nothing was read\)"
    with pytest.raises(ValueError, match=unread):
        read_file(tmp_path / "huge.npz")
