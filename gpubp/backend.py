"""The array-module switch: ``xp`` is ``cupy`` on a GPU and ``numpy`` on the CPU.

Everything else in gpubp is written once over a :class:`Device`, which carries ``xp``, the
kernel runner for that device, and the few operations that differ (moving arrays, reading a
value back to the host). This module, :mod:`gpubp.kernelkit` and, for NCCL, :mod:`gpubp.parallel` are the
only places that touch CuPy.

Two facts are kept apart, as they fail for different reasons: "CuPy imports" and "a CUDA device
answers". When either fails, the reason is kept so that errors can say exactly why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from . import kernelkit as _kernelkit
from .blas import blas_info as blas_info  # the command's `info` reads it from here

log = logging.getLogger("gpubp")

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
    if numba.config.DISABLE_JIT:  # njit would hand back the plain-Python loops: ~1000x slower than the twins
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


@dataclass(eq=False)
class Device:
    """One place arrays live: ``cpu`` (NumPy) or ``gpu:N`` (CuPy on CUDA device N)."""

    name: str
    xp: Any
    index: int | None = None
    # host reads (device → host) since creation; the training loop is tested against this count
    host_reads: int = field(default=0, compare=False)
    # this device's scratch and staging buffers, per thread: a thread's buffers go when it ends
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)
    # the CPU's kernels, "numba" or "numpy"; None: cpu_kernels() decides on first use (Numba is imported
    # only then, so `import gpubp` stays light)
    kernels: str | None = field(default=None, compare=False)
    # the GPU's kernels by name, compiled for this device (both dtypes) on first use
    _compiled_kernels: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_gpu(self) -> bool:
        return self.index is not None

    @property
    def jit(self) -> bool:
        """True on a CPU that runs the kernels as compiled loops (Numba): one call a kernel, as on the
        GPU; False on a GPU and on a CPU that runs the NumPy twins."""
        if self.is_gpu:
            return False
        if self.kernels is None:
            self.kernels = cpu_kernels()
        return self.kernels == "numba"

    def kernel(self, k: _kernelkit.Kernel):
        """The runner of kernel ``k`` on this device: its CUDA build, its compiled loop or its NumPy twin."""
        if self.is_gpu:
            compiled = self._compiled_kernels
            if k.name not in compiled:  # compiled here, when a network binds, for this device: not in epoch 1
                with self.use():
                    compiled[k.name] = k.compile(self.xp)
            return compiled[k.name]
        return k.host() if k.loop is not None and self.jit else k.numpy

    def row_kernel(self, k: _kernelkit.RowKernel):
        """The runner f(b, A) of row kernel ``k`` on this GPU (one launch, compiled now for both dtypes on this
        device); on the CPU its NumPy twin."""
        if not self.is_gpu:
            return k.numpy
        compiled = self._compiled_kernels
        if k.name not in compiled:
            with self.use():
                compiled[k.name] = k.compile(self.xp)
        return compiled[k.name]

    def loss_sum(self, k: _kernelkit.Kernel, dtype: Any):
        """On a GPU, f(A_L, Y, tiny, w) = Σ of loss kernel ``k``'s terms times w (a (B, 1) array, or None for 1) as
        a 0-d array of ``dtype``, one launch (compiled now on this device); None on the CPU (terms, then a sum)."""
        if not self.is_gpu:
            return None
        key = f"{k.name}_sum_{np.dtype(dtype).name}"
        compiled = self._compiled_kernels
        if key not in compiled:
            xp = self.xp
            with self.use():
                reduce = k.gpu_sum(xp)
                tiny, one = xp.asarray(np.finfo(dtype).tiny, dtype=dtype), xp.ones((1, 1), dtype)

                def run(a: Any, y: Any, w: Any = None) -> Any:
                    return reduce(a, y, tiny, one if w is None else w)

                run(xp.zeros((1, 1), dtype), xp.zeros((1, 1), dtype))  # compiled now, not in epoch 1
                compiled[key] = run
        return compiled[key]

    def use(self):
        """Context manager making this device current (a no-op on the CPU)."""
        if self.is_gpu:
            return self.xp.cuda.Device(self.index)
        return contextlib.nullcontext()

    def adopt(self, x: Any, name: str) -> Any:
        """``x`` as an array to check: a CuPy array of this GPU as it is, anything else as a NumPy
        array. A GPU array given to a CPU network, or one on another GPU, is refused."""
        if is_cupy_array(x):
            if not self.is_gpu:
                raise TypeError(
                    f"{name} is a CuPy array (on the GPU) but the network is on the CPU; "
                    f"move the network with net.to('gpu') or pass cupy.asnumpy({name})"
                )
            if x.device.id != self.index:
                raise ValueError(f"{name} is on gpu:{x.device.id} but the network is on {self.name}")
            return x
        if is_foreign_cuda_array(x):  # PyTorch, JAX: used in place on a GPU (as CuPy's), read through CuPy on the CPU
            return self.adopt(gpu_array(x, self), name) if self.is_gpu else to_numpy(x)
        try:
            return np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be a numeric array, could not convert: {exc}") from None

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """``x`` as an array of this device (copied from the host when needed)."""
        if self.is_gpu:
            with self.use():
                return self.xp.asarray(x, dtype=dtype)
        if is_cupy_array(x):
            x = x.get()
        return np.asarray(x, dtype=dtype)

    def to_host(self, x: Any) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of ``x``; on the GPU this synchronises."""
        self.host_reads += 1
        if is_cupy_array(x):
            return x.get()
        return np.asarray(x)

    def item(self, x: Any) -> float:
        """One scalar back to the host as a Python float (a synchronisation on the GPU)."""
        return float(self.to_host(x))

    def scratch(self, shape: tuple[int, ...], dtype: Any, tag: str = "") -> Any:
        """A reusable temporary buffer (contents undefined), kept per shape, dtype and tag so a
        training step allocates nothing. Callers that may hold two at once use different tags.
        On the GPU reuse is safe because every kernel runs in order on one stream."""
        if not self.is_gpu:
            return _kernelkit.scratch(shape, dtype, tag)
        mine = self._buffers()  # per thread, as on the CPU
        key = (shape, np.dtype(dtype).str, tag)
        buf = mine.get(key)
        if buf is None:
            with self.use():
                buf = mine[key] = self.xp.empty(shape, dtype)
        return buf

    def _buffers(self) -> _ThreadBuffers:
        """This thread's buffers of this device (two trainings in two threads never share one; they
        are freed when the thread ends, so a process training in many short threads does not grow)."""
        try:
            return self._local.buffers
        except AttributeError:
            mine = self._local.buffers = _ThreadBuffers()
            return mine

    def take_rows(self, x: Any, rows: Any, out: Any) -> None:
        """out ← x[rows] (a gather of whole rows into a preallocated batch buffer)."""
        if self.is_gpu:
            self.xp.take(x, rows, axis=0, out=out)
        else:
            # mode="clip" is unbuffered: "raise" would copy through a temporary first
            np.take(x, rows, axis=0, out=out, mode="clip")

    def staging(self, shape: tuple[int, int], dtype: Any, tag: str) -> np.ndarray:
        """A host buffer of ``shape`` for rows on their way to the device (contents undefined).

        Double-buffered: calls with one tag alternate between two buffers (the leading rows of each),
        so the host fills one while the copy from the other may still be running. On a GPU they are
        page-locked (pinned), and a buffer is handed out again only once the copy that read it is
        done (its event). Not run on a GPU."""
        rows, width = shape
        mine = self._buffers()  # per thread, as scratch(): two trainings never share one
        slot = mine["staging-slot", tag] = 1 - mine.get(("staging-slot", tag), 1)
        key = ("staging", tag, width, np.dtype(dtype).str, slot)
        pending = mine.pop(("staging-copy", *key), None)
        if pending is not None:
            pending.synchronize()  # the copy from this buffer (two uploads ago) has finished
        buf = mine.get(key)
        if buf is None or buf.shape[0] < rows:
            if self.is_gpu:
                with self.use():  # page-locked, so that the copy from it runs asynchronously (as cupyx.empty_pinned)
                    item = np.dtype(dtype).itemsize
                    memory = self.xp.cuda.alloc_pinned_memory(max(rows * width, 1) * item)
                buf = np.ndarray((rows, width), dtype, buffer=memory)
            else:
                buf = np.empty((rows, width), dtype)
            mine[key] = buf
        mine["staging-last"] = key
        return buf[:rows]

    def upload(self, host: np.ndarray, out: Any) -> None:
        """out ← host, the buffer staging() gave last (same shape and dtype; ``out`` contiguous).

        On a GPU the copy runs on a copy stream of this device into a device buffer of its own (two per
        tag, as the host's), so it overlaps the step still computing on the current stream; the current
        stream then waits for it (an event) and moves the rows into ``out`` behind that step. The host
        goes on at once (no synchronisation); an event marks when ``host`` is free again. The events are
        made once per buffer, without timing. Not run on a GPU."""
        if not self.is_gpu:
            np.copyto(out, host)
            return
        xp, mine = self.xp, self._buffers()
        key = mine["staging-last"]
        with self.use():
            compute = xp.cuda.get_current_stream()
            copier = mine.get("copy-stream")
            if copier is None:
                copier = mine["copy-stream"] = xp.cuda.Stream(non_blocking=True)
            landing = mine.get(("landing", *key))
            if landing is None or landing.shape[0] < host.shape[0]:  # grows with the staging buffer, rarely
                landing = mine[("landing", *key)] = xp.empty(mine[key].shape, host.dtype)
            copied, read = mine.get(("events", *key)) or (None, None)
            if copied is None:
                copied, read = xp.cuda.Event(disable_timing=True), xp.cuda.Event(disable_timing=True)
                mine[("events", *key)] = (copied, read)
            part = landing[: host.shape[0]]
            copier.wait_event(read)  # the current stream has moved this buffer's last rows out of it
            part.set(host, stream=copier)
            copied.record(copier)
            compute.wait_event(copied)
            xp.copyto(out, part)  # on the current stream: after the step that still reads out
            read.record(compute)
            mine[("staging-copy", *key)] = copied  # staging() waits on it before filling host again

    def memory_free(self) -> int | None:
        """Bytes the GPU can still hand out (free plus CuPy's pool's unused blocks); None on the CPU."""
        if not self.is_gpu:
            return None
        with self.use():
            free, _ = self.xp.cuda.runtime.memGetInfo()
            return int(free) + int(self.xp.get_default_memory_pool().free_bytes())

    def synchronize(self) -> None:
        if self.is_gpu:
            self.xp.cuda.Device(self.index).synchronize()

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


class _ThreadBuffers(dict):
    """One thread's buffers of a Device. When the thread ends they are dropped; on a GPU that first
    waits for the copies still reading a pinned staging buffer (their events). Not run on a GPU."""

    def __del__(self) -> None:
        for key, event in list(self.items()):
            if key[0] == "staging-copy":
                event.synchronize()


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy array, without importing CuPy when it is not already loaded."""
    return type(x).__module__.startswith("cupy")


def is_foreign_cuda_array(x: Any) -> bool:
    """True for another library's GPU array (PyTorch, JAX, Numba...): ``__cuda_array_interface__`` or a
    CUDA ``__dlpack_device__``, which NumPy cannot read."""
    if isinstance(x, np.ndarray) or is_cupy_array(x):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    where = getattr(x, "__dlpack_device__", None)
    try:
        return where is not None and where()[0] == 2  # kDLCUDA
    except Exception:  # a __dlpack_device__ that cannot answer is not read through it
        return False


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A NumPy array from a CuPy array or another library's GPU array (copied from the GPU through CuPy) or
    anything array-like."""
    if is_cupy_array(x):
        x = x.get()
    elif is_foreign_cuda_array(x):
        cupy, reason = _cupy_status()
        if cupy is None:
            raise TypeError(f"{type(x).__name__} is an array on a CUDA GPU; reading it needs CuPy: {reason}")
        x = (cupy.asarray(x) if hasattr(x, "__cuda_array_interface__") else cupy.from_dlpack(x)).get()
    return np.asarray(x, dtype=dtype)


CPU = Device("cpu", np)
_DEVICE_RE = re.compile(r"^(auto|cpu|gpu|cuda)(?::(\d+))?$")


def _gpu(index: int) -> Device:
    cupy, reason = _cupy_status()
    if reason is not None:
        raise RuntimeError(f"no usable GPU: {reason}")
    count = cupy.cuda.runtime.getDeviceCount()
    if index >= count:
        raise RuntimeError(f"no usable GPU: gpu:{index} asked for, but only {count} CUDA device(s) exist")
    return _gpu_device(index)


@cache
def _gpu_device(index: int) -> Device:
    cupy, _ = _cupy_status()
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
    cupy, reason = _cupy_status()
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


def gpu_array(x: Any, device: Device) -> Any:
    """``x`` as a CuPy array on ``device`` without a host copy when x is a GPU array (CuPy, or any
    object with ``__cuda_array_interface__`` or a CUDA ``__dlpack__``: PyTorch, JAX) and ``device`` is
    a GPU; else None. Not run on a GPU."""
    if not device.is_gpu or isinstance(x, np.ndarray):
        return None
    with device.use():
        if is_cupy_array(x) or hasattr(x, "__cuda_array_interface__"):
            return device.xp.asarray(x)
        if hasattr(x, "__dlpack_device__") and x.__dlpack_device__()[0] == 2:  # kDLCUDA
            return device.xp.from_dlpack(x)
    return None
