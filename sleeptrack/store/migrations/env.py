"""Alembic environment: migrations run on the connection ``Database.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from sleeptrack.store._models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("sleeptrack migrations run through sleeptrack.store.Database.migrate()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
