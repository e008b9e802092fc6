"""One place arrays live: :class:`Device` carries ``xp`` (``cupy`` on a GPU, ``numpy`` on the CPU), the
kernel runner for that device, and the few operations that differ (moving arrays, reading a value back
to the host, scratch buffers, staging rows on their way to the GPU). The helpers below tell CuPy's and
other libraries' GPU arrays from host ones. Which device a run uses is :mod:`gpubp.backend`'s concern.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import kernelkit as _kernelkit
from . import probe


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
    _compiled_kernels: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

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
            self.kernels = probe.cpu_kernels()
        return self.kernels == "numba"

    def kernel(self, k: _kernelkit.Kernel, dtype: Any = None) -> Callable[..., Any]:
        """The runner of kernel ``k`` on this device: its CUDA build, its compiled loop or its NumPy twin. On a GPU
        it is compiled now for ``dtype`` (None: float32 and float64), once per device: not in epoch 1."""
        if self.is_gpu:
            return self._gpu_compiled(k, dtype)
        return k.host() if k.loop is not None and self.jit else k.numpy

    def row_kernel(self, k: _kernelkit.RowKernel, dtype: Any = None) -> Callable[..., Any]:
        """The runner f(b, A) of row kernel ``k`` on this GPU (one launch, compiled now for ``dtype``, None: both,
        on this device); on the CPU its NumPy twin."""
        if not self.is_gpu:
            return k.numpy
        return self._gpu_compiled(k, dtype)

    def _gpu_compiled(self, k: Any, dtype: Any) -> Any:
        """``k`` compiled on this GPU for the dtypes not compiled yet (each NVRTC build takes ~1 s where CuPy's
        disk cache does not have it: a float32 network compiles no float64 kernel)."""
        dtypes = (np.float32, np.float64) if dtype is None else (np.dtype(dtype).type,)
        compiled = self._compiled_kernels
        todo = tuple(d for d in dtypes if (k.name, d) not in compiled)
        if todo:
            with self.use():
                run = k.compile(self.xp, todo)
            compiled.setdefault(k.name, run)
            compiled.update(((k.name, d), True) for d in todo)
        return compiled[k.name]

    def loss_sum(self, k: _kernelkit.Kernel, dtype: Any) -> Callable[..., Any] | None:
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

    def use(self) -> contextlib.AbstractContextManager[Any]:
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
            landing_key, events_key = ("landing", *key), ("events", *key)
            events = mine.get(events_key)
            if events is None:
                events = mine[events_key] = (xp.cuda.Event(disable_timing=True), xp.cuda.Event(disable_timing=True))
            copied, read = events
            landing = mine.get(landing_key)
            if landing is None or landing.shape[0] < host.shape[0]:  # grows with the staging buffer, rarely
                landing = mine[landing_key] = xp.empty(mine[key].shape, host.dtype)
                # the pool may hand over a block that work queued on the current stream still reads (the pool
                # orders reuse on that stream, not on the copy stream): the copy waits for that work
                read.record(compute)
            part = landing[: host.shape[0]]
            copier.wait_event(read)  # the current stream has moved this buffer's last rows out of it
            part.set(host, stream=copier)
            copied.record(copier)
            compute.wait_event(copied)
            xp.copyto(out, part)  # on the current stream: after the step that still reads out
            read.record(compute)
            copy_key = ("staging-copy", *key)
            mine[copy_key] = copied  # staging() waits on it before filling host again

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
    if has_cuda_array_interface(x):
        return True
    where = getattr(x, "__dlpack_device__", None)
    try:
        return where is not None and where()[0] == 2  # kDLCUDA
    except Exception:  # a __dlpack_device__ that cannot answer is not read through it
        return False


def has_cuda_array_interface(x: Any) -> bool:
    """True when ``x`` offers ``__cuda_array_interface__``. An object whose interface raises (a PyTorch CUDA
    tensor that requires grad raises RuntimeError, which ``hasattr`` does not catch) is refused with why."""
    try:
        x.__cuda_array_interface__  # noqa: B018 (read for its error, if any)
    except AttributeError:
        return False
    except Exception as exc:
        raise TypeError(f"{type(x).__name__} is a CUDA array whose __cuda_array_interface__ cannot be read: {exc} "
                        f"(a PyTorch tensor that requires grad: pass tensor.detach())") from None  # fmt: skip
    return True


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A NumPy array from a CuPy array or another library's GPU array (copied from the GPU through CuPy) or
    anything array-like."""
    if is_cupy_array(x):
        x = x.get()
    elif is_foreign_cuda_array(x):
        cupy, reason = probe._cupy_status()
        if cupy is None:
            raise TypeError(f"{type(x).__name__} is an array on a CUDA GPU; reading it needs CuPy: {reason}")
        x = (cupy.asarray(x) if has_cuda_array_interface(x) else cupy.from_dlpack(x)).get()
    return np.asarray(x, dtype=dtype)


def gpu_array(x: Any, device: Device) -> Any:
    """``x`` as a CuPy array on ``device`` without a host copy when x is a GPU array (CuPy, or any
    object with ``__cuda_array_interface__`` or a CUDA ``__dlpack__``: PyTorch, JAX) and ``device`` is
    a GPU; else None. Not run on a GPU."""
    if not device.is_gpu or isinstance(x, np.ndarray):
        return None
    with device.use():
        if is_cupy_array(x) or has_cuda_array_interface(x):
            return device.xp.asarray(x)
        if hasattr(x, "__dlpack_device__") and x.__dlpack_device__()[0] == 2:  # kDLCUDA
            return device.xp.from_dlpack(x)
    return None
