"""A fake CuPy with several GPUs, for checking on the CPU that gpubp does all work on a GPU inside its device's
context (``Device.use()``), as CuPy needs on gpu:N with N >= 1.

CuPy runs an operation on the *current* device (0 unless a ``cupy.cuda.Device(n)`` block says otherwise),
on that device's stream. An operation on arrays of gpu:1 while gpu:0 is current is queued on gpu:0's stream,
unordered with gpu:1's work (a race), or is a peer copy that fails without peer access. Here arrays are NumPy
arrays that remember their device; every operation, kernel launch, copy and allocation records the current
device and raises :class:`WrongDevice` when an array of another device takes part. ``get``/``set`` switch to
the array's device themselves, as CuPy's do. Kernels built with ``ElementwiseKernel`` run the NumPy twin of
the gpubp kernel of the same name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubp import kernels as K


class WrongDevice(AssertionError):
    """An array of one device was used while another device was current."""


class FakeArray(np.ndarray):
    """A NumPy array on fake device ``_dev`` (views stay on their base's device)."""

    _dev: int
    _cupy: FakeCupy

    def __array_finalize__(self, obj: Any) -> None:
        self._dev = getattr(obj, "_dev", _state["cupy"].current if _state else 0)

    # -- every ufunc, array function and method that computes goes through the device check --
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        fake = _state["cupy"]
        fake._check(f"{ufunc.__name__}.{method}", *inputs, *(out or ()))
        args = [_plain(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return fake._wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        fake = _state["cupy"]
        fake._check(func.__name__, *_flatten(args), *_flatten(tuple(kwargs.values())))
        result = func._implementation(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if "out" in kwargs and kwargs["out"] is not None:
            return kwargs["out"]
        return fake._wrap(result)

    def __setitem__(self, key, value):
        _state["cupy"]._check("setitem", self, value)
        np.ndarray.__setitem__(_plain(self), key, _plain(value))

    def copy(self, order="C"):
        _state["cupy"]._check("copy", self)
        return _state["cupy"]._wrap(np.array(_plain(self), order=order))

    def fill(self, value):
        _state["cupy"]._check("fill", self)
        _plain(self).fill(value)

    def astype(self, dtype, *args, **kwargs):
        _state["cupy"]._check("astype", self)
        return _state["cupy"]._wrap(_plain(self).astype(dtype, *args, **kwargs))

    def item(self, *args):
        _state["cupy"]._check("item", self)
        return _plain(self).item(*args)

    def __float__(self):
        _state["cupy"]._check("float", self)
        return float(_plain(self))

    # -- CuPy's own API --
    @property
    def device(self) -> Any:
        return _FakeDeviceObj(self._dev)

    def get(self, stream: Any = None) -> np.ndarray:
        """A host copy (CuPy switches to the array's device itself)."""
        _state["cupy"].calls.append(("get", self._dev))
        return np.array(_plain(self))

    def set(self, host: np.ndarray, stream: Any = None) -> None:
        """self ← host (CuPy switches to the array's device itself); ``stream`` must be that device's."""
        fake = _state["cupy"]
        if stream is not None and stream.device != self._dev:
            raise WrongDevice(f"set: an array of gpu:{self._dev} copied on a stream of gpu:{stream.device}")
        fake.calls.append(("set", self._dev))
        if fake.copy_entry is not None:
            fake.log.append(fake.copy_entry(host))
        np.copyto(_plain(self), host)


def _flushed(x: Any) -> Any:
    """float32 ``x`` with subnormals as zeros of their sign (as -ftz=true reads and writes them)."""
    if not isinstance(x, np.ndarray):
        return x if np.asarray(x).dtype != np.float32 else np.float32(_flushed(np.asarray(x)))
    if x.dtype != np.float32:
        return x
    tiny = np.finfo(np.float32).tiny
    return np.where((x != 0) & (np.abs(x) < tiny), np.copysign(np.float32(0), x), x).astype(np.float32)


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, FakeArray) else x


def _flatten(items: Any) -> list:
    out = []
    for x in items:
        if isinstance(x, (list, tuple)):
            out.extend(_flatten(x))
        else:
            out.append(x)
    return out


def _unwrap(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return _plain(x)


_state: dict[str, Any] = {}


class _FakeDeviceObj:
    """``cupy.cuda.Device(n)``: a context manager making device n current (``Device()`` is the current one)."""

    def __init__(self, index: int | None = None) -> None:
        fake = _state["cupy"]
        self.id = fake.current if index is None else index
        if not 0 <= self.id < fake.count:
            raise RuntimeError(f"cudaErrorInvalidDevice: gpu:{self.id} (the fake has {fake.count})")
        self._previous: list[int] = []

    def __enter__(self) -> _FakeDeviceObj:
        fake = _state["cupy"]
        self._previous.append(fake.current)
        fake.current = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        _state["cupy"].current = self._previous.pop()

    def synchronize(self) -> None:
        _state["cupy"].calls.append(("synchronize", self.id))

    def use(self) -> None:
        _state["cupy"].current = self.id


class _Event:
    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False) -> None:
        self.device = _state["cupy"].current
        self.disable_timing = disable_timing
        _state["cupy"].events_made += 1
        self.serial = _state["cupy"].events_made

    def record(self, stream: Any = None) -> None:
        fake = _state["cupy"]
        stream = stream or fake.cuda.get_current_stream()
        if stream.device != self.device or fake.current != self.device:
            raise WrongDevice(f"an event of gpu:{self.device} recorded on gpu:{stream.device}'s stream "
                              f"with gpu:{fake.current} current")  # fmt: skip
        self.recorded = True
        fake.order.append(("record", self.serial, stream.ptr))

    def synchronize(self) -> None:
        _state["cupy"].log.append(("wait", self.serial))

    @property
    def done(self) -> bool:
        return True


class _Stream:
    def __init__(self, non_blocking: bool = False, null: bool = False) -> None:
        self.device = _state["cupy"].current
        self.ptr = 0 if null else id(self)

    def record(self, event: Any = None) -> Any:
        event = event or _Event()
        event.record(self)
        return event

    def wait_event(self, event: Any) -> None:
        """Logged in ``order`` with whether the event was ever recorded (CUDA: waiting on one never recorded
        waits for nothing)."""
        _state["cupy"].order.append(("wait_event", self.ptr, event.serial, getattr(event, "recorded", False)))

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> _Stream:
        fake = _state["cupy"]
        if fake.current != self.device:
            raise WrongDevice(f"a stream of gpu:{self.device} made current with gpu:{fake.current} current")
        fake._streams.setdefault(self.device, []).append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _state["cupy"]._streams[self.device].pop()


class _Runtime:
    def getDeviceCount(self) -> int:
        return _state["cupy"].count

    def memGetInfo(self) -> tuple[int, int]:
        return 8 << 30, 16 << 30

    def getDeviceProperties(self, i: int) -> dict:
        return {"name": b"Fake GPU", "totalGlobalMem": 16 << 30, "major": 9, "minor": 0}

    def runtimeGetVersion(self) -> int:
        return 12090

    def driverGetVersion(self) -> int:
        return 12090


class _Cuda:
    Device = _FakeDeviceObj
    Event = _Event
    Stream = _Stream
    runtime = _Runtime()

    def get_current_stream(self) -> _Stream:
        fake = _state["cupy"]
        stack = fake._streams.get(fake.current)
        if stack:
            return stack[-1]
        return fake._null.setdefault(fake.current, _Stream(null=True))

    def alloc_pinned_memory(self, nbytes: int) -> bytearray:
        return bytearray(max(nbytes, 1))


class _Pool:
    def free_bytes(self) -> int:
        return 0


class FakeCupy:
    """The subset of the ``cupy`` module gpubp uses, over NumPy, with ``count`` fake devices."""

    __name__ = "cupy"
    __version__ = "0.0-fake"

    def __init__(self, count: int = 2, current: int = 0) -> None:
        self.count = count
        self.current = current  # the device current outside gpubp's calls
        self.calls: list[tuple[str, int]] = []  # (operation, device that was current)
        self.kernels_built: list[tuple[str, str, int]] = []  # (kernel, dtype, device) per compilation
        self.options: dict[str, tuple] = {}  # the compile options each kernel was declared with, by name
        self.shape_classes: set[tuple[str, str, int]] = set()  # (kernel, dtype, axes) launched, see _shape_class
        self.compiled: set[tuple] = set()  # what CuPy would compile: elementwise per shape class and device
        self.events_made = 0
        self.log: list = []  # copy_entry(host) per host-to-device copy, ("wait", event number) per event waited on
        self.copy_entry: Any = None
        self.order: list = []  # ("alloc", shape), ("record", event, stream), ("wait_event", stream, event, recorded)
        self.cuda = _Cuda()
        self._streams: dict[int, list[_Stream]] = {}
        self._null: dict[int, _Stream] = {}
        self.ndarray = FakeArray
        _state["cupy"] = self

    def _check(self, what: str, *arrays: Any) -> None:
        self.calls.append((what, self.current))
        for x in arrays:
            if isinstance(x, FakeArray) and x._dev != self.current:
                raise WrongDevice(f"{what}: an array of gpu:{x._dev} used while gpu:{self.current} is current")

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, np.ndarray) and not isinstance(result, FakeArray):
            out = result.view(FakeArray)
            out._dev = self.current
            return out
        if isinstance(result, FakeArray):
            return result
        if isinstance(result, np.generic):  # a reduction to a scalar: CuPy keeps a 0-d array on the device
            return self._wrap(np.asarray(result))
        return result

    # -- allocation and conversion --
    def _new(self, a: np.ndarray) -> FakeArray:
        self.calls.append(("alloc", self.current))
        self.order.append(("alloc", a.shape))
        return self._wrap(np.array(a, order="C"))

    def empty(self, shape: Any, dtype: Any = float) -> FakeArray:
        return self._new(np.empty(shape, dtype))

    def zeros(self, shape: Any, dtype: Any = float) -> FakeArray:
        return self._new(np.zeros(shape, dtype))

    def ones(self, shape: Any, dtype: Any = float) -> FakeArray:
        return self._new(np.ones(shape, dtype))

    def arange(self, *args: Any, **kwargs: Any) -> FakeArray:
        return self._new(np.arange(*args, **kwargs))

    def asarray(self, x: Any, dtype: Any = None) -> FakeArray:
        if isinstance(x, FakeArray):
            if x._dev != self.current:  # CuPy would copy between devices (a peer copy)
                raise WrongDevice(f"asarray: an array of gpu:{x._dev} while gpu:{self.current} is current")
            return x if dtype is None or np.dtype(dtype) == x.dtype else x.astype(dtype)
        return self._new(np.asarray(x, dtype=dtype))

    array = asarray

    def get_default_memory_pool(self) -> _Pool:
        return _Pool()

    def ElementwiseKernel(self, in_params: str, out_params: str, body: str, name: str, no_return: bool = False,
                          options: tuple = ()):  # fmt: skip
        """The gpubp kernel ``name`` run by its NumPy twin; 'compiled' (recorded) per dtype and device."""
        kernel = next(k for k in K.ALL if k.name == name)
        self.options[name] = tuple(options)
        fake = self

        def run(*args: Any) -> None:
            fake._check(f"kernel {name}", *args)
            fake._built(name, args[-1].dtype)
            fake._shape_class(name, args)
            plain = [_plain(a) if isinstance(a, FakeArray) else a for a in args]
            if args[-1].dtype == np.float32:  # CuPy compiles with -ftz=true: subnormals read and written as 0
                n_in = len(kernel.inputs)
                plain = [_flushed(a) for a in plain[:n_in]] + plain[n_in:]
                for out in plain[n_in:]:
                    np.copyto(out, _flushed(out))
            with np.errstate(all="ignore"):  # a compilation's launch runs over scratch values, as on a GPU
                kernel.numpy(*plain)
            if args[-1].dtype == np.float32:
                for out in plain[len(kernel.inputs) :]:
                    np.copyto(out, _flushed(out))

        return run

    def _shape_class(self, name: str, args: tuple) -> None:
        """Records (kernel, dtype, axes): CuPy compiles an elementwise kernel per dtype and per number of axes
        left once axes of size 1 are dropped and axes all arguments walk alike are merged (reduce_dims)."""
        arrays = [np.asarray(a) for a in args if isinstance(a, np.ndarray) and np.ndim(a) > 0]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        kept = [i for i, n in enumerate(shape) if n > 1]
        full = all(a.shape == shape for a in arrays)  # no broadcast: the kept axes merge into one
        self.shape_classes.add((name, np.dtype(args[-1].dtype).name, min(len(kept), 1) if full else len(kept)))
        self.compiled.add((name, np.dtype(args[-1].dtype).name, self.current, len(kept) if not full else 1))

    def _built(self, name: str, dtype: Any) -> None:
        key = (name, np.dtype(dtype).name, self.current)
        if key not in self.kernels_built:
            self.kernels_built.append(key)
        if not any(name == k.name for k in K.ALL):  # a row or reduction kernel: one build per dtype and device
            self.compiled.add(key)

    def RawModule(self, code: str, options: Any = (), name_expressions: Any = None) -> Any:
        """A module of gpubp's row kernels; ``get_function("softmax_rows_float")`` runs the twin of softmax_rows."""
        fake = self
        for k in K.ROWS:
            if f" {k.name}_float(" in code:
                self.options[k.name] = tuple(options)

        class Module:
            def get_function(self, fn_name: str) -> Any:
                base, T = fn_name.rsplit("_", 1)
                kernel = next(k for k in K.ROWS if k.name == base)

                def launch(grid: Any, block: Any, args: tuple) -> None:
                    if not all(grid):
                        raise RuntimeError(f"cudaErrorInvalidConfiguration: {fn_name} launched on grid {grid}")
                    b, a = args[:2]
                    fake._check(f"row kernel {base}", b, a)
                    fake._built(base, a.dtype)
                    assert a.dtype == (np.float32 if T == "float" else np.float64), "the launch's dtype"
                    with np.errstate(all="ignore"):
                        kernel.numpy(_plain(b), _plain(a))

                return launch

        return Module()

    def ReductionKernel(self, in_params: str, out_params: str, map_expr: str, reduce_expr: str, post_map_expr: str,
                        identity: str, name: str, preamble: str = "", options: tuple = ()) -> Any:  # fmt: skip
        """gpubp's Σ loss terms · w: the twin of the loss kernel ``name`` without ``_sum``, then the sum."""
        kernel = next(k for k in K.ALL if k.name == name.removesuffix("_sum"))
        self.options[name] = tuple(options)
        fake = self

        def run(a: Any, y: Any, tiny: Any, w: Any) -> Any:
            fake._check(f"reduction {name}", a, y, tiny, w)
            fake._built(name, a.dtype)
            t = np.empty(a.shape, a.dtype)
            with np.errstate(all="ignore"):
                kernel.numpy(_plain(a), _plain(y), a.dtype.type(_plain(tiny)), t)
                return fake._wrap(np.asarray((t * _plain(w)).sum(), a.dtype))

        return run

    def __getattr__(self, name: str) -> Any:
        """Any other NumPy function, run with the device check (through the arrays' __array_function__)."""
        fn = getattr(np, name)
        if not callable(fn):
            return fn

        def checked(*args: Any, **kwargs: Any) -> Any:
            self._check(name, *_flatten(args), *_flatten(tuple(kwargs.values())))
            result = fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
            if kwargs.get("out") is not None:
                return kwargs["out"]
            return self._wrap(result)

        return checked


def fake_device(fake: FakeCupy, index: int = 1):
    """A gpubp Device on fake GPU ``index``."""
    from gpubp.backend import Device

    return Device(f"gpu:{index}", fake, index)


FakeArray.__module__ = "cupy_fake"  # gpubp.device.is_cupy_array tells CuPy arrays by their class's module


def pytest_configure(config: Any) -> None:
    """``pytest -p fake_gpu -m gpu``: the GPU tests against this fake, installed as ``cupy`` (two GPUs), to run
    their code paths on a machine without one (the kernels are the twins, so numbers are the CPU's).
    GPUBP_FAKE_CURRENT=1 makes gpu:1 current outside gpubp's calls: then work on gpu:0 outside its context fails
    too (and so do tests that make CuPy arrays themselves)."""
    import os
    import sys
    import types

    from gpubp import probe

    fake = FakeCupy(2, current=int(os.environ.get("GPUBP_FAKE_CURRENT", "0")))
    fake.cupy = fake
    probe._cupy_status = lambda: (fake, None)
    sys.modules["cupy"] = fake  # type: ignore[assignment]
    sys.modules["cupyx"] = types.SimpleNamespace(allow_synchronize=_allow_synchronize)  # type: ignore[assignment]


def _allow_synchronize(allow: bool) -> Any:
    import contextlib

    return contextlib.nullcontext()
