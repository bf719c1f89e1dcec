"""Fixtures shared by the whole suite.

Tests that need ``../shared/data`` or the machine's PostgreSQL / Redis use the fixtures below: they skip
with a clear reason on a machine without them, and fail when ``CI=true`` (CI must run every test).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sleeptrack._data import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() == "true"

# The tests' webhook receivers listen on loopback, which a server refuses by default (only public callback
# addresses); servers started by the tests, in this process or as children, allow them.
os.environ.setdefault("SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS", "1")


def skip_or_fail(reason: str) -> None:
    """Skip locally; in CI a missing prerequisite is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``../shared/data``)."""
    path = shared_data_dir()
    if path is None:
        skip_or_fail("../shared/data is not available (set SLEEPTRACK_SHARED_DATA)")
        raise AssertionError("unreachable")
    return path


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("SLEEPTRACK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    if not _port_open("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not running on 127.0.0.1:5432")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("SLEEPTRACK_TEST_REDIS", "redis://127.0.0.1:6379/0")
    if not _port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not running on 127.0.0.1:6379")
    return url
