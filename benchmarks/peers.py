"""The same training step in PyTorch (the peer), and an interleaved timer for fair ratios.

The PyTorch step is the idiomatic one: ``nn.Sequential`` of ``Linear`` layers and activations,
``F.cross_entropy`` on the logits (softmax + cross-entropy, as gpubp's default pair),
``torch.optim.SGD`` with momentum 0.9, ``zero_grad(set_to_none=True)``, ``backward()``, ``step()``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from gpubp.bench import Config
from gpubp.blas import blas_threads


def torch_or_reason():
    try:
        import torch
    except ImportError as exc:
        return None, f"PyTorch is not installed ({exc}): pip install torch to compare"
    return torch, None


@contextmanager
def cpu_threads(n: int):
    """The same thread count for NumPy's BLAS and for PyTorch, inside the block."""
    torch, _ = torch_or_reason()
    old = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        if torch:
            torch.set_num_threads(old)


class TorchStep:
    """One PyTorch training step on a fixed batch; ``steps(n)`` synchronises CUDA at the end."""

    def __init__(self, cfg: Config, device: str, seed: int = 0) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        self.device = device
        dtype = getattr(torch, cfg.dtype)
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}[cfg.activation]
        layers: list = []
        for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(cfg.sizes) - 2:
                layers.append(act())
        self.model = nn.Sequential(*layers).to(device=device, dtype=dtype)
        rng = np.random.default_rng(seed)
        self.x = torch.tensor(rng.normal(size=(cfg.batch, cfg.sizes[0])), dtype=dtype, device=device)
        self.y = torch.tensor(rng.integers(0, cfg.sizes[-1], cfg.batch), device=device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.loss_fn = torch.nn.functional.cross_entropy

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.step()
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()


def calibrate(fn: Callable[[int], None], target_s: float) -> int:
    """How many steps make one timed round last about ``target_s``."""
    fn(1)
    n = 1
    while True:
        t0 = time.perf_counter()
        fn(n)
        elapsed = time.perf_counter() - t0
        if elapsed >= target_s / 4 or n >= 1 << 16:
            return max(1, int(n * target_s / max(elapsed, 1e-9)))
        n *= 4


# How long a thread pool keeps a core busy after its last call. OpenBLAS's workers busy-wait for
# 2^28 cycles by default (its THREAD_TIMEOUT, ~0.1 s), OpenMP's (PyTorch's) for a spin count: measured
# here, a PyTorch 2-thread step right after a gpubp round was 2.2-2.7x slower with a 0.05 s pause
# (OpenBLAS's worker still spinning on the second core), 2.2x at 0.1 s, unchanged from 0.15 s on.
SETTLE_S = 0.3


def interleaved(runners: dict[str, Callable[[int], None]], rounds: int = 7, round_s: float = 0.1,
                settle_s: float = SETTLE_S) -> dict[str, float]:  # fmt: skip
    """Seconds per call of each runner, median over rounds that alternate between the runners,
    so a slow spell on a noisy machine hits all of them alike. Before each round the machine
    rests ``settle_s``, so that the previous runner's spinning thread pool has stopped."""
    counts = {name: calibrate(fn, round_s) for name, fn in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            time.sleep(settle_s)  # the previous runner's pool must not steal a core from this one
            t0 = time.perf_counter()
            fn(counts[name])
            times[name].append((time.perf_counter() - t0) / counts[name])
    return {name: statistics.median(t) for name, t in times.items()}
