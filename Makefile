# flowgan: every target sets itself up (a virtual environment in .venv) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision: these builds lie on this workplace's disk; online, pip fetches them.
TORCH ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: setup test test-slow lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,vision,metrics,tensorboard,flows]"
	touch $@

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

demo: setup
	$(BIN)/flowgan reproduce --preset quick --out runs/demo
	@echo "report: runs/demo/report.md, samples: runs/demo/figures/fig1_samples.png"

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
