"""Run at the start of every Python process of a rehearsal (``bash scripts/gpu_run.sh --rehearse`` puts this
folder first on PYTHONPATH): with GPUBP_REHEARSE=1, ``import cupy`` gives the fake CuPy of tests/fake_gpu.py,
and the process counts what a GPU machine spends its time on (tests/rehearsal/rehearsal.py)."""

import os

if os.environ.get("GPUBP_REHEARSE") == "1":
    import rehearsal

    rehearsal.install()
