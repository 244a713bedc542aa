# The public interface of the platform: every target a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
PROJECT ?= fraud
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: help install pipeline compile rollback test test-fast lint format bench-pipeline mlflow-ui clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the platform with its dev tools

pipeline: $(STAMP) ## Run the training pipeline locally via kfp.local (PROJECT=fraud|churn|path.yaml)
	$(BIN)/python -m pipelines.run_local --project $(PROJECT)

compile: $(STAMP) ## Write the Kubeflow pipeline YAML to pipelines/compiled/
	$(BIN)/python -m pipelines.compile --project $(PROJECT)

rollback: $(STAMP) ## Move PROJECT's champion alias back to the previous champion
	$(BIN)/python -m pipelines.rollback --project $(PROJECT)

lint: $(STAMP) ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## Lint, then the whole test suite with coverage (fails under 85%)
	$(BIN)/python -m pytest --cov --cov-report=term-missing --cov-report=xml

test-fast: $(STAMP) ## Unit tests only, no coverage gate
	$(BIN)/python -m pytest tests/unit -q

bench-pipeline: $(STAMP) ## Benchmark kfp.local against the same steps in one process -> reports/
	$(BIN)/python -m benchmarks.bench_pipeline --project $(PROJECT)

mlflow-ui: $(STAMP) ## Browse runs and the registry of the embedded store on :5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --port 5000

clean: ## Remove local runs, registry, reports and caches (keeps .venv)
	rm -rf mlruns local_outputs reports .pytest_cache .ruff_cache .coverage coverage.xml
