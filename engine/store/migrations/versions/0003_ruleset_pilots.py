"""ruleset pilots

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:30:35.266196
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ruleset_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pilot_share', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('pilot_channels', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('ruleset_version', schema=None) as batch_op:
        batch_op.drop_column('pilot_channels')
        batch_op.drop_column('pilot_share')

