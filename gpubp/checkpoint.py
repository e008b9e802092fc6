"""Saving and loading models and training checkpoints as ``.npz`` files, atomically.

A file holds ``format`` ("gpubp"), ``format_version``, the network ``config`` (JSON), the weights
``W_1..W_L`` and biases ``b_1..b_L`` as arrays, and optionally a ``meta`` JSON (training state,
history, feature scaling) with its arrays under prefixed names. Files are written to a temporary
file in the same folder, flushed, fsynced and renamed over the target, so a crash never leaves a
half-written file where a good one was. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

FORMAT = "gpubp"
FORMAT_VERSION = 1


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the mode an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, float) and not np.isfinite(o):
            return str(o)
        return super().default(o)


def save_model(net: Any, path: str | os.PathLike, meta: dict[str, Any] | None = None,
               arrays: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
    """Write ``net`` (and optional ``meta`` JSON plus named ``arrays``) to ``path`` atomically."""
    dev = net.device
    payload: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "config": np.array(json.dumps(net.config())),
    }
    for l, (W, b) in enumerate(zip(net.weights, net.biases), start=1):
        payload[f"W_{l}"] = dev.to_host(W)
        payload[f"b_{l}"] = dev.to_host(b)
    if net.history is not None:
        meta = {"history": net.history, **(meta or {})}
    if meta is not None:
        payload["meta"] = np.array(json.dumps(meta, cls=_Encoder))
    for name, value in (arrays or {}).items():
        payload[f"x_{name}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez_compressed(f, **payload))


Contents = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]


def read_file(path: str | os.PathLike) -> Contents:
    """(config, parameters, meta, extra arrays) from a gpubp file; ``ValueError`` if it is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        # open it ourselves: np.load leaks its handle when the zip turns out to be damaged
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a gpubp model (unreadable .npz: {exc})") from None
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


def load(path: str | os.PathLike, device: str | None = "auto") -> Any:
    """Load a model saved by ``net.save`` (or a training checkpoint) onto ``device``."""
    from .network import MLP

    config, params, meta, _ = read_file(path)
    net = MLP(config["sizes"], config["activation"], config["output"], config["loss"],
              config["init"], device=device, dtype=config["dtype"], seed=config.get("seed"))  # fmt: skip
    L = net.L
    net._set_parameters([params[f"W_{l}"] for l in range(1, L + 1)],
                        [params[f"b_{l}"] for l in range(1, L + 1)])  # fmt: skip
    net.history = meta.get("history")
    return net
