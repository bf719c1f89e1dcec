"""Hardening tests share the server tests' fixtures (a running app, a webhook receiver)."""

from tests.server.conftest import api, night, receiver

__all__ = ["api", "night", "receiver"]
