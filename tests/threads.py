"""R ranks as threads of one process: a Communicator world for fast unit tests of data parallelism."""

from __future__ import annotations

import threading
from typing import Any


class ThreadWorld:
    """R ranks as threads of this process, for unit tests: ``ThreadWorld(3).run(fn)`` calls
    ``fn(comm)`` on three threads and returns the three results (the first exception is raised).
    Sums are taken in rank order, so every rank gets bitwise the same values."""

    def __init__(self, size: int, timeout: float = 60.0) -> None:
        self.size = size
        self._barrier = threading.Barrier(size, timeout=timeout)
        self._slots: list[Any] = [None] * size

    def run(self, fn: Any) -> list[Any]:
        results: list[Any] = [None] * self.size
        errors: list[BaseException | None] = [None] * self.size

        def main(rank: int) -> None:
            try:
                results[rank] = fn(_ThreadComm(self, rank))
            except BaseException as exc:
                errors[rank] = exc
                self._barrier.abort()  # the others fail instead of waiting forever

        threads = [threading.Thread(target=main, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)), None)
        if first is None:
            first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return results


class _ThreadComm:
    def __init__(self, world: ThreadWorld, rank: int) -> None:
        self.world, self.rank, self.size = world, rank, world.size

    def _exchange(self, value: Any) -> list[Any]:
        slots = self.world._slots
        slots[self.rank] = value
        self.world._barrier.wait()
        seen = list(slots)
        self.world._barrier.wait()  # nobody overwrites a slot before all have read it
        return seen

    def allreduce(self, x: Any) -> None:
        seen = self._exchange(x.copy())
        total = seen[0].copy()
        for part in seen[1:]:
            total += part
        x[...] = total

    def broadcast(self, x: Any) -> None:
        seen = self._exchange(x.copy())
        x[...] = seen[0]

    def any(self, flag: bool) -> bool:
        return any(self._exchange(bool(flag)))
