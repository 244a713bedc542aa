"""Monitoring: drift and quality per window, the metrics pushed for Prometheus, KPIs, the local
monitoring stack, traffic simulation and the retrain loop."""
