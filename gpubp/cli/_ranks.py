"""The ranks ``gpubp train`` runs on: one process, or every process ``mpiexec -n R`` started.

Under mpiexec each rank parses the same options and loads the same data; rank 0 alone prints,
shows progress and writes files. Every step that can fail on one rank only (a file missing on one
host, bad data) is run through :meth:`Ranks.together`, so a failure anywhere ends every rank with
that rank's message and the same exit status, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..parallel import (
    MPI,
    Communicator,
    Local,
    abort_on_uncaught_exception,
    agree,
    agree_status,
    communicator,
    launched_rank,
    launched_size,
    rank_device,
)
from ._common import UsageError

T = TypeVar("T")


class Ranks:
    """``comm`` (Local for one process), ``root`` (this rank prints and writes), ``size``."""

    def __init__(self) -> None:
        self.size = launched_size()
        self.comm: Communicator = Local()
        self.root = launched_rank() == 0
        if self.size == 1:
            return
        try:
            self.comm = MPI()
        except ImportError as exc:  # every rank stops; only the first says why
            raise UsageError(f"started by mpiexec as {self.size} ranks, but {exc}") from None
        self.size, self.root = self.comm.size, self.comm.rank == 0
        abort_on_uncaught_exception()  # a rank dying alone must not leave the others waiting

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def together(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on every rank; if it raises on any rank, it raises on all (the failing
        rank's message, prefixed with its rank on the others)."""
        result, error = None, None
        try:
            result = fn(*args)
        except Exception as exc:
            error = exc
        agree(self.comm, error)
        return result  # type: ignore[return-value]

    def device(self, spec: str | None) -> str | None:
        """The device this rank builds its network on: under mpiexec ``gpu`` is this rank's GPU
        (parallel.rank_device), chosen before anything is built, so no rank starts on gpu:0."""
        if not self.distributed:
            return spec
        return rank_device(spec)

    def attach(self, net: Any) -> Communicator:
        """The communicator for training ``net``: MPI for CPU networks, NCCL for GPU ones (a GPU
        network moves to ``gpu:<local rank>``)."""
        if not self.distributed:
            return self.comm
        return communicator(net)

    def status(self, code: int) -> int:
        """The exit status every rank returns: the largest any rank has."""
        return agree_status(self.comm, code) if self.distributed else code
