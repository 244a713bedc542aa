# The public interface of the platform: every target a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
PROJECT ?= fraud
TRITON_REPO  ?= local_outputs/triton_repository
TRITON_HOST  ?= 127.0.0.1
# The public endpoint is the gateway (serving/gateway/) on SERVE_HOST:HTTP_PORT; binding it
# beyond loopback needs KEYS_FILE (python -m serving.gateway keys add). Triton binds loopback
# only (TRITON_HTTP_PORT, TRITON_GRPC_PORT, its metrics on METRICS_PORT).
SERVE_HOST   ?= 127.0.0.1
HTTP_PORT    ?= 8000
GATEWAY_METRICS_PORT ?= 8003
TRITON_HTTP_PORT ?= 8010
TRITON_GRPC_PORT ?= 8011
METRICS_PORT ?= 8002
LOG_ROOT     ?= local_outputs/inference_log
# make test's pytest-xdist processes (a test file stays on one); 0: in one process
TEST_WORKERS ?= 2
# Share of requests `make serve` mirrors to a shadow challenger: PROJECT's serving.shadow_share
SHADOW_SHARE ?= $(shell $(VENV)/bin/python -c "from configs import load_config; print(load_config('$(PROJECT)').serving.shadow_share)" 2>/dev/null || echo 0)
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

IMAGE        ?= ghcr.io/tabular-mlops/pipeline-python:0.1.0
OVERLAY      ?= cpu
WORKERS      ?= 3
PROM_PORT    ?= 9090
PUSH_PORT    ?= 9091
PROMETHEUS   := http://$(TRITON_HOST):$(PROM_PORT)
PUSHGATEWAY  := http://$(TRITON_HOST):$(PUSH_PORT)

# LOG_LEVEL=DEBUG|INFO|WARNING|ERROR: how much every command, and the pipeline's steps, log
# (make pipeline LOG_LEVEL=DEBUG also echoes the full kfp.local log). See configs/cli.py.
ifdef LOG_LEVEL
export MLOPS_LOG_LEVEL := $(LOG_LEVEL)
endif

.PHONY: help install system-deps triton-env pipeline compile rollback serve serve-status stop \
	monitor-up monitor-status monitor-down simulate monitor report retrain test test-fast \
	shadow canary canary-abort lint format bench-pipeline bench-quality bench-serve bench-edge bench-explain bench-monitor gpu-check mlflow-ui clean \
	image image-lock k8s-tools k8s-secrets k8s-render deploy tune-distributed bench-tune docs \
	history init-config clean-store log-retention \
	typecheck audit hooks

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'
	@echo
	@echo "  Settings for any target: PROJECT=fraud|churn|path.yaml  LOG_LEVEL=DEBUG|INFO|WARNING|ERROR"
	@echo "  NO_COLOR=1 (plain output).  Docs: README.md, docs/architecture.md, docs/runbook.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the platform with its dev tools

system-deps: ## Debian packages the tests and benchmarks use: prometheus, pushgateway, postgresql, wrk
	@command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null && \
		command -v wrk >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends prometheus prometheus-pushgateway postgresql wrk >/dev/null; }

triton-env: ## Create .venv-triton, Triton's own runtime (nvidia-pytriton, numpy<2, onnxruntime)
	PYTHON=$(PYTHON) serving/triton/setup_env.sh

pipeline: $(STAMP) triton-env ## Run the training pipeline locally via kfp.local (PROJECT=fraud|churn|path.yaml, STUDY_STORAGE=url)
	$(BIN)/python -m pipelines.run_local --project $(PROJECT) $(if $(STUDY_STORAGE),--study-storage $(STUDY_STORAGE))

compile: $(STAMP) ## Write the Kubeflow pipeline YAML to pipelines/compiled/ (steps run IMAGE)
	PIPELINE_IMAGE=$(IMAGE) $(BIN)/python -m pipelines.compile --project $(PROJECT)

deploy: $(STAMP) ## Compile and submit to Kubeflow at KFP_HOST (RECURRING=1: on the config's schedule)
	$(BIN)/python -m pipelines.submit --project $(PROJECT) $(if $(RECURRING),--recurring) \
		$(if $(STUDY_STORAGE),--study-storage $(STUDY_STORAGE)) $(if $(TUNE_WORKERS),--tune-workers $(TUNE_WORKERS))

image: ## Build the pipeline image IMAGE from the Dockerfile (needs a Docker engine)
	@command -v docker >/dev/null 2>&1 || { echo "make image: docker not found: install Docker Engine, or build the Dockerfile with podman/buildah/kaniko" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine answers (docker info failed): start dockerd or set DOCKER_HOST" >&2; exit 1; }
	docker build --build-arg GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .

image-lock: $(STAMP) ## Re-pin infra/image/requirements.lock from .venv (after changing dependencies)
	$(BIN)/python -m pipelines.image lock

k8s-tools: ## Create .venv-k8s with the manifest checkers (checkov, kubernetes-validate)
	PYTHON=$(PYTHON) infra/k8s/setup_tools.sh

k8s-secrets: ## Write infra/k8s/base/secrets/*.env (random passwords) and the gateway's first API key, where missing
	@infra/k8s/make_secrets.sh

k8s-render: ## Print the platform manifests for OVERLAY=cpu|gpu|kind (pipe into kubectl apply --server-side -f -)
	@infra/k8s/kustomize.sh infra/k8s/overlays/$(OVERLAY)

rollback: $(STAMP) ## Move PROJECT's champion back to the previous champion (TO=VERSION: to that former champion); Triton follows
	$(BIN)/python -m pipelines.rollback --project $(PROJECT) $(if $(TO),--to $(TO))

history: $(STAMP) ## PROJECT's champion moves (promotions, rollbacks, repairs) with their state
	$(BIN)/python -m pipelines.rollback --project $(PROJECT) --history

serve: $(STAMP) triton-env ## Serve PROJECT's champion: the gateway on :8000 (public) in front of Triton (loopback)
	$(BIN)/python -m serving.deploy --project $(PROJECT) --repo $(TRITON_REPO) --pushgateway $(PUSHGATEWAY)
	$(BIN)/python -m serving.launcher start --repo $(TRITON_REPO) --host 127.0.0.1 \
		--http-port $(TRITON_HTTP_PORT) --grpc-port $(TRITON_GRPC_PORT) --metrics-port $(METRICS_PORT)
	$(BIN)/python -m serving.gateway start --host $(SERVE_HOST) --port $(HTTP_PORT) \
		--upstream http://127.0.0.1:$(TRITON_HTTP_PORT) --metrics-port $(GATEWAY_METRICS_PORT) \
		--metrics-host $(TRITON_HOST) --log-root $(LOG_ROOT) $(if $(KEYS_FILE),--keys-file $(KEYS_FILE)) \
		--shadow-share $(SHADOW_SHARE)

serve-status: $(STAMP) ## Are the gateway and Triton behind it running and ready?
	@$(BIN)/python -m serving.gateway status; gateway=$$?; \
		$(BIN)/python -m serving.launcher status; triton=$$?; \
		exit $$(( gateway > triton ? gateway : triton ))

stop: $(STAMP) ## Stop the gateway and Triton started by make serve
	$(BIN)/python -m serving.gateway stop
	$(BIN)/python -m serving.launcher stop

monitor-up: $(STAMP) ## Start Prometheus (:9090, repo rules) and the Pushgateway (:9091), scraping Triton and the gateway
	$(BIN)/python -m monitoring.stack up --prometheus-port $(PROM_PORT) \
		--pushgateway-port $(PUSH_PORT) --triton-metrics $(TRITON_HOST):$(METRICS_PORT) \
		--gateway-metrics $(TRITON_HOST):$(GATEWAY_METRICS_PORT)

monitor-status: $(STAMP) ## Are Prometheus and the Pushgateway running and ready?
	$(BIN)/python -m monitoring.stack status

monitor-down: $(STAMP) ## Stop Prometheus and the Pushgateway
	$(BIN)/python -m monitoring.stack down

simulate: $(STAMP) ## Replay PROJECT's later (drifted) traffic through the gateway, labels arriving late
	$(BIN)/python -m monitoring.simulate --project $(PROJECT) --url $(TRITON_HOST):$(HTTP_PORT) \
		$(if $(API_KEY),--api-key $(API_KEY))

monitor: $(STAMP) ## Drift, quality and Evidently reports per window -> reports/monitoring/, Pushgateway
	$(BIN)/python -m monitoring.monitor --project $(PROJECT) --pushgateway $(PUSHGATEWAY)

log-retention: $(STAMP) ## Delete inference-log days older than KEEP_DAYS (90), every model; DRY_RUN=1 lists them only
	$(BIN)/python -m serving.log_retention --log-root $(LOG_ROOT) --keep-days $(or $(KEEP_DAYS),90) \
		$(if $(DRY_RUN),--dry-run)

shadow: $(STAMP) ## Decide on PROJECT's shadow challenger from live paired rows: promote (compare-and-swap) or keep it in shadow; record in reports/shadow/
	$(BIN)/python -m monitoring.shadow promote --project $(PROJECT) --repo $(TRITON_REPO) \
		--triton-url http://127.0.0.1:$(TRITON_HTTP_PORT) --log-path $(LOG_ROOT) --pushgateway $(PUSHGATEWAY)

canary: $(STAMP) ## Roll PROJECT's canary challenger out: every CANARY_INTERVAL_S (60) step its share up while it stays within canary.* limits, then promote it, or roll it back; records in reports/canary/
	$(BIN)/python -m monitoring.canary run --project $(PROJECT) --repo $(TRITON_REPO) \
		--triton-url http://127.0.0.1:$(TRITON_HTTP_PORT) --log-path $(LOG_ROOT) \
		--prometheus $(PROMETHEUS) --pushgateway $(PUSHGATEWAY) --interval-s $(or $(CANARY_INTERVAL_S),60)

canary-abort: $(STAMP) ## Roll PROJECT's canary back by hand (REASON="..." goes into the record)
	$(BIN)/python -m monitoring.canary abort --project $(PROJECT) --repo $(TRITON_REPO) \
		--pushgateway $(PUSHGATEWAY) --reason "$(or $(REASON),aborted by hand)"

report: $(STAMP) ## The KPI page (Markdown, HTML, plots) -> reports/kpi/, KPIs to the Pushgateway (PROJECT=...: that project only; default: every config and registered model)
	$(BIN)/python -m monitoring.kpi --pushgateway $(PUSHGATEWAY) \
		$(if $(filter-out file default,$(origin PROJECT)),--projects $(PROJECT))

retrain: $(STAMP) ## Closed loop: if a drift or quality alert fires, retrain, gate, validate, deploy (FORCE=1: anyway)
	$(BIN)/python -m monitoring.loop --project $(PROJECT) --prometheus $(PROMETHEUS) $(if $(FORCE),--force)

init-config: $(STAMP) ## Profile a CSV, TSV, Parquet or Excel (.xlsx) table into a commented starter config (DATA=path TARGET=col [ID=col] [TIME=col] [TIME_UNIT=year|yyyymmdd|s|ms] [GROUP=col] [NAME=name] [POSITIVE=value] [FORCE=1])
	$(BIN)/python -m features.init_config $(if $(DATA),--data "$(DATA)") $(if $(TARGET),--target "$(TARGET)") \
		$(if $(ID),--id "$(ID)") $(if $(TIME),--time "$(TIME)") $(if $(TIME_UNIT),--time-unit "$(TIME_UNIT)") \
		$(if $(GROUP),--group "$(GROUP)") $(if $(NAME),--name "$(NAME)") \
		$(if $(POSITIVE),--positive-label "$(POSITIVE)") $(if $(FORCE),--force)

docs: $(STAMP) ## Regenerate docs/configuration.md from the config schema
	$(BIN)/python -m configs.reference

.PHONY: notebooks
notebooks: $(STAMP) triton-env ## Run notebooks/ top to bottom (small config); executed copies -> reports/notebooks/
	@rm -rf reports/notebooks && mkdir -p reports/notebooks && cp notebooks/*.ipynb reports/notebooks/
	NOTEBOOK_WORKDIR=$(CURDIR)/reports/notebooks/work MPLBACKEND=Agg \
		$(BIN)/jupyter-execute --inplace --timeout=600 reports/notebooks/*.ipynb

lint: $(STAMP) ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## Mypy on the packages (settings in pyproject.toml [tool.mypy])
	$(BIN)/mypy

audit: $(STAMP) ## Security: ruff's bandit rules, noqa reasons, pip-audit of the image lock (needs PyPI; not CI)
	$(BIN)/ruff check --select S .
	$(BIN)/python -m pipelines.audit

hooks: $(STAMP) ## Install the git pre-commit hooks (ruff, mypy, notebook outputs stripped)
	$(BIN)/pre-commit install

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint typecheck triton-env system-deps k8s-tools ## Lint, type check, then the whole test suite with coverage (fails under 85%; TEST_WORKERS=2 processes, 0: one)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term-missing --cov-report=xml

test-fast: $(STAMP) ## Unit tests only, no coverage gate
	$(BIN)/python -m pytest tests/unit -q

bench-pipeline: $(STAMP) triton-env ## Benchmark kfp.local cold and warm against the same steps in one process, per component -> reports/ (default: the small test project; PROJECT=... for another)
	$(BIN)/python -m benchmarks.bench_pipeline \
		--project $(if $(filter-out file default,$(origin PROJECT)),$(PROJECT),tests/configs/fraud_small.yaml)

bench-quality: $(STAMP) triton-env ## Five public tables through init-config and the pipeline: champion vs baseline vs a CV reference, test ROC/PR-AUC -> reports/ (TABLES=a,b: a subset)
	$(BIN)/python -m benchmarks.bench_quality $(if $(TABLES),--tables $(TABLES))

bench-serve: $(STAMP) triton-env ## Benchmark the endpoint (gateway + Triton) vs raw Triton vs mlflow models serve (needs wrk) -> reports/
	$(BIN)/python -m benchmarks.bench_serve --project $(PROJECT)

bench-edge: $(STAMP) triton-env ## Hold RATE req/s (default 250) on the endpoint for 60 s: errors, latency percentiles -> reports/
	$(BIN)/python -m benchmarks.bench_edge --project $(PROJECT) $(if $(RATE),--rate $(RATE))

bench-explain: $(STAMP) triton-env ## Time POST /explain per row (1 and 64 rows per request) vs shap in process, p50/p99 on CPU; bar p99 < 50 ms -> reports/
	$(BIN)/python -m benchmarks.bench_explain --project $(PROJECT)

tune-distributed: $(STAMP) ## WORKERS Optuna processes share PROJECT's study in PostgreSQL (STORAGE=url, TRIALS=N)
	$(BIN)/python -m pipelines.tune_distributed --project $(PROJECT) --workers $(WORKERS) \
		$(if $(STORAGE),--storage $(STORAGE)) $(if $(TRIALS),--trials $(TRIALS))

bench-tune: $(STAMP) ## Benchmark 1 vs WORKERS tuning workers on one PostgreSQL study -> reports/
	$(BIN)/python -m benchmarks.bench_tune --project $(PROJECT) --workers $(WORKERS)

bench-monitor: $(STAMP) ## Benchmark the platform's drift check vs Evidently DataDriftPreset (1M x 20) -> reports/
	$(BIN)/python -m benchmarks.bench_monitor

gpu-check: ## Champion on Triton on the GPU vs CPU, concurrency 8 and 64 -> reports/ (NVIDIA GPU; not CI)
	$(BIN)/python -m benchmarks.gpu_check --project $(PROJECT)

mlflow-ui: $(STAMP) ## Browse runs and the registry of the embedded store on :5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --port 5000

clean: ## Remove local outputs, reports and caches; keeps .venv and the tracking store and registry (mlruns/: make clean-store)
	rm -rf local_outputs reports .pytest_cache .ruff_cache .mypy_cache .coverage coverage.xml

clean-store: ## Delete the tracking store, the model registry and the Optuna studies in mlruns/ (asks first; CONFIRM=1: no question)
	@test -e mlruns || { echo "make clean-store: no mlruns/ here, nothing to delete"; exit 0; }; \
	if [ "$(CONFIRM)" != 1 ]; then \
		read -r -p "Delete mlruns/ (every MLflow run, every registered model and its champion, the Optuna studies)? Type yes: " answer; \
		[ "$$answer" = yes ] || { echo "make clean-store: kept mlruns/"; exit 1; }; \
	fi; \
	rm -rf mlruns && echo "make clean-store: deleted mlruns/"
