"""Prices, limits and billing: admin prices per model, usage rows with their group, cached
tokens and an unknown cost (NULL, never $0), limits on plans, groups and per-user overrides,
one subscription per user, and the Stripe events already applied.

Rows written before this revision stored an unknown price as 0: those with tokens and a cost
of 0 become unknown (NULL), so the console lists their models for a price.

Revision ID: 0007_usage_limits_billing
Revises: 0006_admin_console
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_usage_limits_billing'
down_revision = '0006_admin_console'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('model_prices',
    sa.Column('provider', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('input_per_million', sa.Numeric(precision=14, scale=6), nullable=False),
    sa.Column('output_per_million', sa.Numeric(precision=14, scale=6), nullable=False),
    sa.Column('cached_input_per_million', sa.Numeric(precision=14, scale=6), nullable=True),
    sa.Column('updated_by', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_prices')),
    sa.UniqueConstraint('provider', 'model', name='uq_model_prices_provider_model')
    )
    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )
    op.create_table('user_limits',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('limit_requests_per_minute', sa.Integer(), nullable=True),
    sa.Column('limit_tokens_per_day', sa.Integer(), nullable=True),
    sa.Column('limit_cost_per_month', sa.Numeric(precision=14, scale=4), nullable=True),
    sa.Column('limit_concurrent_generations', sa.Integer(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_limits_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_limits')),
    )
    with op.batch_alter_table('user_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_limits_user_id'), ['user_id'], unique=True)
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('limit_requests_per_minute', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('limit_tokens_per_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('limit_cost_per_month', sa.Numeric(precision=14, scale=4), nullable=True))
        batch_op.add_column(sa.Column('limit_concurrent_generations', sa.Integer(), nullable=True))

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('limit_requests_per_minute', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('limit_tokens_per_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('limit_cost_per_month', sa.Numeric(precision=14, scale=4), nullable=True))
        batch_op.add_column(sa.Column('limit_concurrent_generations', sa.Integer(), nullable=True))
        batch_op.drop_column('monthly_token_limit')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='admin'))
        batch_op.add_column(sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('last_event_at', sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_subscriptions_user_id'))
        batch_op.create_index(batch_op.f('ix_subscriptions_user_id'), ['user_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_subscriptions_stripe_customer_id'), ['stripe_customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscriptions_stripe_subscription_id'), ['stripe_subscription_id'], unique=False)

    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('cached_tokens', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('price_source', sa.String(length=20), nullable=True))
        batch_op.alter_column('cost',
               existing_type=sa.NUMERIC(precision=14, scale=8),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_usage_logs_group_id'), ['group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_usage_logs_group_id_groups'), 'groups', ['group_id'], ['id'], ondelete='SET NULL')
    op.execute("UPDATE usage_logs SET cost = NULL WHERE cost = 0 AND prompt_tokens + completion_tokens > 0")



def downgrade():
    op.execute("UPDATE usage_logs SET cost = 0 WHERE cost IS NULL")
    with op.batch_alter_table('usage_logs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_usage_logs_group_id_groups'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_usage_logs_group_id'))
        batch_op.alter_column('cost',
               existing_type=sa.NUMERIC(precision=14, scale=8),
               nullable=False)
        batch_op.drop_column('price_source')
        batch_op.drop_column('cached_tokens')
        batch_op.drop_column('group_id')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_stripe_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_subscriptions_stripe_customer_id'))
        batch_op.drop_index(batch_op.f('ix_subscriptions_user_id'))
        batch_op.create_index(batch_op.f('ix_subscriptions_user_id'), ['user_id'], unique=False)
        batch_op.drop_column('last_event_at')
        batch_op.drop_column('cancel_at_period_end')
        batch_op.drop_column('source')

    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_token_limit', sa.INTEGER(), nullable=True))
        batch_op.drop_column('limit_concurrent_generations')
        batch_op.drop_column('limit_cost_per_month')
        batch_op.drop_column('limit_tokens_per_day')
        batch_op.drop_column('limit_requests_per_minute')
        batch_op.drop_column('is_default')
        batch_op.drop_column('description')

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('limit_concurrent_generations')
        batch_op.drop_column('limit_cost_per_month')
        batch_op.drop_column('limit_tokens_per_day')
        batch_op.drop_column('limit_requests_per_minute')

    op.drop_table('user_limits')
    op.drop_table('stripe_events')
    op.drop_table('model_prices')
