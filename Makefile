# Two entry points for a fresh machine with only Python 3.11:
#   make demo   -> virtualenv + specprobe, then the main job on the bundled model
#   make test   -> virtualenv + specprobe + test oracles (fme, scoringrules, ducc0), then the tests
# torch 2.13.0 and torch-harmonics 0.8.0 (fme's pin) are installed first so pip never resolves a
# multi-GB CUDA build (torch-harmonics 0.9 would pull torch 2.14).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

.PHONY: demo test venv wheel-check

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0 torch-harmonics==0.8.0
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

# The package as users get it: build a wheel, install it into a clean virtualenv outside the checkout,
# and run the main job from there (the bundled model must be inside the wheel).
WHEEL_DIR ?= build/wheel-check
wheel-check: $(VENV)/.base
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PIP) wheel --no-deps --no-build-isolation -w $(WHEEL_DIR)/dist . >/dev/null 2>&1 || $(PIP) wheel --no-deps -w $(WHEEL_DIR)/dist .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip -q --disable-pip-version-check install torch==2.13.0 torch-harmonics==0.8.0
	$(WHEEL_DIR)/venv/bin/python -m pip -q --disable-pip-version-check install $(WHEEL_DIR)/dist/specprobe-*.whl
	cd $(WHEEL_DIR) && venv/bin/specprobe grad-by-l --n-samples 2 --quiet --out out && test -s out/result.json
	cd $(WHEEL_DIR) && venv/bin/python -c "import specprobe, pathlib; from specprobe.models.registry import default_checkpoint as d; p = pathlib.Path(d()); assert 'site-packages' in str(p) and p.stat().st_size > 0, p; print('wheel ok:', p)"
