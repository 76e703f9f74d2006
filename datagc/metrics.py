"""Prometheus textfile-collector output (placeholder until the operations work lands)."""
