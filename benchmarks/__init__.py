"""Benchmarks: ``make bench`` (``python -m benchmarks [NAME ...]``) runs them and prints their figures."""
