"""outbox delivery state: status, attempts, detail, last_error, address, subject

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00.000000

Rows written before connectors existed were delivered (to the log) in the same transaction that
inserted them, so they become `delivered`; the server default makes that true for them without an
UPDATE, on SQLite and PostgreSQL alike.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False, server_default='delivered'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True))
        batch_op.add_column(sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('subject')
        batch_op.drop_column('address')
        batch_op.drop_column('last_error')
        batch_op.drop_column('detail')
        batch_op.drop_column('attempts')
        batch_op.drop_column('status')
