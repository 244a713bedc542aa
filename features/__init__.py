"""Data in: sources and generators, the data contract (row rules, batch expectations), the
split and the feature transformers; pure functions on frames."""
