"""The data-parallel scaling model of docs/scaling.md: prints its tables and draws docs/scaling.png.

Step time with R ranks, each computing on b rows (global batch B = R·b):

    T(R, b) = T_c(b) + T_ar(R)
    T_c(b)  = t_0 + b · t_row                        compute of one device on b rows
    T_ar(R) = 2(R−1)/R · P / β + 2(R−1) · α          ring allreduce of P bytes, bus bandwidth β, latency α

Across nodes the allreduce is hierarchical, as NCCL arranges it on multi-rail clusters: a ring
inside each node over NVLink, then a ring across the N nodes on each of the 8 rails carrying 1/8 of
the bytes: T_ar = T_ring(NVLink, 8, P) + T_ring(InfiniBand, N, P/8).

gpubp runs the allreduce after the δ recursion, not overlapped with it, so the two terms add.
Scaling efficiency at a fixed per-rank batch b (weak scaling) is T_c(b) / T(R, b).

Run: .venv/bin/python scripts/scaling_model.py [--plot docs/scaling.png]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

from gpubp.blas import step_flops

NETS = {  # the benchmark networks, with the batch each is benchmarked at
    "784-1024-1024-10": ((784, 1024, 1024, 10), 256),
    "4096-4096-4096-10": ((4096, 4096, 4096, 10), 512),
    "784-128-10": ((784, 128, 10), 64),
    "64-32-10": ((64, 32, 10), 32),
}


@dataclass(frozen=True)
class Link:
    """A collective's bus: bandwidth β (bytes/s, as nccl-tests' "busbw") and latency α per ring step."""

    name: str
    beta: float
    alpha: float


# Assumptions (sources in docs/scaling.md): NVLink 4 inside an 8-GPU H100 node, and 400 Gb/s NDR
# InfiniBand, one adapter per GPU, across nodes (a ring across nodes runs at the slowest link).
NVLINK = Link("NVLink, 8 GPUs in a node", beta=400e9, alpha=1.5e-6)
INFINIBAND = Link("InfiniBand NDR, 8 nodes × 8 GPUs", beta=45e9, alpha=5e-6)
GPUS_PER_NODE = 8

# Compute per device. The H100's cuBLAS float32 rate and CuPy's per-launch cost are assumptions
# until a GPU run of the benchmark suite measures the step (then replace t_0 and t_row with it).
H100_FP32_FLOPS = 0.7 * 67e12  # 70 % of the datasheet's 67 TFLOP/s float32 (SXM), non-tensor-core
CUPY_LAUNCH_S = 8e-6  # host time per kernel call from Python (CuPy eager)


def kernels_per_step(sizes: tuple[int, ...]) -> int:
    """Kernel calls in one eager gpubp step on the GPU: per layer a matmul and the fused bias +
    activation forward; ∂W, ∂b, and (below the top layer) Δ W and g′ backward; the loss terms, their
    sum and Δ_L; the optimiser's two calls on the flat buffers (weights, biases); the batch gathers."""
    L = len(sizes) - 1
    return 2 * L + 2 * L + 2 * (L - 1) + 3 + 2 + 2


def gpu_compute(sizes: tuple[int, ...], rows: float) -> float:
    """T_c on one H100, by the assumptions above: launch-bound or FLOP-bound, whichever is slower."""
    return max(kernels_per_step(sizes) * CUPY_LAUNCH_S, step_flops(sizes, 1) * rows / H100_FP32_FLOPS)


def param_bytes(sizes: tuple[int, ...], itemsize: int = 4) -> int:
    return itemsize * sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes))


def ring(link: Link, ranks: int, nbytes: float) -> float:
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / link.beta + 2 * (ranks - 1) * link.alpha


def allreduce(ranks: int, nbytes: float) -> float:
    """One node: a ring over NVLink; several: the hierarchical allreduce described above."""
    if ranks <= GPUS_PER_NODE:
        return ring(NVLINK, ranks, nbytes)
    nodes = -(-ranks // GPUS_PER_NODE)
    return ring(NVLINK, GPUS_PER_NODE, nbytes) + ring(INFINIBAND, nodes, nbytes / GPUS_PER_NODE)


def efficiency(sizes: tuple[int, ...], rows: float, ranks: int) -> float:
    compute = gpu_compute(sizes, rows)
    return compute / (compute + allreduce(ranks, param_bytes(sizes)))


def batch_for(sizes: tuple[int, ...], ranks: int, target: float = 0.9) -> int | None:
    """The smallest per-GPU batch (a power of two up to 2^20) reaching ``target`` efficiency."""
    for k in range(21):
        if efficiency(sizes, 2**k, ranks) >= target:
            return 2**k
    return None


def table() -> list[str]:
    lines = ["| network | params (MB) | per-GPU batch | T_c (µs) | allreduce 8 (µs) | eff. 8 | "
             "allreduce 64 (µs) | eff. 64 | batch for 90 %: 8 / 64 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, (sizes, batch) in NETS.items():
        P = param_bytes(sizes)
        ar8, ar64 = allreduce(8, P), allreduce(64, P)
        b8, b64 = batch_for(sizes, 8), batch_for(sizes, 64)
        lines.append(
            f"| {name} | {P / 1e6:.2f} | {batch} | {gpu_compute(sizes, batch) * 1e6:.0f} | {ar8 * 1e6:.0f} | "
            f"{efficiency(sizes, batch, 8):.0%} | {ar64 * 1e6:.0f} | "
            f"{efficiency(sizes, batch, 64):.0%} | {b8 or '> 1M'} / {b64 or '> 1M'} |"
        )
    return lines


def plot(path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    rows = [2**k for k in range(4, 17)]
    for ax, ranks, title in ((axes[0], 8, "8 GPUs in one node (NVLink)"),
                             (axes[1], 64, "64 GPUs in 8 nodes (NVLink + InfiniBand)")):  # fmt: skip
        for name, (sizes, _) in NETS.items():
            ax.semilogx(rows, [efficiency(sizes, b, ranks) for b in rows], marker="o", ms=3, label=name)
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.set_title(title)
        ax.set_xlabel("rows per GPU per step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("scaling efficiency (model)")
    axes[0].legend(fontsize=8)
    fig.suptitle("gpubp data parallelism: modelled efficiency against per-GPU batch (H100, float32)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PNG", help="also draw the efficiency curves to this file")
    args = parser.parse_args()
    print("\n".join(table()))
    if args.plot:
        plot(args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
