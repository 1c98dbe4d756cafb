"""The admin console: groups and their model/tool access, runtime site settings, invitations,
discovered models of provider connections, and usage rows indexed by time.

Revision ID: 0006_admin_console
Revises: 0005_context_uploads
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006_admin_console'
down_revision = '0005_context_uploads'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _timestamps():
    return [sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False)]


def upgrade():
    op.create_table(
        'groups',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=True),
        sa.Column('models', JSON, nullable=True),
        sa.Column('tools', JSON, nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
        sa.UniqueConstraint('name', name=op.f('uq_groups_name')),
    )
    op.create_table(
        'group_members',
        sa.Column('group_id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('id', sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_members_group_id_groups'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_group_members_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_group_members')),
        sa.UniqueConstraint('group_id', 'user_id', name='uq_group_members_group_user'),
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_members_user_id'), ['user_id'], unique=False)

    op.create_table(
        'site_settings',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', JSON, nullable=True),
        sa.Column('updated_by', sa.Uuid(), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_site_settings')),
        sa.UniqueConstraint('key', name=op.f('uq_site_settings_key')),
    )
    op.create_table(
        'invites',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('group_id', sa.Uuid(), nullable=True),
        sa.Column('created_by', sa.Uuid(), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_by', sa.Uuid(), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_invites_group_id_groups'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_invites_created_by_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['used_by'], ['users.id'], name=op.f('fk_invites_used_by_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invites')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_invites_token_hash')),
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invites_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invites_created_by'), ['created_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_invites_used_by'), ['used_by'], unique=False)

    with op.batch_alter_table('provider_configs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discovered_models', JSON, nullable=True))
        batch_op.add_column(sa.Column('models_refreshed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('model_names', JSON, server_default=sa.text("'{}'"), nullable=False))

    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.create_index('ix_usage_logs_created_at', ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_logs_created_at')
    with op.batch_alter_table('provider_configs', schema=None) as batch_op:
        batch_op.drop_column('model_names')
        batch_op.drop_column('models_refreshed_at')
        batch_op.drop_column('discovered_models')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invites_used_by'))
        batch_op.drop_index(batch_op.f('ix_invites_created_by'))
        batch_op.drop_index(batch_op.f('ix_invites_group_id'))
    op.drop_table('invites')
    op.drop_table('site_settings')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_user_id'))
        batch_op.drop_index(batch_op.f('ix_group_members_group_id'))
    op.drop_table('group_members')
    op.drop_table('groups')
