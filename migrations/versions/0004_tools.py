"""Tools that run: a conversation's switched-off tools, a tool call's round, decider and
approval deadline, and per-round usage with tool time.

Revision ID: 0004_tools
Revises: 0003_sessions
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004_tools'
down_revision = '0003_sessions'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_tools', JSON, server_default=sa.text("'[]'"), nullable=False))

    with op.batch_alter_table('tool_executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('decided_by', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_tool_executions_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('tool_ms', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade():
    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.drop_column('tool_ms')
        batch_op.drop_column('round')

    with op.batch_alter_table('tool_executions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tool_executions_expires_at'))
        batch_op.drop_column('expires_at')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('round')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('disabled_tools')
