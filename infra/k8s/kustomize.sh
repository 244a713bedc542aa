#!/usr/bin/env bash
# Build a kustomization of infra/k8s the one way the Makefile, the tests and docs/deploy.md do:
#   infra/k8s/kustomize.sh infra/k8s/overlays/gpu | kubectl apply --server-side -f -
# --load-restrictor=LoadRestrictionsNone lets base/ generate its ConfigMaps from monitoring/
# (the local stack's own files: one source). It is the only non-default flag. Offline: the
# platform's kustomizations reference no remote base.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 KUSTOMIZATION_DIR" >&2; exit 2; }
command -v kubectl >/dev/null 2>&1 || {
    echo "kustomize.sh: kubectl not found; install kubectl >= 1.27 (it builds kustomize in):" \
        "https://kubernetes.io/docs/tasks/tools/ or Debian/Ubuntu: apt-get install kubectl" \
        "from the Kubernetes apt repository" >&2
    exit 127
}
exec kubectl kustomize --load-restrictor=LoadRestrictionsNone "$1"
