"""Reading and writing gpubp files (``.npz``): models and training checkpoints, atomically.

A file holds ``format`` ("gpubp"), ``format_version``, the network ``config`` (JSON), the weights
``W_1..W_L`` and biases ``b_1..b_L`` as arrays, and optionally a ``meta`` JSON (training state,
history, preprocessing) with its arrays under ``x_``-prefixed names. Files are written through
:func:`gpubp._io.atomic_write`, so a crash never leaves a half-written file where a good one was.
Nothing is pickled, and every member is checked against the config and meta before any array is
read (gpubp.members). This module knows arrays and configs, not the network class: ``gpubp.load``
(beside ``MLP``) builds the network from what :func:`read_file` returns.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ._io import atomic_write, available_memory, to_json
from .members import CONFIG_CHARS, HEAD, META_CHARS, Facts, check
from .npzfiles import NpzReader, scalar_int, scalar_text

FORMAT = "gpubp"
FORMAT_VERSION = 1


def write_file(path: str | os.PathLike[str], config: dict[str, Any], weights: list[np.ndarray],
               biases: list[np.ndarray], meta: dict[str, Any] | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
    """Write a gpubp file: ``config`` JSON, host arrays ``W_l``/``b_l``, optional ``meta`` JSON
    and named ``arrays``."""
    payload: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "config": np.array(to_json(config)),
    }
    for l, (W, b) in enumerate(zip(weights, biases), start=1):
        payload[f"W_{l}"] = np.asarray(W)
        payload[f"b_{l}"] = np.asarray(b)
    if meta is not None:
        payload["meta"] = np.array(to_json(meta))
    for name, value in (arrays or {}).items():
        payload[f"x_{name}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez_compressed(f, **payload))  # type: ignore[arg-type]  # the stubs type **kwds as allow_pickle


def save_model(net: Any, path: str | os.PathLike[str], meta: dict[str, Any] | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
    """Write network ``net`` (anything with ``config()``, ``weights``, ``biases``, ``device`` and
    ``history``) with optional ``meta`` and ``arrays``."""
    dev = net.device
    if net.history is not None:
        meta = {"history": net.history, **(meta or {})}
    write_file(path, net.config(), [dev.to_host(W) for W in net.weights], [dev.to_host(b) for b in net.biases],
               meta, arrays)  # fmt: skip


Contents = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]


def read_file(path: str | os.PathLike[str]) -> Contents:
    """(config, parameters, meta, extra arrays) from a gpubp file; ``ValueError`` if it is not one.

    What the file declares is checked before its arrays are read: every member's shape and dtype
    (from the ``.npy`` headers in the zip, nothing decompressed) against the config and meta
    (gpubp.members), and their total size against the memory available."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a gpubp model file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # not a zip: np.load would take it for a pickle
            raise ValueError(f"{path} is not a gpubp model (not a .npz file)")
    try:
        npz = NpzReader(path)
    except ValueError as exc:
        raise ValueError(f"{path} is not a gpubp model ({exc})") from None
    with npz:
        _check_marker(npz, path)
        try:
            version = scalar_int(npz, "format_version")
        except ValueError as exc:
            raise ValueError(f"{path} is a damaged gpubp model: {exc}") from None
        if version > FORMAT_VERSION:
            raise ValueError(f"{path} has format version {version}; this gpubp reads up to {FORMAT_VERSION}")
        try:
            config = json.loads(scalar_text(npz, "config", CONFIG_CHARS))
            meta = json.loads(scalar_text(npz, "meta", META_CHARS)) if "meta" in npz.names else {}
            facts = Facts(config, meta)
            declared = {name: npz.declared(name) for name in npz.names}
            names = [n for n in check(facts, declared) if n not in HEAD]
        except (KeyError, TypeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
            raise ValueError(f"{path} is a damaged gpubp model: {exc}") from None
        need, have = sum(declared[n].nbytes for n in names), available_memory()
        if have is not None and need > have:
            raise ValueError(f"{path}: its arrays declare {need / 2**30:.2f} GiB but {have / 2**30:.2f} GiB of memory "
                             "is available (nothing was read)")  # fmt: skip
        try:
            contents = {name: npz.read(name) for name in names}
        except ValueError as exc:
            raise ValueError(f"{path} is a damaged gpubp model: {exc}") from None
        except MemoryError:
            raise ValueError(f"{path}: its arrays do not fit in the memory available") from None
    params = {name: contents[name] for name in facts.param_names}
    extra = {k[2:]: v for k, v in contents.items() if k.startswith("x_")}
    return config, params, meta, extra


def _check_marker(npz: NpzReader, path: str) -> None:
    """Refuse a zip that is not a gpubp file: no ``format`` marker (naming Python objects if it holds
    any; never suggesting allow_pickle: loading pickles runs code)."""
    try:
        marker = scalar_text(npz, "format", 16) if "format" in npz.names else ""
    except ValueError:
        marker = ""
    if marker != FORMAT:
        pickled = any("Python objects" in _declared_error(npz, n) for n in npz.names)
        why = "it holds Python objects; gpubp files never do" if pickled else "no gpubp format marker"
        raise ValueError(f"{path} is not a gpubp model ({why})")


def _declared_error(npz: NpzReader, name: str) -> str:
    """Why member ``name``'s header is refused ('' when it is not)."""
    try:
        npz.declared(name)
    except ValueError as exc:
        return str(exc)
    return ""


# -- training state ----------------------------------------------------------------------------


def _split_arrays(value: Any, name: str, arrays: dict[str, np.ndarray]) -> int | None:
    """Put an array (-> ``name``, returns -1) or a list of arrays (-> ``name_i``, returns the count)
    into ``arrays``; None for anything else."""
    if isinstance(value, np.ndarray):
        arrays[name] = value
        return -1
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        for i, buf in enumerate(value):
            arrays[f"{name}_{i}"] = buf
        return len(value)
    return None


def _join_arrays(n: int, name: str, arrays: dict[str, np.ndarray]) -> Any:
    return arrays[name] if n == -1 else [arrays[f"{name}_{i}"] for i in range(n)]


def pack_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A Trainer's ``state_dict()`` as (JSON part, arrays): the row order, the optimiser's buffers
    and the best/live weight copies become arrays (``order``, ``opt_SLOT[_i]``, ``best[_i]``, ``live[_i]``)."""
    state = dict(state)
    optimizer = dict(state["optimizer"])
    arrays: dict[str, np.ndarray] = {}
    order = state.pop("order")
    if order is not None:
        arrays["order"] = np.asarray(order)
    packed = {}
    for slot, value in list(optimizer.items()):
        n = _split_arrays(value, f"opt_{slot}", arrays)
        if n is not None:
            packed[slot] = n
            del optimizer[slot]
    optimizer["_arrays"] = packed
    state["optimizer"] = optimizer
    for name in ("best", "live"):
        n = _split_arrays(state.pop(name), name, arrays)
        if n is not None:
            state[f"has_{name}"] = n
    return state, arrays


def unpack_state(state: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The inverse of :func:`pack_state`: a dict for ``Trainer.load_state_dict``."""
    state = dict(state)
    optimizer = dict(state["optimizer"])
    state["order"] = arrays.get("order")
    for slot, n in optimizer.pop("_arrays", {}).items():
        optimizer[slot] = _join_arrays(int(n), f"opt_{slot}", arrays)
    state["optimizer"] = optimizer
    for name in ("best", "live"):
        n = state.pop(f"has_{name}", None)
        state[name] = None if n is None else _join_arrays(int(n), name, arrays)
    return state
