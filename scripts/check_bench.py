"""Check a GPU benchmark run's numbers, not only that nothing raised (scripts/gpu_run.sh's bench-check step).

Usage: python scripts/check_bench.py results.json [--selected LISTING]     (exit 0: all good; 1: each problem on
its own line). LISTING: pytest's --collect-only list of the rows the run selected (scripts/gpu_run.sh passes it);
without it, every row below is expected.

- a GPU answered, and every float32 GPU row of benchmarks/bench_training.py ran (a row skipped for want of a
  GPU is a failure here), as did the CPU rows the report sets them against (large, batch sweep);
- every row measured something plausible: samples/s and the GEMM rate finite and positive, and the step no
  faster than 1.25× its own GEMMs (faster means the timing missed work, e.g. a missing synchronisation; not
  judged in a rehearsal, whose timings are noise on shared cores);
- the GPU beats the CPU on the 4096-wide network (else the "GPU" row did not run on the GPU), except in a
  rehearsal (GPUBP_REHEARSE=1: the fake GPU is NumPy, its speed is the CPU's);
- the scikit-learn comparison fitted on the GPU and learnt (accuracy > 0.9 on the digits).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_FRACTION_OF_GEMM = 1.25


def selected_rows(listing: str) -> tuple[list[tuple[str, str, str]], bool]:
    """The rows (device, kind, config) and whether the scikit-learn comparison were selected, from pytest's list
    (float64 rows skip on a GPU)."""
    from benchmarks.bench_training import ALL

    by_id = {f"{c.name}:{c.label.replace(' ', '-')}": c for c in ALL}
    rows = []
    for m in re.finditer(r"::test_gpubp_step\[(cpu|gpu)-([^\]]+)\]", listing):
        cfg = by_id[m.group(2)]
        if not (m.group(1) == "gpu" and cfg.dtype == "float64"):
            rows.append((m.group(1), cfg.name, cfg.label))
    return rows, "::test_fit_digits_gpubp" in listing


def problems(data: dict, selected: str | None = None) -> list[str]:
    from benchmarks.bench_training import ALL

    found: list[str] = []
    gpu = data.get("machine_info", {}).get("devices", {}).get("gpu", {})
    if not gpu.get("available"):
        found.append(f"no GPU answered during the run: {gpu.get('reason', 'no device information recorded')}")
    rows = {}
    sklearn_fit = None
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "sklearn_fit" in info:
            sklearn_fit = info["sklearn_fit"]
        if "gpubp_samples_per_s" in info:
            rows[(info.get("device", "?").split(":")[0], info.get("kind"), info.get("config"))] = info
    want = [("gpu", c.name, c.label) for c in ALL if c.dtype == "float32"]
    want += [("cpu", c.name, c.label) for c in ALL if c.name in ("large", "batch-sweep")]
    want_sklearn = True
    if selected is not None:
        want, want_sklearn = selected_rows(selected)
    for key in want:
        if key not in rows:
            found.append(f"row {key[1]} {key[2]} on the {key[0].upper()} is missing (skipped or failed)")
    rehearsal = os.environ.get("GPUBP_REHEARSE") == "1"  # the fake GPU is NumPy on shared cores: no speed judged
    for (dev, kind, config), info in sorted(rows.items()):
        name = f"{kind} {config} on {dev}"
        for field in ("gpubp_samples_per_s", "gemm_rate", "fraction_of_gemm"):
            value = info.get(field)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                found.append(f"{name}: {field} is {value!r}, expected a finite positive number")
        fraction = info.get("fraction_of_gemm")
        if isinstance(fraction, (int, float)) and fraction > MAX_FRACTION_OF_GEMM and not rehearsal:
            found.append(f"{name}: the step ran at {fraction:.2f}x its own GEMMs' rate (at most "
                         f"{MAX_FRACTION_OF_GEMM}): its timing missed work")  # fmt: skip
    large_label = next(c.label for c in ALL if c.name == "large")
    large = [rows.get((d, "large", large_label)) for d in ("gpu", "cpu")]
    if all(large) and not rehearsal and large[0]["gpubp_samples_per_s"] <= large[1]["gpubp_samples_per_s"]:
        found.append(f"the GPU ({large[0]['gpubp_samples_per_s']:.0f} samples/s) is not faster than the CPU "
                     f"({large[1]['gpubp_samples_per_s']:.0f}) on the 4096-wide network")  # fmt: skip
    if not want_sklearn:
        pass
    elif sklearn_fit is None:
        found.append("the scikit-learn fit comparison is missing")
    elif "gpubp gpu" not in sklearn_fit:
        found.append("the scikit-learn fit comparison has no GPU fit")
    elif not sklearn_fit["gpubp gpu"].get("accuracy", 0) > 0.9:
        found.append(f"the GPU estimator's digits accuracy is {sklearn_fit['gpubp gpu'].get('accuracy')}, not > 0.9")
    return found


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--selected"):
        print("usage: python scripts/check_bench.py results.json [--selected LISTING]", file=sys.stderr)
        return 2
    try:
        data = json.loads(Path(argv[0]).read_text())
        selected = Path(argv[2]).read_text() if len(argv) == 3 else None
    except (OSError, ValueError) as exc:
        print(f"check_bench: cannot read {exc.filename if isinstance(exc, OSError) else argv[0]}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    found = problems(data, selected)
    for line in found:
        print(f"check_bench: {line}", file=sys.stderr)
    if not found:
        print(f"check_bench: {argv[0]}: every row ran and measured plausible numbers")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
