"""The CPU's BLAS threads: one for a small training step, every core for a large one.

How many threads pay depends on the step's size (:func:`step_flops`) and on the kernels OpenBLAS chose
for this CPU (:func:`threads_for`); :func:`blas_threads` applies the choice inside a block, through
threadpoolctl when it is installed (without it, the choice changes nothing).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

SMALL_STEP_FLOPS = 2e6
# OpenBLAS's AVX-512 kernels run a small GEMM so fast on one core that a second thread costs more than it
# saves until ~20 MFLOP a step (measured on two SkylakeX hosts, see threads_for)
WIDE_KERNEL_STEP_FLOPS = 20e6
_WIDE_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


@cache
def _one_thread_below() -> float:
    """The step size (FLOPs) below which one BLAS thread is faster, by the kernels OpenBLAS chose here."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # blas_threads is a no-op then: the choice changes nothing
        return SMALL_STEP_FLOPS
    arch = [str(lib.get("architecture", "")).lower() for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return WIDE_KERNEL_STEP_FLOPS if any(a in _WIDE_KERNELS for a in arch) else SMALL_STEP_FLOPS


def step_flops(sizes: tuple[int, ...] | list[int], batch: int) -> int:
    """FLOPs of one training step: 2·B·n_in·n_out per GEMM, one per layer forward, two backward
    (∂W and the δ of the layer below), minus the first layer's input gradient, never computed."""
    forward = sum(2 * batch * a * b for a, b in itertools.pairwise(sizes))
    return 3 * forward - 2 * batch * sizes[0] * sizes[1]


def threads_for(sizes: tuple[int, ...] | list[int], batch: int, available: int | None = None) -> int:
    """BLAS threads for a step: one below the size where a second thread starts to pay, else every core.
    That size depends on the kernels OpenBLAS picked. Haswell's (AVX2; the project's 2-core EPYC, ms per
    epoch, 2 threads / 1): 64-256-10 B32 (2.6 MFLOP) 0.92, 64-100-10 Adam B200 0.89, 64-256-10 B128 0.82,
    784-128-10 B64 0.70, so from 2 MFLOP. SkylakeX's (AVX-512; a 2-core Xeon, a step, three repeats): 2.6
    MFLOP 1.32–1.35, 6.3 MFLOP (64-100-10 B200) 1.09–1.14, 10.4 MFLOP 1.04–1.12, 26 MFLOP 0.94–1.25, 52
    MFLOP 0.76–0.86, so from 20 MFLOP, as an earlier SkylakeX host had shown too."""
    if step_flops(sizes, batch) < _one_thread_below():
        return 1
    return available or os.cpu_count() or 1


_controller: Any = None


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit NumPy's BLAS to ``n`` threads inside the block (needs threadpoolctl; else a no-op).

    The library scan happens once per process; entering the block afterwards allocates ~1 KiB."""
    global _controller
    if n is None:
        yield
        return
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    if not _controller:
        yield
        return
    with _controller.limit(limits=n, user_api="blas"):
        yield


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy uses (API, version, threads, architecture, file), via threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "install threadpoolctl to see the BLAS library and its threads"}]
    keys = ("internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: v for k, v in lib.items() if k in keys} for lib in threadpool_info()]
