"""Communicators for synchronous data parallelism: every rank holds the model, computes the gradient
of its share of each global batch, one allreduce sums the flat gradient buffer, every rank applies the
same update.

One small protocol, :class:`Communicator`: ``allreduce`` (sum, in place), ``broadcast`` (from rank 0,
in place) and ``any`` ("does any rank say stop?"). Implementations:

- :class:`Local`: one process; everything is a no-op.
- :class:`MPI`: mpi4py over MPI (CPU arrays), the launcher's world (``mpiexec -n R``).
- :class:`NCCL`: CuPy's NCCL for GPU arrays on the current stream, bootstrapped over MPI (the unique
  id is broadcast with mpi4py); host arrays and flags go over MPI. **Never run on a GPU.**

mpi4py is imported only when distributed training is asked for; CuPy only for NCCL.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .backend import gpu_unavailable_reason, is_cupy_array

MPI_HINT = "install MPI for Python with: pip install 'gpubp[mpi]' (mpi4py and the MPICH wheel, which brings mpiexec)"


class Communicator(Protocol):
    """What the Trainer needs from the other ranks."""

    rank: int
    size: int

    def allreduce(self, x: Any) -> None:
        """x ← Σ_ranks x, in place (the same values on every rank)."""

    def broadcast(self, x: Any) -> None:
        """x ← rank 0's x, in place."""

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one."""


class Local:
    """A world of one: nothing to sum, nothing to send."""

    rank, size = 0, 1

    def allreduce(self, x: Any) -> None:
        pass

    def broadcast(self, x: Any) -> None:
        pass

    def any(self, flag: bool) -> bool:
        return bool(flag)


# -- MPI and NCCL -------------------------------------------------------------------------------


def _mpi() -> Any:
    """The mpi4py ``MPI`` module (initialising MPI), or one clear error saying what to install."""
    try:
        from mpi4py import MPI as mpi
    except ImportError as exc:
        raise ImportError(f"distributed training needs mpi4py ({exc}); {MPI_HINT}") from None
    return mpi


class MPI:
    """NumPy arrays over an mpi4py communicator (``COMM_WORLD`` by default)."""

    def __init__(self, comm: Any = None) -> None:
        self.mpi = _mpi()
        self.comm = self.mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce(self, x: Any) -> None:
        self.comm.Allreduce(self.mpi.IN_PLACE, x, op=self.mpi.SUM)

    def broadcast(self, x: Any) -> None:
        self.comm.Bcast(x, root=0)

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(bool(flag), op=self.mpi.LOR))


class NCCL:
    """CuPy arrays summed and broadcast by NCCL on the current stream (no host synchronisation);
    host arrays and flags over MPI, written against ``cupy.cuda.nccl``."""

    def __init__(self, mpi: MPI, device_index: int, cupy: Any = None, nccl: Any = None) -> None:
        if cupy is None:
            import cupy  # type: ignore[no-redef]
        if nccl is None:
            from cupy.cuda import nccl  # type: ignore[no-redef]

        self.mpi, self.cupy, self.nccl = mpi, cupy, nccl
        self.rank, self.size = mpi.rank, mpi.size
        uid = nccl.get_unique_id() if mpi.rank == 0 else None
        uid = mpi.comm.bcast(uid, root=0)
        with cupy.cuda.Device(device_index):
            self.comm = nccl.NcclCommunicator(mpi.size, uid, mpi.rank)
        self._types = {np.dtype("float32"): nccl.NCCL_FLOAT32, np.dtype("float64"): nccl.NCCL_FLOAT64}

    def allreduce(self, x: Any) -> None:
        if not is_cupy_array(x):
            return self.mpi.allreduce(x)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(x.data.ptr, x.data.ptr, x.size, self._types[x.dtype], self.nccl.NCCL_SUM, stream)
        return None

    def broadcast(self, x: Any) -> None:
        if not is_cupy_array(x):
            return self.mpi.broadcast(x)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(x.data.ptr, x.size, self._types[x.dtype], 0, stream)
        return None

    def any(self, flag: bool) -> bool:
        return self.mpi.any(flag)


# -- the world this process was launched in ------------------------------------------------------


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int  # rank among the processes of this machine (MPI's shared-memory split)

    @property
    def is_root(self) -> bool:
        return self.rank == 0


_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _from_launcher(names: tuple[str, ...], default: int) -> int:
    """The first of the launcher's environment variables ``names`` that holds a number, else ``default``."""
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return default


def launched_size() -> int:
    """How many ranks the launcher started, from its environment (MPICH/Intel MPI ``PMI_SIZE``,
    Open MPI ``OMPI_COMM_WORLD_SIZE``, PMIx, MVAPICH), without importing mpi4py; 1 when none says.
    Lets a command decide to train distributed when started by ``mpiexec -n R`` with R > 1."""
    return _from_launcher(_SIZE_VARIABLES, 1)


def launched_rank() -> int:
    """This process's rank according to the launcher's environment (0 when none says), without
    importing mpi4py: lets a rank that cannot start MPI at all stay quiet unless it is rank 0."""
    return _from_launcher(_RANK_VARIABLES, 0)


def world() -> World:
    """(rank, size, local rank) of this process in the MPI world (imports mpi4py). With several ranks it
    also installs :func:`abort_on_uncaught_exception`, so that a script whose rank fails alone (before
    or outside training) ends the job instead of leaving the others waiting in a collective.
    It is itself collective (the local rank comes from splitting the world by node): call it on every
    rank, never on rank 0 alone, or the job hangs."""
    mpi = _mpi()
    comm = mpi.COMM_WORLD
    if comm.Get_size() > 1:
        abort_on_uncaught_exception()
    local = comm.Split_type(mpi.COMM_TYPE_SHARED)
    try:
        return World(comm.Get_rank(), comm.Get_size(), local.Get_rank())
    finally:
        local.Free()


def node_gpu(local_rank: int, count: int, visible: list[str | None]) -> int:
    """The index (among the GPUs this process sees) of the GPU for the rank ``local_rank`` of a machine whose
    ranks see ``count`` GPUs each and were started with ``visible[r]`` as their CUDA_VISIBLE_DEVICES (None:
    unset). Ranks that all see the same GPUs take one each, in local rank order; a launcher that sets
    CUDA_VISIBLE_DEVICES per rank (Slurm's --gpus-per-task, a wrapper script) gave each rank its own, and
    each takes the first it sees. Anything else (more ranks than GPUs, two ranks given the same GPU) is one
    RuntimeError saying what to change."""
    if count < 1:
        raise RuntimeError(f"local rank {local_rank} sees no GPU (CUDA_VISIBLE_DEVICES={visible[local_rank]!r})")
    if all(v == visible[0] for v in visible):
        if len(visible) > count:
            raise RuntimeError(f"this machine runs {len(visible)} ranks but they see {count} GPU(s): start at most "
                               f"{count} ranks per machine, give each rank its own GPU through "
                               f"CUDA_VISIBLE_DEVICES, or train on the CPU")  # fmt: skip
        return local_rank
    firsts = [None if v is None else v.split(",")[0].strip() for v in visible]
    for r, first in enumerate(firsts):
        if first is None or firsts.index(first) != r:
            other = firsts.index(first)
            raise RuntimeError(f"local ranks {other} and {r} would train on the same GPU (CUDA_VISIBLE_DEVICES "
                               f"{visible[other]!r} and {visible[r]!r}): give each rank its own GPU")  # fmt: skip
    return 0


def nccl_or_reason(xp: Any) -> tuple[Any, str | None]:
    """(CuPy's NCCL module, None), or (None, why NCCL is unusable here) without raising."""
    nccl = getattr(xp.cuda, "nccl", None)
    if nccl is None:
        try:
            from cupy.cuda import nccl  # type: ignore[no-redef]
        except ImportError as exc:
            return None, f"this CuPy has no NCCL module ({exc})"
    if not getattr(nccl, "available", False):
        return None, ("CuPy could not load the NCCL library (libnccl.so.2); install it, e.g. pip install "
                      "'nvidia-nccl-cu12' (CUDA 12) or 'nvidia-nccl-cu13' (CUDA 13), or train on the CPU")  # fmt: skip
    return nccl, None


def _rank_gpu(mpi: MPI, w: World, xp: Any) -> int:
    """This rank's GPU index (see :func:`node_gpu`); every rank must call it (one host allgather)."""
    import os
    import socket

    mine = (socket.gethostname(), w.local_rank, os.environ.get("CUDA_VISIBLE_DEVICES"))
    everyone = mpi.comm.allgather(mine)
    node = sorted((r, v) for host, r, v in everyone if host == mine[0])
    return node_gpu(w.local_rank, xp.cuda.runtime.getDeviceCount(), [v for _, v in node])


def rank_device(spec: str | None) -> str | None:
    """The device this rank of an MPI job should build its network on: ``gpu`` (or ``cuda``, or ``auto`` where a
    GPU answers) becomes ``gpu:<this rank's GPU>`` (see :func:`node_gpu`), so that no rank first builds on
    gpu:0; anything else (``cpu``, ``gpu:N``) is kept. None means the default device (``GPUBP_DEVICE`` or
    ``auto``). With one process it returns ``spec``. Every rank must call it."""
    import os

    from .backend import get_device

    w = world()
    wanted = spec if spec is not None else (os.environ.get("GPUBP_DEVICE") or "auto")
    if w.size == 1 or str(wanted).strip().lower() not in ("gpu", "cuda", "auto"):
        return spec
    mpi = MPI()
    index, error = None, None
    try:
        device = get_device(wanted)
        if device.is_gpu:
            index = _rank_gpu(mpi, w, device.xp)
    except Exception as exc:
        error = exc
    agree(mpi, error)
    return spec if index is None else f"gpu:{index}"


def communicator(net: Any) -> Communicator:
    """The communicator for training ``net`` across the MPI world of this process: Local for one
    process, MPI for CPU networks, NCCL for GPU networks. Under MPI a GPU network moves to this rank's GPU
    (see :func:`node_gpu`; build it there with :func:`rank_device` to start on it). NCCL missing, a machine
    with fewer GPUs than ranks, or two ranks given one GPU: one clear error on every rank."""
    w = world()
    if w.size == 1:
        return Local()
    mpi = MPI()
    if not net.device.is_gpu:
        return mpi
    error, nccl, index = None, None, None
    try:
        nccl, reason = nccl_or_reason(net.xp)
        if reason is not None:
            raise RuntimeError(f"training a GPU network across {w.size} ranks needs NCCL: {reason}")
        index = _rank_gpu(mpi, w, net.xp)
        if net.device.index != index:
            net.to(f"gpu:{index}")
    except Exception as exc:
        error = exc
    agree(mpi, error)
    assert index is not None  # agree raised on every rank otherwise
    return NCCL(mpi, index, net.xp, nccl)


def status() -> dict[str, Any]:
    """Whether MPI (mpi4py + mpiexec) and NCCL (through CuPy) are usable here, and why not, without
    initialising MPI or touching a GPU (for ``gpubp info``)."""
    info: dict[str, Any] = {}
    if importlib.util.find_spec("mpi4py") is None:
        info["mpi"] = {"available": False, "reason": f"mpi4py is not installed; {MPI_HINT}"}
    else:
        beside = Path(sys.executable).with_name("mpiexec")
        launcher = str(beside) if beside.exists() else shutil.which("mpiexec")
        info["mpi"] = {"available": launcher is not None, "mpiexec": launcher}
        if launcher is None:
            info["mpi"]["reason"] = f"mpi4py is installed but no mpiexec was found; {MPI_HINT}"
    reason = gpu_unavailable_reason()
    if reason is None:
        from cupy.cuda import nccl

        ok = bool(getattr(nccl, "available", False))
        info["nccl"] = {"available": ok}
        if not ok:
            info["nccl"]["reason"] = "CuPy was built or installed without NCCL (see docs/distributed.md: GPUs and NCCL)"
    else:
        info["nccl"] = {"available": False, "reason": f"needs a usable GPU ({reason})"}
    return info


# -- the data-parallel step: what the Trainer does with the other ranks ----------------------------


class DataParallel:
    """The Trainer's side of data parallelism over ``comm``: each rank's share of a global batch, the
    step (this rank's gradient, summed over the ranks, the same update everywhere), decisions taken
    on rank 0 for all, and making every rank start from rank 0's training state. With one rank
    (``Local``) each is what one process does, without a collective."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm
        self.size, self.rank = comm.size, comm.rank
        self._inv_b: dict[int, Any] = {}
        self.probe: Callable[[Any], None] | None = (
            None  # probe(ws) between the summed gradient and the update (Trainer.probe)
        )

    def share(self, batch: int) -> slice:
        """This rank's contiguous part of a global batch: the first ``batch mod R`` ranks take one row
        more; a rank may get none (it then contributes a zero gradient)."""
        base, extra = divmod(batch, self.size)
        r = self.rank
        lo = r * base + min(r, extra)
        return slice(lo, lo + base + (r < extra))

    def step(self, net: Any, optimizer: Any, ws: Any, loss_acc: Any, batch: int) -> None:
        """One minibatch: the gradient of this rank's rows (in ws) by backprop, summed over the
        ranks, then the same update everywhere. Each rank's Δ_L carries 1/B of the global batch B,
        so the sum is the gradient of the global batch mean."""
        if self.size == 1:  # nothing to sum: Local's allreduce is a no-op (a call saved per step)
            net.backprop(ws, loss_acc)
            if self.probe is not None:
                self.probe(ws)
            optimizer.step()
            return
        inv_b = self._inv_b.get(batch)
        if inv_b is None:
            inv_b = self._inv_b[batch] = net.dtype.type(1.0 / batch)
        net.backprop(ws, loss_acc, inv_b)
        self.comm.allreduce(net.params.grad)  # one call over the flat gradient buffer
        if self.probe is not None:
            self.probe(ws)
        optimizer.step()

    def ask(self, fn: Any, *args: Any) -> bool:
        """``fn(*args)`` as a stop decision: with several ranks it runs on rank 0 only and every rank
        gets its answer (an exception there is raised on every rank)."""
        if self.size == 1:
            return bool(fn(*args))
        answer, error = False, None
        if self.rank == 0:
            try:
                answer = bool(fn(*args))
            except Exception as exc:
                error = exc
        agree(self.comm, error)
        return self.comm.any(answer)

    def on_root(self, fn: Callable[[], dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
        """``fn()`` (a dict of numbers) computed on rank 0 and broadcast: its ``keys`` on every rank."""
        if self.size == 1:
            return fn()
        values, error = np.zeros(len(keys)), None
        if self.rank == 0:
            try:
                result = fn()
                values[:] = [result[k] for k in keys]
            except Exception as exc:
                error = exc
        agree(self.comm, error)
        self.comm.broadcast(values)
        return {k: float(v) for k, v in zip(keys, values)}

    def broadcast_numbers(self, numbers: list[float]) -> list[float]:
        """Rank 0's ``numbers`` (as float64), on every rank."""
        header = np.array(numbers, np.float64)
        self.comm.broadcast(header)
        return [float(v) for v in header]

    def broadcast_named(self, numbers: dict[str, float]) -> dict[str, float]:
        """Rank 0's ``numbers`` (as float64), by the same names on every rank."""
        return dict(zip(numbers, self.broadcast_numbers(list(numbers.values()))))

    def broadcast_state(self, order: Any, flats: list[Any], rng: Any) -> Any:
        """Rank 0's row order (an int64 array of the same length on every rank, or None to send none,
        on every rank alike), flat buffers ``flats`` (in place) and NumPy Generator ``rng``'s state (in
        place), on every rank; returns the order."""
        comm = self.comm
        if order is not None:
            order = np.array(order, np.int64)
            comm.broadcast(order)
        for flat in flats:
            comm.broadcast(flat)
        bits = rng.bit_generator
        words = _rng_words(bits.state)
        comm.broadcast(words)
        bits.state = _rng_state(bits.state, words)
        return order


def _rng_words(state: dict[str, Any]) -> np.ndarray:
    """A PCG64 state as six uint64 words (to broadcast it)."""
    inner, mask = state["state"], (1 << 64) - 1
    return np.array([inner["state"] >> 64, inner["state"] & mask, inner["inc"] >> 64, inner["inc"] & mask,
                     state["has_uint32"], state["uinteger"]], np.uint64)  # fmt: skip


def _rng_state(like: dict[str, Any], words: np.ndarray) -> dict[str, Any]:
    w = [int(v) for v in words]
    return {**like, "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
            "has_uint32": w[4], "uinteger": w[5]}  # fmt: skip


# -- agreeing on errors and exit status ----------------------------------------------------------

_MESSAGE_BYTES = 2000
_TYPES = {t.__name__: t for t in (ValueError, TypeError, RuntimeError, FileNotFoundError, ImportError, OSError)}


def agree(comm: Communicator, error: BaseException | None) -> None:
    """Raise on every rank if any rank has an ``error`` (never a hang): the failing rank re-raises
    its own, the others the same type with the lowest failing rank's message. Two host allreduces."""
    if comm.size == 1:
        if error is not None:
            raise error
        return
    failed = np.zeros(comm.size)
    failed[comm.rank] = error is not None
    comm.allreduce(failed)
    if not failed.any():
        return
    first = int(np.flatnonzero(failed)[0])
    text = np.zeros(_MESSAGE_BYTES, np.uint8)
    if comm.rank == first:
        raw = f"{type(error).__name__}\n{error}".encode()[:_MESSAGE_BYTES]
        text[: len(raw)] = np.frombuffer(raw, np.uint8)
    comm.allreduce(text)
    if error is None:
        name, _, message = bytes(text).rstrip(b"\0").decode(errors="replace").partition("\n")
        error = _TYPES.get(name, RuntimeError)(f"rank {first}: {message}")
    raise on_every_rank(error)


def on_every_rank(error: BaseException) -> BaseException:
    """Mark ``error`` as raised by every rank together (so a command can exit normally on each,
    instead of aborting the job as it must for an error of one rank alone)."""
    error.on_every_rank = True  # type: ignore[attr-defined]
    return error


def agree_status(comm: Communicator, status: int) -> int:
    """The exit status every rank should use: the largest any rank reports (0 only if all are 0).
    Every rank must call it (one host allreduce)."""
    statuses = np.zeros(comm.size)
    statuses[comm.rank] = status
    comm.allreduce(statuses)
    return int(statuses.max())


def abort_on_uncaught_exception() -> None:
    """Under MPI, make an exception that escapes on one rank end the whole job (MPI_Abort) after
    printing it, instead of leaving the other ranks waiting in a collective forever. Errors that
    every rank raises together (see :func:`agree`) should be caught and turned into one exit status
    with :func:`agree_status`; this is the net for everything else (as ``python -m mpi4py`` does)."""
    previous = sys.excepthook
    if getattr(previous, "_gpubp_abort", False):
        return  # installed already

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        mpi = _mpi()
        world = mpi.COMM_WORLD
        # the message first: the traceback after it may be cut when the launcher tears the job down
        print(f"rank {world.Get_rank()}: {kind.__name__}: {value}", file=sys.stderr, flush=True)
        previous(kind, value, tb)
        sys.stderr.flush()
        if world.Get_size() > 1:
            time.sleep(0.2)  # let the launcher forward this rank's stderr before the abort
            world.Abort(130 if issubclass(kind, KeyboardInterrupt) else 1)

    hook._gpubp_abort = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class StopOnInterrupt:
    """Inside the block, the first Ctrl-C (SIGINT) sets ``requested`` instead of raising, so that
    training stops at the end of a batch on every rank together: pass
    ``on_batch=lambda i, n: flag.requested`` (under MPI it runs on rank 0 and its answer reaches
    all ranks; ``mpiexec`` forwards Ctrl-C to every rank). A second Ctrl-C raises as usual. Main
    thread only (where Python delivers signals)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._previous)
