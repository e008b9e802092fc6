"""Which device a run uses: ``get_device`` resolves ``auto``, ``cpu``, ``gpu`` or ``gpu:N`` (and
``GPUBP_DEVICE``), falling back to the CPU with the reason a GPU is not usable; ``devices`` lists what is
usable. Everything else in gpubp is written once over a :class:`~gpubp.device.Device`, which carries
``xp`` (``cupy`` on a GPU, ``numpy`` on the CPU); the names most modules need are importable from here.
This module, :mod:`gpubp.device`, :mod:`gpubp.probe`, :mod:`gpubp.kernelkit` and, for NCCL,
:mod:`gpubp.parallel` are the only places that touch CuPy.
"""

from __future__ import annotations

import logging
import os
import re
from functools import cache
from typing import Any

import numpy as np

from . import probe
from .blas import blas_info as blas_info  # the command's `info` reads it from here
from .device import Device as Device
from .device import gpu_array as gpu_array
from .device import is_cupy_array as is_cupy_array
from .device import is_foreign_cuda_array as is_foreign_cuda_array
from .device import to_numpy as to_numpy
from .probe import cpu_kernels as cpu_kernels
from .probe import cpu_kernels_info as cpu_kernels_info
from .probe import gpu_unavailable_reason as gpu_unavailable_reason

log = logging.getLogger("gpubp")


CPU = Device("cpu", np)
_DEVICE_RE = re.compile(r"^(auto|cpu|gpu|cuda)(?::(\d+))?$")


def _gpu(index: int) -> Device:
    cupy, reason = probe._cupy_status()
    if reason is not None:
        raise RuntimeError(f"no usable GPU: {reason}")
    count = cupy.cuda.runtime.getDeviceCount()
    if index >= count:
        raise RuntimeError(f"no usable GPU: gpu:{index} asked for, but only {count} CUDA device(s) exist")
    return _gpu_device(index)


@cache
def _gpu_device(index: int) -> Device:
    cupy, _ = probe._cupy_status()
    return Device(f"gpu:{index}", cupy, index)


_notified = False


def get_device(spec: str | Device | None = "auto") -> Device:
    """Resolve a device name: ``auto``, ``cpu``, ``gpu`` or ``gpu:N`` (``cuda`` is an alias).

    ``auto`` (the default everywhere) and ``None`` mean the ``GPUBP_DEVICE`` environment variable
    when it is set, else the GPU when CuPy imports and a CUDA device answers, else the CPU with one
    logged line saying why (none when the CPU was chosen). Asking for a GPU that is not usable raises
    ``RuntimeError`` naming the cause.
    """
    global _notified
    if isinstance(spec, Device):
        return spec
    source = ""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        # the environment decides what "auto" means, so that a script's default can be set from outside
        spec = os.environ.get("GPUBP_DEVICE", "").strip() or "auto"
        source = " (from GPUBP_DEVICE)" if spec != "auto" else ""
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string such as 'cpu', 'gpu' or 'gpu:0', got {type(spec).__name__}")
    match = _DEVICE_RE.match(spec.strip().lower())
    if match is None:
        raise ValueError(f"unknown device {spec!r}{source}: expected 'auto', 'cpu', 'gpu' or 'gpu:N'")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index is not None:
            raise ValueError(f"unknown device {spec!r}: the CPU takes no index")
        return CPU
    if kind == "auto":
        reason = gpu_unavailable_reason()
        if reason is None:
            return _gpu_device(0)
        if not _notified:
            _notified = True
            log.warning("gpubp: using the CPU: %s", reason)
        return CPU
    return _gpu(int(index or 0))


def devices() -> dict[str, Any]:
    """What is usable: the CPU always; the GPUs with name and memory, or why none is usable."""
    info: dict[str, Any] = {"cpu": {"available": True, "backend": f"numpy {np.__version__}", **cpu_kernels_info()}}
    cupy, reason = probe._cupy_status()
    if reason is not None:
        info["gpu"] = {"available": False, "reason": reason}
        return info
    gpus = []
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"]
        gpus.append(
            {
                "device": f"gpu:{i}",
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_bytes": int(props["totalGlobalMem"]),
                "compute_capability": f"{props['major']}.{props['minor']}",
            }
        )
    info["gpu"] = {
        "available": True,
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "devices": gpus,
    }
    return info
