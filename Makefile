# Two entry points for a fresh machine with only Python 3.11:
#   make demo   -> virtualenv + specprobe, then the main job on the bundled model
#   make test   -> virtualenv + specprobe + test oracles (fme, scoringrules, ducc0), then the tests
# torch 2.13.0 is installed first so pip never resolves a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: demo test venv

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

$(VENV)/.full: $(VENV)/.base
	$(PIP) install -e '.[test,fme]'
	touch $@

venv: $(VENV)/.base

demo: $(VENV)/.base
	$(VENV)/bin/specprobe grad-by-l --out specprobe-out

test: $(VENV)/.full
	SPECPROBE_REQUIRE_ORACLES=1 $(PY) -m pytest -q -p no:cacheprovider
