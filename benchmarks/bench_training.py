"""Minibatch training throughput: gpubp against PyTorch and the matrix-multiply ceiling, per device.

In ``make test`` every benchmark runs once as a smoke test (``--benchmark-disable``). ``make bench``
times them for real; each gpubp benchmark then also runs an interleaved comparison (gpubp, PyTorch,
bare GEMMs of the same shapes, alternating round by round) whose medians the report uses for the
ratios, so that noise on this shared machine hits all three alike.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.peers import SETTLE_S, TorchStep, calibrate, cpu_threads, interleaved, torch_or_reason
from gpubp.backend import get_device
from gpubp.bench import Config, StepRunner, gemm_runner
from gpubp.blas import step_flops, threads_for

CPU_THREADS = int(os.environ.get("GPUBP_BENCH_THREADS", os.cpu_count() or 1))

CONFIGS = [
    Config("gemm-bound", (784, 1024, 1024, 10), 256, "relu"),
    Config("gemm-bound", (784, 1024, 1024, 10), 256, "sigmoid"),
    Config("large", (4096, 4096, 4096, 10), 512, "relu"),
    Config("small", (784, 128, 10), 64, "relu"),
    Config("small", (784, 128, 10), 64, "sigmoid"),
    Config("tiny", (64, 32, 10), 32, "relu"),
    Config("tiny", (64, 32, 10), 32, "sigmoid"),
    Config("gemm-bound", (784, 1024, 1024, 10), 256, "relu", "float64"),
    Config("tiny", (64, 32, 10), 32, "relu", "float64"),
]
BATCH_SWEEP = [Config("batch-sweep", (784, 512, 10), b, "relu") for b in (32, 128, 512, 2048, 8192)]
WIDTH_SWEEP = [Config("width-sweep", (784, w, 10), 256, "relu") for w in (64, 256, 1024, 4096)]
ALL = CONFIGS + BATCH_SWEEP + WIDTH_SWEEP


def _threads(cfg: Config, device) -> int:
    """BLAS and PyTorch threads: by step size on the CPU; the host's cores beside a GPU."""
    return CPU_THREADS if device.is_gpu else threads_for(cfg.sizes, cfg.batch, CPU_THREADS)


def _skip_float64_on_gpu(cfg: Config, device) -> None:
    if device.is_gpu and cfg.dtype == "float64":
        pytest.skip("float64 rows are measured on the CPU only")


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: f"{c.name}:{c.label.replace(' ', '-')}")
def test_gpubp_step(benchmark, cfg, device):
    device = get_device(device)
    _skip_float64_on_gpu(cfg, device)
    benchmark.group = f"{cfg.name} {cfg.label}"
    runner = StepRunner(cfg, device)
    threads = _threads(cfg, device)
    with cpu_threads(threads):
        runner.steps(2)  # warm-up: kernels compiled, buffers made
        n = 1 if benchmark.disabled else calibrate(runner.steps, 2e-3)  # rounds of >= 2 ms
        benchmark.extra_info.update(config=cfg.label, kind=cfg.name, device=device.name, batch=cfg.batch,
                                    sizes=list(cfg.sizes), steps_per_round=n, threads=threads,
                                    flops_per_step=step_flops(cfg.sizes, cfg.batch))  # fmt: skip
        benchmark.pedantic(runner.steps, args=(n,), rounds=1 if benchmark.disabled else 15,
                           warmup_rounds=0 if benchmark.disabled else 1)  # fmt: skip
        if benchmark.disabled:
            return
        runners = {"gpubp": runner.steps}
        gemm, gemm_flops = gemm_runner(cfg, device)
        runners["gemm"] = gemm
        torch, reason = torch_or_reason()
        if torch is not None and (not device.is_gpu or torch.cuda.is_available()):
            runners["torch"] = TorchStep(cfg, "cuda" if device.is_gpu else "cpu").steps
        else:
            benchmark.extra_info["torch_absent"] = reason or "PyTorch has no CUDA device here"
        # no rest between a GPU row's rounds: the rest lets a CPU thread pool stop spinning, and a GPU row has
        # none (7 rounds × 3 runners × 0.3 s would be 6 s a row for nothing)
        medians = interleaved(runners, rounds=7, settle_s=0.0 if device.is_gpu else SETTLE_S)
    info = benchmark.extra_info
    info["loadavg"] = os.getloadavg()
    info["gpubp_samples_per_s"] = cfg.batch / medians["gpubp"]
    info["gemm_rate"] = gemm_flops / medians["gemm"]  # FLOP/s of the step's own GEMMs: the ceiling
    info["fraction_of_gemm"] = step_flops(cfg.sizes, cfg.batch) / medians["gpubp"] / info["gemm_rate"]
    if "torch" in medians:
        info["torch_samples_per_s"] = cfg.batch / medians["torch"]
        info["gpubp_over_torch"] = medians["torch"] / medians["gpubp"]


@pytest.mark.parametrize("cfg", CONFIGS[:7], ids=lambda c: f"{c.name}:{c.label.replace(' ', '-')}")
def test_torch_step(benchmark, cfg, device):
    """PyTorch on its own, in the same group as gpubp's row (the report's ratios come from the
    interleaved runs in test_gpubp_step)."""
    device = get_device(device)
    torch, reason = torch_or_reason()
    if torch is None:
        pytest.skip(reason)
    if device.is_gpu and not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA device")
    benchmark.group = f"{cfg.name} {cfg.label}"
    peer = TorchStep(cfg, "cuda" if device.is_gpu else "cpu")
    with cpu_threads(_threads(cfg, device)):
        peer.steps(2)
        benchmark.extra_info.update(config=cfg.label, device=device.name, peer="torch")
        benchmark.pedantic(peer.steps, args=(1,), rounds=1 if benchmark.disabled else 15,
                           warmup_rounds=0 if benchmark.disabled else 1)  # fmt: skip
