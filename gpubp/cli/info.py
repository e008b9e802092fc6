"""``gpubp info`` and ``gpubp bench``: what this machine offers, and how fast it trains."""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import numpy as np

from .. import __version__
from .._io import to_json
from ..backend import blas_info, devices, get_device
from ..bench import QUICK_CONFIGS, format_table, measure, noise_note
from ..parallel import status as parallel_status
from ._common import positive


def add_parsers(sub: Any) -> None:
    i = sub.add_parser("info", help="versions, array backend, BLAS, CUDA and GPUs")
    i.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="a quick training-throughput table for the device at hand (< 1 minute)")
    b.add_argument("--device", default=None, help="auto, cpu, gpu or gpu:N (default: $GPUBP_DEVICE or auto)")
    b.add_argument("--seconds", type=positive(float), default=0.5, help="time per measurement (default: 0.5)")
    b.add_argument("--json", action="store_true", help="print the rows as JSON")
    b.set_defaults(func=cmd_bench)


def cmd_info(args: argparse.Namespace) -> int:
    info: dict[str, Any] = {
        "gpubp": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "blas": blas_info(),
    }
    info.update(devices())
    try:  # info is the diagnostic: a bad GPUBP_DEVICE is reported, not fatal
        info["default_device"] = get_device(None).name
    except (ValueError, TypeError, RuntimeError) as exc:
        info["default_device"] = f"none: {exc}"
    info.update(parallel_status())
    if args.json:
        print(to_json(info, strict=True, indent=2))
        return 0
    print(f"gpubp {info['gpubp']}  python {info['python']}  numpy {info['numpy']}  ({info['platform']})")
    print(f"default device: {info['default_device']}")
    print(f"cpu: {info['cpu_count']} cores, kernels: {info['cpu']['kernels_note']}")
    for lib in info["blas"]:
        if "note" in lib:
            print(f"  blas: {lib['note']}")
        else:
            print(f"  blas: {lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}), "
                  f"{lib.get('num_threads')} threads")  # fmt: skip
    gpu = info["gpu"]
    if not gpu["available"]:
        print(f"gpu: not usable: {gpu['reason']}")
    else:
        print(f"gpu: cupy {gpu['cupy']}, CUDA runtime {gpu['cuda_runtime']}, driver {gpu['cuda_driver']}")
        for d in gpu["devices"]:
            print(f"  {d['device']}: {d['name']}, {d['memory_bytes'] / 2**30:.1f} GiB, "
                  f"compute capability {d['compute_capability']}")  # fmt: skip
    mpi, nccl = info["mpi"], info["nccl"]
    print(f"mpi: usable, mpiexec {mpi['mpiexec']} (mpiexec -n R gpubp train ...)" if mpi["available"]
          else f"mpi: not usable: {mpi['reason']}")  # fmt: skip
    why = "no usable GPU (above)" if not gpu["available"] else nccl.get("reason")
    print("nccl: usable (GPU ranks allreduce with NCCL)" if nccl["available"] else f"nccl: not usable: {why}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    device = get_device(args.device)
    rows = []
    for cfg in QUICK_CONFIGS:
        rows.append(measure(cfg, device, seconds=args.seconds))
        if not args.json:
            print(format_table(rows[-1:], header=len(rows) == 1), flush=True)
    if args.json:
        print(to_json(rows, strict=True))
    elif noise_note(rows):
        print(noise_note(rows))
    return 0
