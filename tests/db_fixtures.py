"""Database URLs for tests: a SQLite file, or a throwaway schema in the machine's PostgreSQL.

Import the fixtures into a ``conftest.py`` (``from tests.db_fixtures import database_url``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def postgres_schema_url(base_url: str) -> Iterator[str]:
    """Create a schema, yield a URL whose connections use it, drop it afterwards."""
    schema = f"st_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and once on PostgreSQL (a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sleeptrack.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    yield from postgres_schema_url(base)
