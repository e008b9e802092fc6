# One target per job. Every target installs what it needs into $(VENV) first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Which CuPy the test environment gets: without a GPU it still exercises "CuPy installed, no device".
CUDA_EXTRA ?= cuda12
EXTRAS := test,docs,plot,progress,bench,dev,mpi,sklearn,csv,numba,onnx,tensorboard,$(CUDA_EXTRA)

.PHONY: install test lint typecheck bench train mutate clean

# The venv remembers which Python made it: `make test PYTHON=python3.13` rebuilds a .venv made by
# another interpreter instead of quietly testing with the old one.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PYVER),)
$(error PYTHON=$(PYTHON) does not run: install Python 3.10+ or name one, e.g. make test PYTHON=python3.11)
endif
STAMP := $(VENV)/.installed-py$(PYVER)-$(CUDA_EXTRA)
# PyTorch, for the tests that compare gradients and optimiser steps with autograd and torch.optim
# (tests/test_vs_pytorch.py) and for the benchmarks' PyTorch rows. Not an extra: the pinned CPU build is a
# local file on the project's machines (about 35 s to install), where PyPI's would bring CUDA's libraries.
# Elsewhere a failed install leaves those tests skipped with the reason; CI (.ci/run) sets
# GPUBP_REQUIRE_TORCH=1, which turns that skip into a failure. TORCH_SPEC= installs none.
TORCH_SPEC ?= torch==2.13.0

# `make train` needs NumPy alone: its own stamp, so that the demo does not wait for CuPy, Numba, MPI and the test tools
BASE_STAMP := $(VENV)/.installed-base-py$(PYVER)

define make_venv
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then \
		echo "$(VENV) was made by another Python; rebuilding it with $(PYTHON) ($(PYVER))"; rm -rf $(VENV); fi
	@[ -x $(PY) ] || { echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); }
endef

$(STAMP): pyproject.toml Makefile
	$(make_venv)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(if $(TORCH_SPEC),$(PY) -m pip install -q '$(TORCH_SPEC)' || echo "PyTorch ($(TORCH_SPEC)) not installed: the comparisons with it will be skipped")
	touch $@ $(BASE_STAMP)

$(BASE_STAMP): pyproject.toml
	$(make_venv)
	$(PY) -m pip install -q -e .
	touch $@

install: $(STAMP)

test: install lint typecheck
	$(PY) -m pytest --benchmark-disable

LINTED := gpubp tests benchmarks scripts examples conftest.py

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

# mypy on the package ([tool.mypy] in pyproject.toml says how strict, module by module); a few seconds
typecheck: install
	$(VENV)/bin/mypy

# The real benchmark run; without PyTorch (see TORCH_SPEC) its rows say why they are absent.
bench: install
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results.json -p no:randomly
	$(PY) -m benchmarks.mpi_scaling
	$(PY) -m benchmarks.report benchmarks/results.json

# Mutation testing (docs/testing.md): not part of test or CI. Numba's JIT is off so the CPU runs the NumPy
# twins and each loop as plain Python; one BLAS thread, as mutmut forks a child per mutant and a child
# forked beside BLAS's worker threads can hang. Results are kept in mutants/ (rm -rf mutants for a fresh run).
MUTATE_JOBS ?= 2
mutate: install
	$(PY) -m pip install -q -e '.[mutation]'
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_DISABLE_JIT=1 nice $(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(VENV)/bin/mutmut results

train: $(BASE_STAMP)
	$(VENV)/bin/gpubp train

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks mutants
