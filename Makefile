# The public interface of the platform: every target a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
PROJECT ?= fraud
TRITON_REPO  ?= local_outputs/triton_repository
TRITON_HOST  ?= 127.0.0.1
HTTP_PORT    ?= 8000
GRPC_PORT    ?= 8001
METRICS_PORT ?= 8002
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: help install triton-env pipeline compile rollback serve serve-status stop test test-fast \
	lint format bench-pipeline bench-serve mlflow-ui clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the platform with its dev tools

triton-env: ## Create .venv-triton, Triton's own runtime (nvidia-pytriton, numpy<2, onnxruntime)
	PYTHON=$(PYTHON) serving/triton/setup_env.sh

pipeline: $(STAMP) triton-env ## Run the training pipeline locally via kfp.local (PROJECT=fraud|churn|path.yaml)
	$(BIN)/python -m pipelines.run_local --project $(PROJECT)

compile: $(STAMP) ## Write the Kubeflow pipeline YAML to pipelines/compiled/
	$(BIN)/python -m pipelines.compile --project $(PROJECT)

rollback: $(STAMP) ## Move PROJECT's champion alias back to the previous champion
	$(BIN)/python -m pipelines.rollback --project $(PROJECT)

serve: $(STAMP) triton-env ## Serve PROJECT's champion on local Triton (HTTP 8000, gRPC 8001, metrics 8002)
	$(BIN)/python -m serving.deploy --project $(PROJECT) --repo $(TRITON_REPO)
	$(BIN)/python -m serving.launcher start --repo $(TRITON_REPO) --host $(TRITON_HOST) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

serve-status: $(STAMP) ## Is the local Triton running and ready?
	$(BIN)/python -m serving.launcher status

stop: $(STAMP) ## Stop the local Triton started by make serve
	$(BIN)/python -m serving.launcher stop

lint: $(STAMP) ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint triton-env ## Lint, then the whole test suite with coverage (fails under 85%)
	$(BIN)/python -m pytest --cov --cov-report=term-missing --cov-report=xml

test-fast: $(STAMP) ## Unit tests only, no coverage gate
	$(BIN)/python -m pytest tests/unit -q

bench-pipeline: $(STAMP) triton-env ## Benchmark kfp.local against the same steps in one process -> reports/
	$(BIN)/python -m benchmarks.bench_pipeline --project $(PROJECT)

bench-serve: $(STAMP) triton-env ## Benchmark Triton against mlflow models serve on PROJECT's champion (needs wrk) -> reports/
	$(BIN)/python -m benchmarks.bench_serve --project $(PROJECT)

mlflow-ui: $(STAMP) ## Browse runs and the registry of the embedded store on :5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --port 5000

clean: ## Remove local runs, registry, reports and caches (keeps .venv)
	rm -rf mlruns local_outputs reports .pytest_cache .ruff_cache .coverage coverage.xml
