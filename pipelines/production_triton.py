"""The cluster's validation of a promoted challenger in the production Triton image.

`make pipeline` validates a candidate in the platform's local Triton (python backend on CPU,
`serving.infra_validation.validate_candidate`). The cluster serves with NVIDIA's Triton image
and its native ONNX Runtime backend, so the compiled pipeline validates there: the stage step
writes the candidate folder (`serving.infra_validation.stage_candidate`: the production model
config, the encoded holdout requests, the standard-library probe), this container component
serves it with the production image and the production server flags, and the probe's report
decides the deploy step. Both paths run the same probe; the differences left are listed in
docs/deploy.md.
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

# The predictor image of infra/k8s/base/inference.yaml (a test keeps the two equal).
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:26.08-py3"
ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"  # NGC's driver checks, as the predictor runs
# The predictor's server flags that change what a model does (a test keeps them in the
# manifest); the repository is fixed (no polling) and nothing listens beyond loopback.
SERVER_FLAGS = (
    "--model-control-mode=none",
    "--strict-readiness=true",
    "--disable-auto-complete-config",
    "--http-address=127.0.0.1",
    "--allow-grpc=false",
    "--allow-metrics=false",
    "--exit-timeout-secs=10",
)
# $0: the staged candidate folder, $1: the report path, $2: the HTTP port (default 8010, as the
# predictor). A folder without a case (the gate did not promote) is reported as skipped; the
# probe always writes a report, passed or not.
SERVE_AND_PROBE = f"""
set -u
folder="$0"; report="$1"; port="${{2:-8010}}"
mkdir -p "$(dirname "$report")"
if [ ! -f "$folder/case.json" ]; then
  echo '{{"skipped": true}}' > "$report"; exit 0
fi
tritonserver --model-repository="$folder/repo" {" ".join(SERVER_FLAGS)} \\
  --http-port="$port" &
server=$!
python3 "$folder/triton_probe.py" --case "$folder/case.json" --report "$report" \\
  --url "127.0.0.1:$port" --ready-timeout-s 300 --server-pid "$server"
status=$?
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
exit $status
"""


@dsl.container_component
def validate_in_production_triton(candidate: Input[Artifact], report: Output[Artifact]):
    """Serve the staged candidate from the production Triton image and probe it."""
    return dsl.ContainerSpec(
        image=TRITON_IMAGE,
        command=[ENTRYPOINT, "bash", "-c", SERVE_AND_PROBE],
        args=[candidate.path, report.path],
    )
