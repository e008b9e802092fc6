"""The rehearsal's stand-in machine, installed in every Python process by sitecustomize.py.

- ``import cupy`` (and ``cupyx``, ``cupy.cuda``) gives tests/fake_gpu.py's FakeCupy with one GPU, as the GPU
  machine has: gpubp finds "a GPU" and runs every GPU code path, the kernels being their NumPy twins.
- GPUBP_REHEARSE_WARN_ON_IMPORT=module makes importing that module warn (DeprecationWarning), as another
  version of it on the GPU machine might.
- What costs time on a GPU machine and not here is counted, and written at exit to
  $GPUBP_REHEARSE_COUNTS/<step>.jsonl (one line a process; the step is $GPUBP_RUN_STEP): the kernels CuPy
  would compile (kernel, dtype, device; an elementwise one per shape class too, fake_gpu's ``compiled``),
  gpubp training steps on the GPU (backprop calls), fits on the CPU
  (scikit-learn's, gpubp's) and their CPU seconds, benchmark rounds by their time targets, and rests
  (``time.sleep``). tests/rehearsal/headroom.py prices them.

Nothing here is imported by gpubp; it patches only the fake and, after they are imported, ``time.sleep``,
``gpubp.network.MLP.backprop``, ``gpubp.training.Trainer.run``, scikit-learn's MLP ``_fit`` and
``benchmarks.peers.interleaved`` (to count them).
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import time
import types
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
COUNTS: dict[str, Any] = {}


def _reset() -> None:
    COUNTS.clear()
    COUNTS.update(backprop_gpu=0, fits_other=0, fit_other_s=0.0, rests=0, rest_s=0.0, timed_s=0.0)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves cupy, cupyx and cupy.cuda from the fake; counts after gpubp.network and sklearn's MLP load."""

    PATCH_AFTER = ("gpubp.network", "gpubp.training", "sklearn.neural_network._multilayer_perceptron",
                   "benchmarks.peers")  # fmt: skip

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name in ("cupy", "cupyx", "cupy.cuda"):
            return importlib.machinery.ModuleSpec(name, self)
        if name in self.PATCH_AFTER or name == os.environ.get("GPUBP_REHEARSE_WARN_ON_IMPORT"):
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    spec.loader = _Patching(spec.loader, name)
                    return spec
        return None

    def create_module(self, spec: Any) -> Any:
        fake = _fake()
        if spec.name == "cupy":
            return fake
        if spec.name == "cupy.cuda":
            return fake.cuda
        return types.SimpleNamespace(allow_synchronize=_allow_synchronize)

    def exec_module(self, module: Any) -> None:
        pass


class _Patching(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self.loader, self.name = loader, name

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        if self.name == os.environ.get("GPUBP_REHEARSE_WARN_ON_IMPORT"):  # as a newer version of it might
            import warnings

            warnings.warn(f"{self.name}: planted by the rehearsal", DeprecationWarning, stacklevel=2)
        if self.name == "gpubp.network":
            _count_calls(module.MLP, "backprop", lambda net, *a, **k: net.device.is_gpu and "backprop_gpu")
        elif self.name == "gpubp.training":  # a fit on the CPU: host work, as long there as here (or less)
            _count_calls(module.Trainer, "run", lambda t, *a, **k: not t.net.device.is_gpu and "fits_other", timed=True)
        elif self.name == "benchmarks.peers":
            _price_interleaved(module)
        elif self.name == "sklearn.neural_network._multilayer_perceptron":
            _count_calls(module.BaseMultilayerPerceptron, "_fit", lambda est, *a, **k: "fits_other", timed=True)


def _count_calls(cls: type, name: str, key: Any, timed: bool = False) -> None:
    original = getattr(cls, name)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        which = key(self, *args, **kwargs)
        t0 = time.process_time()  # CPU seconds: the work, whatever else shares this machine's cores
        try:
            return original(self, *args, **kwargs)
        finally:
            if which:
                COUNTS[which] += 1
                if timed:
                    COUNTS["fit_other_s"] += time.process_time() - t0

    setattr(cls, name, counted)


def _price_interleaved(peers: Any) -> None:
    """A benchmark row's interleaved rounds last what their time targets say on any machine: each runner (three
    on a GPU machine: gpubp, its GEMMs, PyTorch) calibrated to round_s, then rounds × runners rounds of round_s.
    Their rests are counted by time.sleep."""
    original = peers.interleaved

    def priced(runners: Any, rounds: int = 7, round_s: float = 0.1, settle_s: float = peers.SETTLE_S) -> Any:
        COUNTS["timed_s"] += 3 * round_s * (rounds + 2)
        return original(runners, rounds, round_s, settle_s)

    peers.interleaved = priced


_the_fake: list = []


def _fake() -> Any:
    if not _the_fake:
        sys.path.insert(0, os.path.dirname(_HERE))  # tests/, for fake_gpu
        import fake_gpu

        fake = fake_gpu.FakeCupy(1)  # the GPU machine has one GPU
        fake.cupy = fake
        fake.__path__ = []  # a package: `from cupy.cuda import nccl` asks for cupy.cuda
        fake.cuda.nccl = types.SimpleNamespace(available=False)  # as a CuPy built without NCCL
        _the_fake.append(fake)
    return _the_fake[0]


def _allow_synchronize(allow: bool) -> Any:
    import contextlib

    return contextlib.nullcontext()


def _sleep(seconds: float, _real=time.sleep) -> None:
    if seconds >= 0.05:  # a rest (a benchmark's settle time), not a polling loop's nap
        COUNTS["rests"] += 1
        COUNTS["rest_s"] += seconds
    _real(seconds)


def _write() -> None:
    folder = os.environ.get("GPUBP_REHEARSE_COUNTS")
    if not folder:
        return
    built = sorted(_the_fake[0].compiled) if _the_fake else []  # elementwise kernels per shape class
    line = {"pid": os.getpid(), "argv": sys.argv[:3], "compiled": [list(k) for k in built], **COUNTS}
    step = os.environ.get("GPUBP_RUN_STEP", "plan")
    with open(os.path.join(folder, f"{step}.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def _after_fork() -> None:
    _reset()
    if _the_fake:
        _the_fake[0].compiled.clear()  # the parent's, already counted by the parent


def _terminated(signum: int, frame: Any) -> None:
    """A step killed at its limit (SIGTERM): its counts written first, then the default end."""
    _write()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install() -> None:
    _reset()
    sys.meta_path.insert(0, _Finder())
    time.sleep = _sleep
    os.register_at_fork(after_in_child=_after_fork)
    atexit.register(_write)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
