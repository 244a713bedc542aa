"""Benchmarks: the pipeline, tuning, serving, the gateway, monitoring and model quality measured
on this machine, each writing its table under `reports/`."""
