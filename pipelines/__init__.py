"""Pipelines: the kfp v2 training pipeline, its components and steps, the local and in-process
runners, and the compile, submit, audit and rollback commands."""
