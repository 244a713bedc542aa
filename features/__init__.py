"""Feature engineering, data sources and the synthetic data generators."""
