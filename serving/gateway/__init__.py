"""The serving edge: the one public KServe v2 HTTP endpoint in front of Triton.

`contract` (what a model accepts, every check a request passes; pure), `auth` (hashed API
keys), `upstream` (Triton's models and the forwarded call), `edge_log` (every answered
prediction into the inference log), `explain` (per-row SHAP attributions of the version that
answered, from its verified registered model), `metrics` (Prometheus), `app` (the ASGI
application that joins them) and `cli` (`python -m serving.gateway serve|start|stop|status|keys`).
"""
