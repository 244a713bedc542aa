"""The training pipeline's stages, in order: the one list the steps, the runner, the benchmark
and the KPI page share (MLflow metrics `stage_seconds.<stage>`)."""

STAGES = (
    "load", "validate", "split", "tune", "train",
    "evaluate", "explain", "export", "register", "gate", "deploy",
)  # fmt: skip
