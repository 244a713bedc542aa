"""Pipeline steps: the I/O and MLflow edge that each kfp component calls, one module per stage.

A component body imports one step function and calls it; the step reads its input artifacts,
calls the plain functions in `features/`, `models/` and `serving/`, writes its outputs with
metadata and logs to the pipeline's MLflow run. What every step shares is in `edge`.
"""
