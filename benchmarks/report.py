"""Turn a pytest-benchmark JSON into benchmarks/RESULTS.md and benchmarks/throughput.png.

Usage: python -m benchmarks.report benchmarks/results.json
Ratios come from the interleaved runs recorded in each gpubp benchmark's extra_info.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.mpi_scaling import table as mpi_table
from benchmarks.peers import SETTLE_S
from gpubp._io import atomic_write

HERE = Path(__file__).resolve().parent


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "–" if x is None else format(x, spec)


def load(path: str) -> tuple[dict, list[dict]]:
    data = json.loads(Path(path).read_text())
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "gpubp_samples_per_s" in info:
            rows.append(info)
    return data["machine_info"], rows


def machine_lines(machine: dict, commit_info: dict | None = None) -> list[str]:
    cpu = machine.get("cpu", {})
    blas = machine.get("blas")
    if isinstance(blas, list):
        blas = ", ".join(b["note"] if "note" in b else
                         f"{b['internal_api']} {b['version']} ({b.get('architecture')}, {b['num_threads']} threads)"
                         for b in blas) or "not loaded"  # fmt: skip
    gpu = machine.get("devices", {}).get("gpu", {})
    if gpu.get("available"):
        gpu_line = "; ".join(f"{d['name']} ({d['memory_bytes'] / 2**30:.0f} GiB)" for d in gpu["devices"])
        gpu_line += f", CuPy {gpu['cupy']}, CUDA runtime {gpu['cuda_runtime']}, driver {gpu['cuda_driver']}"
    else:
        gpu_line = f"none usable: {gpu.get('reason', 'unknown')}"
    return [
        f"- commit: `{machine.get('gpubp_commit')}`",
        f"- CPU: {cpu.get('brand_raw', machine.get('processor', '?'))}, {cpu.get('count', '?')} logical cores; "
        f"Python {machine.get('python_version')}, NumPy {machine.get('numpy')}, "
        f"PyTorch {machine.get('torch') or 'absent'}",
        f"- BLAS: {blas}",
        f"- other processes during the run: {_fmt(machine.get('other_processes_cores_busy'), '.2f')} cores busy "
        f"on average (machine busy time minus this run's own); load average at the end "
        f"{machine.get('loadavg_at_end', machine.get('loadavg_at_start'))}",
        f"- GPU: {gpu_line}",
    ]


def main_table(rows: list[dict], kinds: tuple[str, ...]) -> list[str]:
    out = ["| configuration | device | threads | gpubp samples/s | PyTorch samples/s | gpubp / PyTorch | "
           "step GFLOP/s | GEMM GFLOP/s | of GEMM |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if r["kind"] not in kinds:
            continue
        step_gflops = r["gpubp_samples_per_s"] / r["batch"] * r["flops_per_step"] / 1e9
        ratio = r.get("gpubp_over_torch")
        out.append(
            f"| {r['kind']} {r['config']} | {r['device']} | {r['threads']} | {_fmt(r['gpubp_samples_per_s'])} | "
            f"{_fmt(r.get('torch_samples_per_s'))} | {_fmt(ratio, '.2f') + '×' if ratio else '–'} | "
            f"{step_gflops:.1f} | {r['gemm_rate'] / 1e9:.1f} | {100 * r['fraction_of_gemm']:.0f}% |"
        )
    return out


def speedups(rows: list[dict]) -> list[str]:
    by = defaultdict(dict)
    for r in rows:
        by[(r["kind"], r["config"])][r["device"]] = r
    out = []
    pairs = [(k, d) for k, d in by.items() if "cpu" in d and any(x.startswith("gpu") for x in d)]
    if not pairs:
        return ["No GPU rows in this run, so no GPU/CPU speed-up or break-even batch size: see the GPU line "
                "above for why. A run on a CUDA machine (`bash scripts/gpu_run.sh`) fills these in."]  # fmt: skip
    out += ["| configuration | CPU samples/s | GPU samples/s | GPU / CPU |", "|---|---|---|---|"]
    sweep = []
    for (kind, config), d in pairs:
        gpu = next(v for k, v in d.items() if k.startswith("gpu"))
        ratio = gpu["gpubp_samples_per_s"] / d["cpu"]["gpubp_samples_per_s"]
        out.append(f"| {kind} {config} | {_fmt(d['cpu']['gpubp_samples_per_s'])} | "
                   f"{_fmt(gpu['gpubp_samples_per_s'])} | {ratio:.1f}× |")  # fmt: skip
        if kind == "batch-sweep":
            sweep.append((gpu["batch"], ratio))
    sweep.sort()
    slower = [b for b, r in sweep if r < 1]
    out.append("")
    if not sweep:
        out.append("Break-even batch size: no batch sweep on both devices in this run.")
    elif not slower:
        out.append(f"Break-even batch size: the GPU is faster at every batch size measured (from {sweep[0][0]}).")
    else:
        out.append(f"Break-even batch size: the CPU is faster up to batch {max(slower)} "
                   f"(784-512-10 relu float32); the GPU from the next size measured.")  # fmt: skip
    return out


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = defaultdict(list)
    for r in rows:
        if r["kind"] != "batch-sweep":
            continue
        series[f"gpubp {r['device']}"].append((r["batch"], r["gpubp_samples_per_s"]))
        if r.get("torch_samples_per_s"):
            series[f"PyTorch {r['device']}"].append((r["batch"], r["torch_samples_per_s"]))
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls="--" if "PyTorch" in name else "-",
                label=name)  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="training samples / s",
           title="784-512-10 relu float32: one training step, steady state")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return True


def sklearn_fit(json_path: str) -> list[str]:
    """The scikit-learn estimator section (benchmarks/bench_sklearn.py), when it ran."""
    for b in json.loads(Path(json_path).read_text())["benchmarks"]:
        result = b.get("extra_info", {}).get("sklearn_fit")
        if result:
            from benchmarks.bench_sklearn import table

            return ["## fit: gpubp.MLPClassifier against scikit-learn's (digits, its default settings)", "",
                    "Whole `fit` calls alternating gpubp (float32) and scikit-learn (float64), medians of 5 "
                    "rounds; both stop by scikit-learn's rule, so epochs may differ by a few.", "",
                    *table(result), ""]  # fmt: skip
    return []


HAND = "## Measured by hand"


def kept_sections(path: Path) -> list[str]:
    """The sections of an existing RESULTS.md whose heading starts with HAND: figures taken outside
    ``make bench`` (before/after a change, a commit that no longer exists) that a rewrite must keep."""
    if not path.exists():
        return []
    kept, keep = [], False
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            keep = line.startswith(HAND)
        if keep:
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return [*kept, ""] if kept else []  # one blank line at the end, however often it is rewritten


def write(json_path: str, out_dir: Path = HERE) -> Path:
    machine, rows = load(json_path)
    if not rows:
        raise SystemExit(f"{json_path}: no timed gpubp benchmarks (was it run with --benchmark-disable?)")
    devices = sorted({r["device"] for r in rows})
    gpu = machine.get("devices", {}).get("gpu", {})
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`python -m benchmarks.report`). One steady-state training step (forward, "
             "loss, δ recursion, SGD-momentum update), timed after warm-up; ratios are medians of 7 rounds that "
             "alternate gpubp, PyTorch and bare GEMMs of the step's shapes, so noise hits all alike, with a rest "
             f"of {SETTLE_S} s before each CPU round (none on a GPU) so that the previous runner's thread pool has "
             "stopped spinning "
             "(OpenBLAS's worker busy-waits ~0.1 s after gpubp's last GEMM, and slowed PyTorch's 2-thread rows "
             "up to 2.7× when the rest was 0.05 s). FLOPs count "
             "2·B·n_in·n_out per GEMM: one per layer forward, two backward, minus the first layer's input "
             "gradient. \"GEMM GFLOP/s\" is this machine's own matrix multiply running the step's GEMMs alone (same "
             "shapes and transposes, nothing else): the ceiling \"of GEMM\" is measured against.", "",
             "## Machine", "", *machine_lines(machine), ""]  # fmt: skip
    if not gpu.get("available"):
        lines += [f"**GPU rows are absent**: {gpu.get('reason', 'no GPU')}. They are missing until a run on a "
                  "CUDA machine.", ""]  # fmt: skip
    lines += ["## Main configurations", "", *main_table(rows, ("gemm-bound", "large", "small", "tiny")), "",
              "## Batch-size sweep (784-512-10 relu float32)", "", *main_table(rows, ("batch-sweep",)), "",
              "![samples/s against batch size](throughput.png)", "",
              "## Width sweep (784-W-10 relu float32, batch 256)", "", *main_table(rows, ("width-sweep",)), "",
              "## GPU against CPU", "", *speedups(rows), "",
              "Not built yet: capture of the training step in a CUDA graph (for small networks, where launch "
              "overhead dominates) and an opt-in TF32 mode for float32 GEMMs. Both need a GPU to build and to check "
              "against the uncaptured, full-precision step; they wait for a run on a GPU.", "",
              f"Devices in this run: {', '.join(devices)}.", ""]  # fmt: skip
    lines += mpi_table()
    lines += sklearn_fit(json_path)
    out = Path(out_dir) / "RESULTS.md"
    lines += kept_sections(out)
    atomic_write(out, lambda f: f.write("\n".join(lines).encode()))
    plot(rows, Path(out_dir) / "throughput.png")
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python -m benchmarks.report RESULTS.json [FOLDER]   (default: benchmarks/)")
    print(f"wrote {write(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) == 3 else HERE)}")
