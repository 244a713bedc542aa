"""Serving: ONNX export, the Triton model repository and its deploys, a local Triton, infra
validation, the client, and the gateway with its inference log."""
