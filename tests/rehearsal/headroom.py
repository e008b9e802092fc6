"""After each step of a rehearsal: what the step did, priced at a GPU machine's costs, against its limit.

Usage: python tests/rehearsal/headroom.py COUNTS_FOLDER STEP LIMIT_S      (exit 1: under 25 % to spare)

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
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COMPILE_S, CACHED_S, PROCESS_S, STEP_S = 1.0, 0.05, 2.0, 0.5e-3
SPARE = 0.25


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
