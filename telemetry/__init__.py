"""Metrics and logging: what operators see of a running instance."""
