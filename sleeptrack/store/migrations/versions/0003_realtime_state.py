"""Real-time state: where causal staging of a session stopped, kept with its latest real-time result.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("realtime_results", sa.Column("causal_state", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("realtime_results") as batch:
        batch.drop_column("causal_state")
