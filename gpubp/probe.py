"""What this machine offers, probed once per process: does CuPy import, does a CUDA device answer, does
Numba compile the CPU's kernel loops (and which kernels the CPU runs, ``GPUBP_CPU_KERNELS``).

"CuPy imports" and "a CUDA device answers" are kept apart, as they fail for different reasons; when
either fails, the reason is kept so that errors can say exactly why.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

CUDA_EXTRA_HINT = "install it with: pip install 'gpubp[cuda12]' (CUDA 12) or 'gpubp[cuda13]' (CUDA 13)"


@cache
def _cupy_status() -> tuple[Any, str | None]:
    """(cupy module or None, why the GPU is unusable or None). Probed once per process."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); {CUDA_EXTRA_HINT}"
    except Exception as exc:  # a broken CuPy install raises more than ImportError
        return None, f"CuPy failed to import: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, no device
        return cupy, f"CuPy {cupy.__version__} is installed but no CUDA device answers: {exc}"
    if count < 1:
        return cupy, f"CuPy {cupy.__version__} is installed but sees no CUDA device"
    return cupy, None


CPU_KERNELS = ("auto", "numba", "numpy")
NUMBA_HINT = "install it with: pip install 'gpubp[numba]'"


@cache
def _numba_status() -> tuple[str | None, str | None]:
    """(Numba's version or None, why the compiled CPU loops are unusable or None). Probed once."""
    try:
        import numba
    except ImportError as exc:
        return None, f"Numba is not installed ({exc}); {NUMBA_HINT}"
    except Exception as exc:  # a broken install (e.g. an llvmlite that does not match) raises more
        return None, f"Numba failed to import: {type(exc).__name__}: {exc}"
    if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]  # njit would hand back the plain-Python loops: ~1000x slower than the twins
        return numba.__version__, f"NUMBA_DISABLE_JIT is set, so Numba {numba.__version__} compiles nothing"
    return numba.__version__, None


def cpu_kernels() -> str:
    """Which kernels the CPU runs: ``numba`` (each kernel one compiled loop) or ``numpy`` (the NumPy
    twins). ``GPUBP_CPU_KERNELS`` = auto (default: numba where it imports), numba (required) or numpy."""
    want = (os.environ.get("GPUBP_CPU_KERNELS", "auto") or "auto").strip().lower()
    if want not in CPU_KERNELS:
        raise ValueError(f"GPUBP_CPU_KERNELS={want!r}: expected one of {', '.join(CPU_KERNELS)}")
    if want == "numpy":
        return "numpy"
    reason = _numba_status()[1]
    if reason is None:
        return "numba"
    if want == "numba":
        raise RuntimeError(f"GPUBP_CPU_KERNELS=numba, but {reason}")
    return "numpy"


def cpu_kernels_info() -> dict[str, str]:
    """{"kernels": "numba" or "numpy", "kernels_note": the Numba version, or why the NumPy twins run}."""
    try:
        kind = cpu_kernels()
    except (ValueError, RuntimeError) as exc:
        return {"kernels": "error", "kernels_note": str(exc)}
    version, reason = _numba_status()
    if kind == "numba":
        return {"kernels": "numba", "kernels_note": f"compiled loops, Numba {version}"}
    if reason is None:
        return {"kernels": "numpy", "kernels_note": "NumPy twins (GPUBP_CPU_KERNELS=numpy)"}
    return {"kernels": "numpy", "kernels_note": f"NumPy twins: {reason}"}


def gpu_unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable, else one line saying why not."""
    return _cupy_status()[1]
