"""After each step of a rehearsal: what the step did, priced at a GPU machine's costs, against its limit.

Usage: python tests/rehearsal/headroom.py COUNTS_FOLDER STEP LIMIT_S      (exit 1: under 25 % to spare)
       bash scripts/gpu_run.sh --dry-run | python tests/rehearsal/headroom.py --plan

The counts are the step's processes' lines in COUNTS_FOLDER/STEP.jsonl (tests/rehearsal/rehearsal.py).
The prices are for the GPU machine (one H200, 16 host cores) and err on the dear side:

- a kernel compiled (NVRTC) for a dtype (and, elementwise, a shape class) on the GPU for the first time in the
  run: 1.0 s; one an earlier
  process of the run compiled, read back from CuPy's disk cache: 0.05 s;
- a Python process started (interpreter, gpubp, CuPy, and what the step imports): 2 s;
- a gpubp training step on the GPU (a backprop call: ~30 launches and cuBLAS calls): 0.5 ms;
- a rest (``time.sleep`` of 0.05 s or more): its seconds;
- a benchmark row's interleaved rounds: their time targets (three runners calibrated and timed at 0.1 s a
  round), whatever the machine;
- a fit on the CPU (scikit-learn's, or gpubp's with device="cpu"): the CPU seconds it took here (its work, on
  this machine's cores however busy they were; all its threads' together, so never less than its wall time on
  an idle machine of this speed).

The last line printed is the verdict, for the run's summary.

--plan checks a plan before anything runs: each selected step of a dry run's listing, priced from its counts
(tests, rows, pages) at PLAN_PRICES, what a rehearsal priced each item at, must leave 25 % of its limit.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

COMPILE_S, CACHED_S, PROCESS_S, STEP_S = 1.0, 0.05, 2.0, 0.5e-3
SPARE = 0.25


# Seconds per selected item at the GPU machine's prices, each what a rehearsal on a 2-core x86-64 machine priced
# (docs/gpu.md), rounded up: (fixed seconds, {count in the dry run's "selected:" line: seconds each}).
PLAN_PRICES: dict[str, tuple[float, dict[str, float]]] = {
    "info": (6.0, {}),  # three processes
    "gpu-tests": (0.0, {"gpu": 0.9}),  # 77 s for 86 tests: 40 compilations, 3,388 GPU steps, 19 CPU fits
    "train-gpu": (3.0, {}),  # 1,202 GPU steps, its kernels from the cache
    # a GPU row: 3 runners × 9 rounds of 0.1 s, and its kernels; a CPU row: the same and 21 rests of 0.3 s;
    # a PyTorch row: 15 pedantic rounds of a step; the process and its first compilations
    "bench": (9.0, {"gpu_rows": 3.0, "torch_rows": 0.5, "cpu_rows": 9.0}),
    "bench-check": (2.0, {}),
    "report": (2.0, {}),
    # own tests: 94 priced 56 s (7 processes, 23 compilations, 13,953 GPU steps, 94 CPU fits); checks: 252
    # priced 44 s (30 compilations, 24,674 GPU steps)
    "sklearn-on-gpu": (0.0, {"own": 0.6, "checks": 0.2}),
    "sklearn-checks": (0.0, {"checks2": 0.2, "pages": 13.0}),  # the two pages: 26 s (6 processes)
    "bench-sklearn": (2.0, {"sk_rows": 35.0}),  # the two rows: 70 s (14 CPU fits, 51 CPU s)
}
_SELECTED = re.compile(
    r"selected: (?P<gpu>\d+) gpu tests; bench rows: (?P<gpu_rows>\d+) gpu, (?P<torch_rows>\d+) PyTorch, "
    r"(?P<cpu_rows>\d+) cpu, (?P<sk_rows>\d+) scikit-learn; (?P<tests>\d+) estimator tests \((?P<checks>\d+) of "
    r"them scikit-learn's checks\); second command: (?P<checks2>\d+) checks, (?P<pages>\d+) docs pages"
)


def plan(listing: str) -> list[tuple[str, float, int]]:
    """(step, priced seconds, limit) for each step a dry run's ``listing`` would run."""
    m = _SELECTED.search(listing)
    if m is None:
        raise ValueError("no 'selected: ...' line in the dry run's listing")
    counts = {k: int(v) for k, v in m.groupdict().items()}
    counts["own"] = counts["tests"] - counts["checks"]
    steps = []
    for step, limit in re.findall(r"^== (\S+) \(limit (\d+)s\): ", listing, flags=re.M):
        fixed, each = PLAN_PRICES[step]
        steps.append((step, fixed + sum(counts[k] * s for k, s in each.items()), int(limit)))
    return steps


def _compiled(line: dict) -> list:
    return line.get("compiled", line.get("kernels_built", []))  # (kernels_built: an older rehearsal's lines)


def read(folder: Path, step: str) -> list[dict]:
    path = folder / f"{step}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def price(folder: Path, step: str) -> tuple[float, dict]:
    """(estimated seconds on the GPU machine, the counts) for ``step``; the steps before it are those listed
    in ``folder/steps-done`` (their compilations are in CuPy's disk cache by then)."""
    done = folder / "steps-done"
    before = done.read_text().split() if done.exists() else []
    cached = {tuple(k) for s in ["plan", *before] for line in read(folder, s) for k in _compiled(line)}
    lines = read(folder, step)
    compiled, loads = set(), 0
    for line in lines:
        for k in map(tuple, _compiled(line)):
            if k in cached or k in compiled:
                loads += 1
            else:
                compiled.add(k)
    c = {"processes": len(lines), "compiles": len(compiled), "cache_loads": loads,
         "gpu_steps": sum(x["backprop_gpu"] for x in lines), "rests": sum(x["rests"] for x in lines),
         "rest_s": sum(x["rest_s"] for x in lines), "fits": sum(x["fits_other"] for x in lines),
         "fit_s": sum(x["fit_other_s"] for x in lines),
         "timed_s": sum(x.get("timed_s", 0.0) for x in lines)}  # fmt: skip
    seconds = (c["compiles"] * COMPILE_S + c["cache_loads"] * CACHED_S + c["processes"] * PROCESS_S
               + c["gpu_steps"] * STEP_S + c["rest_s"] + c["fit_s"] + c["timed_s"])  # fmt: skip
    return seconds, c


def main(argv: list[str]) -> int:
    if argv == ["--plan"]:
        worst = 0.0
        for step, seconds, limit in plan(sys.stdin.read()):
            worst = max(worst, seconds / limit)
            verdict = "fits" if seconds / limit <= 1 - SPARE else "OVER"
            print(f"plan: {step}: ~{seconds:.0f} s priced of its {limit} s limit ({seconds / limit:.0%}): {verdict}")
        return 0 if worst <= 1 - SPARE else 1
    folder, step, limit = Path(argv[0]), argv[1], float(argv[2])
    seconds, c = price(folder, step)
    with open(folder / "steps-done", "a") as f:
        f.write(step + "\n")
    share = seconds / limit
    verdict = "fits" if share <= 1 - SPARE else f"OVER the {1 - SPARE:.0%} of its limit a plan may use"
    print(f"rehearsal: {step}: {c['compiles']} kernel compilations, {c['cache_loads']} from the cache, "
          f"{c['processes']} processes, {c['gpu_steps']} GPU steps, {c['rests']} rests ({c['rest_s']:.1f} s), "
          f"{c['fits']} CPU fits ({c['fit_s']:.1f} CPU s here), {c['timed_s']:.1f} s of benchmark rounds")  # fmt: skip
    print(f"rehearsal: {step}: ~{seconds:.0f} s on the GPU machine of its {limit:.0f} s limit ({share:.0%}): {verdict}")
    return 0 if share <= 1 - SPARE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
