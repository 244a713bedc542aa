"""Monitoring: inference log, drift reports, metrics, alerts (issue: monitoring loop)."""
