"""Measuring training throughput: one steady-state training step, timed after warm-up.

Shared by ``gpubp bench`` (a quick table) and the pytest-benchmark suite in ``benchmarks/``.
FLOPs per step: :func:`gpubp.blas.step_flops`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Device
from .blas import blas_threads, step_flops, threads_for
from .network import MLP
from .optim import make_optimizer
from .settings import TrainSettings


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]
    batch: int
    activation: str = "relu"
    dtype: str = "float32"

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} B{self.batch} {self.activation} {self.dtype}"


QUICK_CONFIGS = (
    Config("tiny", (64, 32, 10), 32),
    Config("small", (784, 128, 10), 64),
    Config("gemm", (784, 1024, 1024, 10), 256),
)


class StepRunner:
    """A network, one batch in its workspace, and an optimiser: ``step()`` is one training step."""

    def __init__(self, cfg: Config, device: Device, seed: int = 0) -> None:
        self.cfg, self.device = cfg, device
        self.net = MLP(list(cfg.sizes), cfg.activation, device=device, dtype=cfg.dtype, seed=seed)
        rng = np.random.default_rng(seed)
        self.ws = self.net.workspace(cfg.batch)
        with device.use():
            self.ws.A[0][...] = device.asarray(rng.normal(size=(cfg.batch, cfg.sizes[0])), dtype=cfg.dtype)
            labels = rng.integers(0, cfg.sizes[-1], cfg.batch)
            self.ws.Y[...] = device.asarray(np.eye(cfg.sizes[-1])[labels], dtype=cfg.dtype)
            self.opt = make_optimizer(self.net.params, TrainSettings(lr=1e-3, momentum=0.9))
            self.loss = device.xp.zeros((), np.float64)

    def steps(self, n: int) -> None:
        """``n`` steps (backprop on the batch, then the update: a Trainer's step without the data
        gathering), then wait for the device: what a timer around it measures is the work."""
        for _ in range(n):
            self.net.backprop(self.ws, self.loss)
            self.opt.step()
        self.device.synchronize()


def gemm_runner(cfg: Config, device: Device) -> tuple[Any, int]:
    """(run(n), FLOPs per step): the step's own GEMMs and nothing else, ``n`` times, synchronised.

    The same calls with the same shapes and transposes as a training step: forward
    A_{l-1} W_lᵀ, backward Δ_lᵀ A_{l-1} and Δ_l W_l (not for the first layer). This is the
    ceiling a step's FLOP rate is compared with.
    """
    xp = device.xp
    rng = np.random.default_rng(1)
    B, dt = cfg.batch, cfg.dtype

    def rand(*shape: int) -> Any:
        return device.asarray(rng.normal(size=shape), dtype=dt)

    calls = []
    with device.use():
        for l, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            A, W, Z, delta = rand(B, a), rand(b, a), rand(B, b), rand(B, b)
            calls.append((A, W.T, Z))  # Z_l = A_{l-1} W_lᵀ
            calls.append((delta.T, A, xp.empty((b, a), dt)))  # ∂L/∂W_l = Δ_lᵀ A_{l-1}
            if l > 0:
                calls.append((delta, W, xp.empty((B, a), dt)))  # Δ_l W_l

    def run(n: int) -> None:
        for _ in range(n):
            for x, y, out in calls:
                xp.matmul(x, y, out=out)
        device.synchronize()

    return run, step_flops(cfg.sizes, cfg.batch)


def gemm_rate(cfg: Config, device: Device, seconds: float = 0.3) -> float:
    """FLOP/s of this device's matrix multiply on the step's own GEMM shapes."""
    run, flops = gemm_runner(cfg, device)
    n, elapsed = _time(lambda: run(1), seconds)
    return flops * n / elapsed


def _time(fn: Any, seconds: float) -> tuple[int, float]:
    fn()  # warm-up: compilation, workspaces, BLAS threads
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds or n >= 1 << 20:
            return n, elapsed
        n = max(n * 2, int(n * seconds / max(elapsed, 1e-9) * 1.1))


# rounds whose best and worst step times differ by more than this: the machine was too busy to measure
NOISY_SPREAD = 1.25


def measure(cfg: Config, device: Device, seconds: float = 0.5, rounds: int = 3) -> dict[str, Any]:
    """Samples/s of steady-state training steps, and the FLOP rate against the GEMM ceiling: the best of
    ``rounds`` rounds that alternate the step and its bare GEMMs, so that a busy spell on a shared machine
    slows neither alone. A step cannot outrun its own GEMMs: a step faster than the ceiling means the
    ceiling was measured in a busy spell, and ``fraction_of_gemm`` is then None, not a figure above 100 %.
    ``noisy`` is true when that happened or the rounds' step times spread by more than ``NOISY_SPREAD``."""
    runner = StepRunner(cfg, device)
    threads = None if device.is_gpu else threads_for(cfg.sizes, cfg.batch)
    step_times, ceiling = [], 0.0
    with blas_threads(threads):
        runner.steps(3)  # warm-up: kernels compiled, buffers made
        for _ in range(rounds):
            n, elapsed = _time(lambda: runner.steps(1), seconds / rounds)
            step_times.append(elapsed / n)
            ceiling = max(ceiling, gemm_rate(cfg, device, seconds=min(seconds, 0.3) / rounds))
    step_s = min(step_times)
    flops = step_flops(cfg.sizes, cfg.batch)
    fraction = flops / step_s / ceiling
    spread = max(step_times) / step_s
    return {
        "config": cfg.label,
        "device": device.name,
        "threads": threads,
        "samples_per_s": cfg.batch / step_s,
        "step_ms": 1e3 * step_s,
        "gflops": flops / step_s / 1e9,
        "gemm_gflops": ceiling / 1e9,
        "fraction_of_gemm": fraction if fraction <= 1.0 else None,
        "round_spread": spread,
        "noisy": fraction > 1.0 or spread > NOISY_SPREAD,
    }


def noise_note(rows: list[dict[str, Any]]) -> str | None:
    """One line saying that the figures are not to be trusted, when a row was measured on a busy machine."""
    noisy = [r for r in rows if r.get("noisy")]
    if not noisy:
        return None
    worst = max(r["round_spread"] for r in noisy)
    return (f"too noisy to measure: other work competed for the machine (rounds differed by up to "
            f"{100 * (worst - 1):.0f} %, or a step outran its own GEMMs); run again when it is quiet, "
            f"or with more --seconds")  # fmt: skip


def format_table(rows: list[dict[str, Any]], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"{'configuration':<36} {'device':<7} {'samples/s':>11} {'step ms':>9} "
                     f"{'GFLOP/s':>8} {'GEMM GFLOP/s':>13} {'of GEMM':>8}")  # fmt: skip
    for r in rows:
        lines.append(f"{r['config']:<36} {r['device']:<7} {r['samples_per_s']:>11,.0f} {r['step_ms']:>9.3f} "
                     f"{r['gflops']:>8.1f} {r['gemm_gflops']:>13.1f} {_percent(r['fraction_of_gemm']):>8}"
                     + (" noisy" if r.get("noisy") else ""))  # fmt: skip
    return "\n".join(lines)


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"
