"""Data-parallel scaling on this machine: samples/s with 1 and 2 MPI ranks (1 BLAS thread each), the
scaling efficiency, and the time per step spent in the gradient allreduce.

    python -m benchmarks.mpi_scaling            # runs mpiexec -n 1 and -n 2, writes benchmarks/mpi_results.json
    mpiexec -n R python -m benchmarks.mpi_scaling --rank-run   # one measurement (what the above starts)

Each configuration trains a Trainer over MPI on random data for a few epochs after one warm-up epoch.
The allreduce time is the wall time of the gradient allreduce calls on rank 0, so it includes any
waiting for the slower rank (load imbalance shows up there, not in compute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = [
    ("gemm-bound", [784, 1024, 1024, 10], 256, 20),
    ("small", [784, 128, 10], 64, 200),
    ("tiny", [64, 32, 10], 32, 400),
]  # (name, sizes, global batch, steps per epoch)
EPOCHS = 3


class TimedComm:
    """A communicator that times its allreduce calls on the flat gradient (every other call passes)."""

    def __init__(self, comm, grad) -> None:
        self.comm, self.grad, self.rank, self.size, self.seconds = comm, grad, comm.rank, comm.size, 0.0

    def allreduce(self, x) -> None:
        if x is self.grad:
            t0 = time.perf_counter()
            self.comm.allreduce(x)
            self.seconds += time.perf_counter() - t0
        else:
            self.comm.allreduce(x)

    def broadcast(self, x) -> None:
        self.comm.broadcast(x)

    def any(self, flag: bool) -> bool:
        return self.comm.any(flag)


def allreduce_alone(comm, grad, repeats: int = 50) -> float:
    """Median seconds of one gradient allreduce started by both ranks together (after a barrier), so
    that waiting for a slower rank is left out."""
    times = []
    for _ in range(repeats):
        comm.comm.Barrier()
        t0 = time.perf_counter()
        comm.allreduce(grad)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def rank_run() -> None:
    import gpubp
    import gpubp.training
    from gpubp.parallel import MPI, Local, world
    from gpubp.training import make_trainer

    gpubp.training.threads_for = lambda *args, **kwargs: 1  # 1 BLAS thread per rank, also with 1 rank
    me = world()
    comm = MPI() if me.size > 1 else Local()
    results = []
    for name, sizes, batch, steps in CONFIGS:
        rng = np.random.default_rng(0)
        n = batch * steps
        X = rng.normal(size=(n, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], n)
        net = gpubp.MLP(sizes, "relu", device="cpu", seed=0)
        timed = TimedComm(comm, net.params.grad)
        trainer = make_trainer(net, X, y, timed, batch_size=batch, lr=0.01, momentum=0.9)
        trainer.run(1)  # warm-up: workspaces, scratch buffers
        timed.seconds = 0.0
        t0 = time.perf_counter()
        trainer.run(1 + EPOCHS)
        seconds = time.perf_counter() - t0
        alone = allreduce_alone(comm, net.params.grad) if me.size > 1 else 0.0
        results.append({"config": f"{name} {'-'.join(map(str, sizes))} B{batch}", "ranks": me.size,
                        "samples_per_s": n * EPOCHS / seconds, "step_ms": 1e3 * seconds / (steps * EPOCHS),
                        "allreduce_ms": 1e3 * timed.seconds / (steps * EPOCHS), "allreduce_alone_ms": 1e3 * alone,
                        "param_bytes": int(net.params.theta.nbytes)})  # fmt: skip
    if me.is_root:
        print(json.dumps(results))


def main() -> None:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    for ranks in (1, 2):
        cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "benchmarks.mpi_scaling", "--rank-run"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    one = {r["config"]: r for r in rows if r["ranks"] == 1}
    for r in rows:
        r["efficiency"] = r["samples_per_s"] / (r["ranks"] * one[r["config"]]["samples_per_s"])
    result = {"loadavg": os.getloadavg(), "cores": os.cpu_count(), "rows": rows}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(table()))


RESULTS = Path(__file__).with_name("mpi_results.json")


def table(path: Path = RESULTS) -> list[str]:
    """The measured rows as a Markdown section for RESULTS.md (empty when never measured)."""
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    lines = ["## Data parallelism: 1 and 2 MPI ranks (CPU, 1 BLAS thread each)", "",
             "`python -m benchmarks.mpi_scaling`: each rank computes on its share of the global batch, then one "
             "allreduce of the flat gradient. Efficiency = samples/s ÷ (ranks × samples/s of 1 rank). The allreduce "
             "time per step includes waiting for the slower rank; 'alone' is one allreduce started by both ranks "
             "together (after a barrier). Load average at the end: "
             f"{', '.join(f'{v:.1f}' for v in result['loadavg'])} on {result['cores']} cores.", "",
             "| configuration | gradient bytes | ranks | samples/s | step ms | allreduce ms/step | allreduce alone ms "
             "| efficiency |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['param_bytes']:,} | {r['ranks']} | {r['samples_per_s']:,.0f} | "
                     f"{r['step_ms']:.3f} | {r['allreduce_ms']:.3f} | {r.get('allreduce_alone_ms', 0):.3f} | "
                     f"{r['efficiency']:.0%} |")  # fmt: skip
    return [*lines, ""]


if __name__ == "__main__":
    rank_run() if "--rank-run" in sys.argv else main()
