"""Observability: structured logs with correlation ids, Prometheus metrics, health."""
