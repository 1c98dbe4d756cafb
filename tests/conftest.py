"""Fixtures come from ``bestchat.testing.pytest_plugin`` (installed as a pytest11 entry point,
so first- and third-party plugins get the same ones). Only suite-local fixtures live here."""

import pytest
from sqlalchemy import delete

from bestchat.extensions import db
from bestchat.models import SiteSetting
from bestchat.testing.client import Client
from tests.admin_helpers import sign_in_admin
from tests.fake_stripe import FakeStripe


@pytest.fixture
def admin(app) -> Client:
    """A signed-in admin (``root@example.com``)."""
    return sign_in_admin(app)


@pytest.fixture
def no_site_settings_left(app):
    """No setting stored in the console outlives its test: on PostgreSQL the next test's app
    would apply it when it starts (its tables are emptied only after that)."""
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(SiteSetting))
        db.session.commit()


@pytest.fixture
def fake_stripe():
    """A local fake of Stripe's API (``tests/fake_stripe.py``) that records what it is sent."""
    with FakeStripe() as server:
        yield server
