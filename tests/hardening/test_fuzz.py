"""Fuzz every operation of the OpenAPI document (schemathesis) against a real server on loopback.

Checks: no 5xx, and every answer matches its documented schema and content type. The number of
examples per operation is bounded (``SLEEPTRACK_FUZZ_EXAMPLES``, default 8 for ``make test``;
``make bench`` runs more).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from sleeptrack.server import create_app
from sleeptrack.store import Settings
from sleeptrack.webhooks import private_callbacks_allowed
from tests.server._live import free_port
from tests.server.conftest import make_keys, make_settings

EXAMPLES = int(os.environ.get("SLEEPTRACK_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings_ = make_settings(tmp_path_factory.mktemp("fuzz"))
    keys = make_keys(settings_)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings_), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    key = keys["unlimited"]
    user = httpx.post(f"{base}/ai/v1/users", headers={"x-api-key": key}).json()["result"]["user_id"]
    yield {"base": base, "key": key, "user": user}
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server['base']}/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from the app's OpenAPI document (nothing is started)."""
    app = create_app(Settings(data_dir=Path("/nonexistent"), allow_private_callbacks=private_callbacks_allowed()))
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_operation(method: str, path: str, fuzz_schema: Any, fuzz_server: dict[str, Any]) -> None:
    operation = fuzz_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        headers = {"x-api-key": fuzz_server["key"]}
        if case.headers and case.headers.get("x-user-id") == "":
            headers["x-user-id"] = fuzz_server["user"]  # some cases reach a real user's data
        case.call_and_validate(
            base_url=fuzz_server["base"],
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            timeout=30,
        )

    run()
