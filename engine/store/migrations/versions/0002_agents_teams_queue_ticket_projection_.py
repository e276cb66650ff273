"""agents, teams, queue, ticket projection, events, surveys, ruleset versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:07:31.505475
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queued_ticket',
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('team', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('queued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('queued_ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queued_ticket_team'), ['team'], unique=False)

    op.create_table('ruleset_version',
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('survey_answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('answered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id', 'resolution', name='uq_survey_answer_resolution')
    )
    with op.batch_alter_table('survey_answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_answer_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_answer_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('team',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('lead', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('rr_cursor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ticket',
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('customer_tier', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('team', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('ruleset_version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('sla_policy', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('escalation_tier', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('opened_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('first_response_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('stages', sa.JSON(), nullable=False),
    sa.Column('sla', sa.JSON(), nullable=False),
    sa.Column('survey_score', sa.Integer(), nullable=True),
    sa.Column('survey_kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_channel'), ['channel'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_status'), ['status'], unique=False)

    op.create_table('ticket_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id', 'seq', name='uq_ticket_event_seq')
    )
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_event_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('agent',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('team', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('max_open', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('shift', sa.JSON(), nullable=True),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['team'], ['team.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_team'), ['team'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_team'))

    op.drop_table('agent')
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_event_ticket_id'))

    op.drop_table('ticket_event')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_status'))
        batch_op.drop_index(batch_op.f('ix_ticket_customer_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_channel'))

    op.drop_table('ticket')
    op.drop_table('team')
    with op.batch_alter_table('survey_answer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_answer_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_survey_answer_customer_id'))

    op.drop_table('survey_answer')
    op.drop_table('ruleset_version')
    with op.batch_alter_table('queued_ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queued_ticket_team'))

    op.drop_table('queued_ticket')
