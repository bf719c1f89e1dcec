"""Database connections and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on; write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead of failing half-way. PostgreSQL is
used as it is. Migrations (Alembic, shipped in ``sleeptrack/store/migrations``) run on start.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["MIGRATIONS_DIR", "Database", "DatabaseError", "is_sqlite_url"]

log = logging.getLogger("sleeptrack.store")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary key of the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK = 0x5EE97AC


def is_sqlite_url(url: str | URL) -> bool:
    """True for a SQLite database URL (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated (message says what to do)."""


def _sqlite_engine(url: URL, synchronous: str, immediate: bool, pool_size: int) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite would otherwise
        # BEGIN lazily on the first write, which turns lock waits into "database is locked").
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        # A writer waits for the write lock in _begin_immediate; SQLite's own wait is for readers.
        cur.execute(f"PRAGMA busy_timeout={0 if immediate else int(_LOCK_WAIT * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if immediate:
            _begin_immediate(conn)
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


#: How long a write transaction waits for SQLite's write lock before failing ("database is locked").
_LOCK_WAIT = 60.0


def _begin_immediate(conn: Any) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock in naps of 0.25 to 6 ms.

    SQLite's busy handler sleeps 1, 2, 5, 10, … up to 100 ms between tries, so a writer that keeps missing
    the lock (another API process's group commit, an analysis worker) ends up sleeping far longer than the
    lock is held. In WAL mode the rest of a transaction begun this way never waits for a lock.
    """
    dbapi_connection = conn.connection.dbapi_connection
    deadline = time.monotonic() + _LOCK_WAIT
    nap = 0.0005
    while time.monotonic() < deadline:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        time.sleep(nap * random.uniform(0.5, 1.5))
        nap = min(nap * 2, 0.004)
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # a last try; SQLAlchemy's "database is locked" error if it fails


class Database:
    """Connections to the sleeptrack database.

    ``read()`` and ``write()`` give an ORM session inside one transaction: ``write()`` commits when the
    block ends (rolls back on an exception), ``read()`` never writes.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.is_sqlite = is_sqlite_url(self.url)
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, sqlite_synchronous, immediate=False, pool_size=pool_size)
            self.write_engine = _sqlite_engine(self.url, sqlite_synchronous, immediate=True, pool_size=pool_size)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
            self.write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @contextmanager
    def read(self) -> Iterator[Session]:
        # Closing the session ends its transaction (rolled back) and keeps loaded objects usable.
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; safe with concurrent starters)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.write_engine.connect() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
                try:
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    conn.commit()
                finally:
                    if not self.is_sqlite:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                        conn.commit()
        except Exception as exc:
            raise DatabaseError(f"cannot migrate the database at {self.url.render_as_string()}: {exc}") from exc

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
