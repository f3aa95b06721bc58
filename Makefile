# inferq — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Any torch works; 2.13.0 is a local CPU wheel on CI machines and the CUDA build on PyPI for GPU hosts.
# A venv that already has torch keeps it (e.g. a CUDA build installed by hand).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.inferq-installed

.PHONY: install demo demo-train test lint unit integration e2e chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[worker,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Train → evaluate → predict: the digits CNN and a Chinese text classifier from scratch (a few minutes).
demo-train: $(STAMP)
	$(BIN)/python examples/demo_train.py

# The slow chaos tests (real servers killed and restarted, ~4 min on 2 cores) run in `make chaos`.
test: $(STAMP)
	$(BIN)/python -m pytest tests -q -m "not (chaos and slow)" $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q $(PYTEST_ARGS)

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -q $(PYTEST_ARGS)

# INFERQ_CHAOS_README=1 make chaos: also write this run's numbers into README.md ("Reliability").
chaos: $(STAMP)
	$(BIN)/python -m pytest tests/chaos -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check inferq api shared worker tests migrations examples benchmarks
	$(BIN)/ruff format --check inferq api shared worker tests migrations examples benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .inferq demo-output
