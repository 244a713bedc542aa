"""Serving: ONNX export, Triton model repository, launcher, client (issue: Triton serving)."""
