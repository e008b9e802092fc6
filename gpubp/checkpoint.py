"""Reading and writing gpubp files (``.npz``): models and training checkpoints, atomically.

A file holds ``format`` ("gpubp"), ``format_version``, the network ``config`` (JSON), the weights
``W_1..W_L`` and biases ``b_1..b_L`` as arrays, and optionally a ``meta`` JSON (training state,
history, preprocessing) with its arrays under ``x_``-prefixed names. Files are written through
:func:`gpubp._io.atomic_write`, so a crash never leaves a half-written file where a good one was.
Nothing is pickled. This module knows arrays and configs, not the network class: ``gpubp.load``
(beside ``MLP``) builds the network from what :func:`read_file` returns.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from ._io import atomic_write, to_json

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
    """(config, parameters, meta, extra arrays) from a gpubp file; ``ValueError`` if it is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a gpubp model file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # not a zip: np.load would take it for a pickle
            raise ValueError(f"{path} is not a gpubp model (not a .npz file)")
    try:
        # open it ourselves: np.load leaks its handle when the zip turns out to be damaged
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc):  # never suggest allow_pickle: loading pickles runs code
            raise ValueError(f"{path} is not a gpubp model (it holds Python objects; gpubp files never do)") from None
        raise ValueError(f"{path} is not a gpubp model (not a readable .npz file)") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is not a gpubp model (not a readable .npz file)") from None
    if not isinstance(contents, dict) or str(contents.get("format", "")) != FORMAT:
        raise ValueError(f"{path} is not a gpubp model (no gpubp format marker)")
    version = int(contents["format_version"])
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}; this gpubp reads up to {FORMAT_VERSION}")
    try:
        config = json.loads(str(contents["config"]))
        meta = json.loads(str(contents["meta"])) if "meta" in contents else {}
        L = len(config["sizes"]) - 1
        params = {}
        for l in range(1, L + 1):
            params[f"W_{l}"], params[f"b_{l}"] = contents[f"W_{l}"], contents[f"b_{l}"]
            if params[f"W_{l}"].shape != (config["sizes"][l], config["sizes"][l - 1]):
                raise ValueError(f"W_{l} has shape {params[f'W_{l}'].shape}, config says otherwise")
            if params[f"b_{l}"].shape != (config["sizes"][l],):
                raise ValueError(f"b_{l} has shape {params[f'b_{l}'].shape}, config says otherwise")
    except (KeyError, TypeError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is a damaged gpubp model: {exc}") from None
    extra = {k[2:]: v for k, v in contents.items() if k.startswith("x_")}
    return config, params, meta, extra


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
