"""The machine facts recorded with every benchmark result (the GPU skip and the ``device`` fixture
are in the top conftest.py)."""

from __future__ import annotations

import os
import subprocess


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


_START = (_cpu_jiffies(), os.times())


def others_cpu_load() -> float | None:
    """Cores kept busy by other processes since the session started (machine busy minus ours)."""
    (start, t0), now, t1 = _START, _cpu_jiffies(), os.times()
    if start is None or now is None:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    wall = t1.elapsed - t0.elapsed
    if wall <= 0:
        return None
    machine_busy = (now[0] - start[0]) / hz
    ours = (t1.user - t0.user) + (t1.system - t0.system)
    return max(0.0, machine_busy - ours) / wall


def pytest_benchmark_update_machine_info(config, machine_info):
    import numpy as np

    from gpubp.backend import devices
    from gpubp.blas import blas_info

    machine_info["gpubp_commit"] = _commit()
    machine_info["numpy"] = np.__version__
    machine_info["blas"] = blas_info()
    machine_info["loadavg_at_end"] = os.getloadavg()
    machine_info["other_processes_cores_busy"] = others_cpu_load()
    machine_info["devices"] = devices()
    try:
        import torch

        machine_info["torch"] = torch.__version__
    except ImportError:
        machine_info["torch"] = None
