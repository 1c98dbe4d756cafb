"""Per-user session generation (sessions end on logout, password change, disable) and
remember-me tokens stored hashed (random and revocable).

Revision ID: 0003_sessions
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003_sessions'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default=sa.text('0'),
                                      nullable=False))

    op.create_table('remember_tokens',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_remember_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remember_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_remember_tokens_token_hash'))
    )
    with op.batch_alter_table('remember_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remember_tokens_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('remember_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remember_tokens_user_id'))

    op.drop_table('remember_tokens')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
