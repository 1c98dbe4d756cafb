"""Long conversations and files: a conversation's context strategies, an answer's meta
(what was sent), an upload's extracted text and token count, and the per-user sha256 index.

Revision ID: 0005_context_uploads
Revises: 0004_tools
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0005_context_uploads'
down_revision = '0004_tools'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context_strategy', JSON, nullable=True))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meta', JSON, server_default=sa.text("'{}'"), nullable=False))

    with op.batch_alter_table('file_uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('text_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('details', JSON, server_default=sa.text("'{}'"), nullable=False))
        batch_op.create_index('ix_file_uploads_user_id_sha256', ['user_id', 'sha256'], unique=False)


def downgrade():
    with op.batch_alter_table('file_uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_file_uploads_user_id_sha256')
        batch_op.drop_column('details')
        batch_op.drop_column('text_tokens')
        batch_op.drop_column('text')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('meta')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('context_strategy')
