"""One migration history that matches the models and upgrades/downgrades on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import Base
from bestchat.testing.pytest_plugin import TEST_PG_URL, make_config

DATABASES = ["sqlite"] + (["postgresql"] if TEST_PG_URL else [])


@pytest.fixture(params=DATABASES)
def empty_database_url(request, tmp_path):
    """An empty database of each kind (a dedicated PostgreSQL database, recreated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    url = make_url(TEST_PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"{url.database}_migrations"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_matches_models_and_downgrade_is_clean(empty_database_url, tmp_path):
    app = create_app(make_config("embedded", tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}

        upgrade()  # and back up again, cleanly
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
        db.engine.dispose()


def test_messages_have_the_conversation_time_index(empty_database_url, tmp_path):
    app = create_app(make_config("embedded", tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade()
        indexes = {tuple(i["column_names"]) for i in inspect(db.engine).get_indexes("messages")}
        assert ("conversation_id", "created_at") in indexes
        for table in Base.metadata.sorted_tables:
            indexed = {cols[0] for cols in (tuple(i["column_names"]) for i in inspect(db.engine).get_indexes(table.name))}
            for fk in table.foreign_keys:
                assert fk.parent.name in indexed, f"{table.name}.{fk.parent.name} has no index"
        db.engine.dispose()
