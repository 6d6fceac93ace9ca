"""Definition file source: the file a scan last registered and its content hash, so a rescan never reverts the API

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a file held when last scanned: the current revision when a file registered it, else the newest such one.
_FILE_REVISION = (
    "COALESCE((SELECT r.{column} FROM revision AS r WHERE r.workflow_id = definition.workflow_id"
    " AND r.number = definition.current_revision AND r.source_path IS NOT NULL),"
    " (SELECT r.{column} FROM revision AS r WHERE r.workflow_id = definition.workflow_id"
    " AND r.source_path IS NOT NULL ORDER BY r.number DESC LIMIT 1))"
)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('definition', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_path', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('file_hash', sa.String(length=64), nullable=True))
    # Backfill, so the first scan after the upgrade does not take every file for a change.
    op.execute(
        f"UPDATE definition SET file_path = {_FILE_REVISION.format(column='source_path')}, "
        f"file_hash = {_FILE_REVISION.format(column='content_hash')}"
    )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('definition', schema=None) as batch_op:
        batch_op.drop_column('file_hash')
        batch_op.drop_column('file_path')
