# syntax=docker/dockerfile:1
# The pipeline image. One image runs, on the cluster:
#   - every Kubeflow pipeline step (`make compile` names it as the components' base image; the
#     component code is the same that `make pipeline` runs locally through kfp.local),
#   - the MLflow tracking server (infra/k8s/base/mlflow.yaml: same MLflow as its clients),
#   - Triton's model sync (`python -m serving.deploy`, infra/k8s/base/triton.yaml).
# Build: make image IMAGE=registry.example.com/tabular-mlops/pipeline-python:0.1.0
# (keep "python" in the name: kfp.local warns about base images without it).

# Exact tag of the official image (Python 3.11 on Debian 12). For byte-for-byte rebuilds add
# its digest (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`) as
# FROM python:3.11.14-slim-bookworm@sha256:<digest>.
FROM python:3.11.14-slim-bookworm

# The steps' fallback for their git lineage tag (no .git in the image).
ARG GIT_COMMIT=unknown
# Where the steps find MLflow when nothing else says so: the in-cluster service of
# infra/k8s/base/mlflow.yaml. Override at build time or with the pod's environment.
ARG MLFLOW_TRACKING_URI=http://mlflow.mlops.svc.cluster.local:5000
# Torch's CPU build (the default wheel pulls several GB of CUDA libraries; training runs on
# CPU nodes, serving on Triton).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    GIT_COMMIT=${GIT_COMMIT} \
    MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI}

# A fixed, high UID/GID that the Kubernetes manifests name (runAsUser: 10001).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app

WORKDIR /opt/tabular-mlops

# 1. The pinned dependencies, in their own layer (rebuilt only when the lock changes). Exact
#    pins, no resolution (--no-deps); `pip check` fails the build if the lock missed one.
COPY infra/image/requirements.lock infra/image/requirements.lock
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" \
        "$(grep -E '^torch==' infra/image/requirements.lock)" \
    && pip install --no-deps -r infra/image/requirements.lock \
    && pip check

# 2. Triton's own runtime for the deploy step's infra validation (the real server from the
#    nvidia-pytriton wheel, numpy<2), built by the same script as locally (make triton-env).
COPY infra/pinned_venv.sh infra/
COPY serving/triton/requirements.txt serving/triton/setup_env.sh serving/triton/
RUN PYTHON=python3.11 serving/triton/setup_env.sh

# 3. The package itself, editable as in a clone: serving/ finds serving/triton/model.py and
#    .venv-triton beside its source. Everything stays root-owned and read-only for the user.
COPY . .
RUN pip install --no-deps -e . \
    && pip check \
    && python -c "import pipelines.steps.deploy, serving.deploy, kfp; print('kfp', kfp.__version__)"

# Pipeline steps start in the user's home: writable, and where a step without an explicit
# MLflow or Optuna URL would put its SQLite files (ephemeral in a pod).
WORKDIR /home/app
USER 10001:10001

# Kubernetes probes the long-running containers (MLflow, the model sync); pipeline steps are
# batch processes with no endpoint to check.
# checkov:skip=CKV_DOCKER_2:The containers of this image are health-checked by Kubernetes probes (infra/k8s); pipeline steps are batch jobs without an endpoint
