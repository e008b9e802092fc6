"""The benchmark report, on made-up results that include GPU rows (which no CI machine has)."""

from __future__ import annotations

import json

import pytest

from benchmarks import report


def row(kind, config, device, batch, gpubp, torch=None):
    info = {"kind": kind, "config": config, "device": device, "batch": batch, "threads": 2,
            "sizes": [784, 512, 10], "flops_per_step": 1e9, "gpubp_samples_per_s": gpubp,
            "gemm_rate": 1e11, "fraction_of_gemm": 0.8}  # fmt: skip
    if torch:
        info.update(torch_samples_per_s=torch, gpubp_over_torch=gpubp / torch)
    return {"extra_info": info}


@pytest.fixture
def results(tmp_path):
    rows = []
    for batch, cpu, gpu in ((32, 40e3, 20e3), (128, 70e3, 60e3), (512, 90e3, 300e3), (2048, 95e3, 900e3)):
        cfg = f"784-512-10 B{batch} relu float32"
        rows += [row("batch-sweep", cfg, "cpu", batch, cpu, cpu / 2), row("batch-sweep", cfg, "gpu:0", batch, gpu)]
    rows.append(row("tiny", "64-32-10 B32 relu float32", "cpu", 32, 7e5, 1.2e5))
    machine = {"gpubp_commit": "abc1234", "cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11",
               "numpy": "2.4", "torch": "2.13", "blas": [], "other_processes_cores_busy": 0.02,
               "devices": {"gpu": {"available": True, "cupy": "14.2", "cuda_runtime": 13000, "cuda_driver": 13000,
                                   "devices": [{"name": "Test GPU", "memory_bytes": 80 * 2**30}]}}}  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"machine_info": machine, "benchmarks": rows}))
    return path


def test_report_tables_speedups_and_break_even(results, tmp_path):
    out = report.write(str(results), tmp_path)
    text = out.read_text()
    assert "commit: `abc1234`" in text
    assert "Test GPU (80 GiB)" in text
    assert "| tiny 64-32-10 B32 relu float32 | cpu | 2 | 700,000 | 120,000 | 5.83× |" in text
    assert "| batch-sweep 784-512-10 B2048 relu float32 | 95,000 | 900,000 | 9.5× |" in text
    assert "the CPU is faster up to batch 128" in text
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rewrite_keeps_the_sections_measured_by_hand_and_nothing_else_of_the_old_file(results, tmp_path):
    (tmp_path / "RESULTS.md").write_text(
        "# old\n\n## Main configurations\n\n| stale row |\n\n"
        "## Measured by hand: targets\n\nratio 4.4×\n\n## Old section\n\ngone\n"
    )
    text = report.write(str(results), tmp_path).read_text()
    assert text.endswith("## Measured by hand: targets\n\nratio 4.4×\n")
    assert "stale row" not in text
    assert "gone" not in text
    assert text.count("## Main configurations") == 1
    assert report.write(str(results), tmp_path).read_text() == text  # rewriting again changes nothing


def test_report_refuses_a_smoke_run(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": [{"extra_info": {}}]}))
    with pytest.raises(SystemExit, match="no timed gpubp benchmarks"):
        report.write(str(path), tmp_path)
