"""Task logs: the lines each task attempt printed, logged or failed with

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('task_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('task_id', sa.String(length=255), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('logged_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_log'))
    )
    with op.batch_alter_table('task_log', schema=None) as batch_op:
        batch_op.create_index('ix_task_log_execution_id_id', ['execution_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_log_logged_at'), ['logged_at'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('task_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_log_logged_at'))
        batch_op.drop_index('ix_task_log_execution_id_id')

    op.drop_table('task_log')
