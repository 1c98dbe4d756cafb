"""The console's Prices page: who may use it, models with usage of unknown cost listed first,
setting, validating and removing an admin price (audited), and pricing the usage stored with
an unknown cost, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, ModelPrice, UsageLog, User
from bestchat.services import accounts
from tests.admin_helpers import form_post, sign_in_admin

PAGE = "/admin/prices/"


def add_usage(app, provider: str, model: str, rows: list[tuple[int, int, int, str | None]]) -> None:
    """Usage rows (prompt, completion, cached tokens, cost or None) of a user."""
    with app.app_context():
        owner = accounts.find_by_email("someone@example.com") or accounts.register(
            "someone@example.com", "correct horse battery")
        for prompt, completion, cached, cost in rows:
            db.session.add(UsageLog(user_id=owner.id, provider=provider, model=model, prompt_tokens=prompt,
                                    completion_tokens=completion, cached_tokens=cached,
                                    cost=None if cost is None else Decimal(cost),
                                    price_source=None if cost is None else "provider"))
        db.session.commit()


def table_row(page: str, model: str) -> str:
    match = re.search(r'<tr data-model="' + re.escape(model) + r'">(.*?)</tr>', page, re.S)
    assert match, f"{model} is not listed"
    return match.group(1)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_non_admins_are_refused(client, user):
    assert client.get(PAGE).status_code == 403
    assert client.http.post(PAGE + "set", data={"csrf_token": client.csrf}).status_code == 403


def test_posts_without_the_csrf_token_are_refused(app):
    admin = sign_in_admin(app)
    response = form_post(admin, PAGE + "set", {"provider": "openai", "model": "m", "input_per_million": "1",
                                               "output_per_million": "2"}, csrf=False)
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalars(select(ModelPrice)).all() == []


def test_models_with_unknown_cost_come_first_with_the_price_in_effect(app):
    add_usage(app, "demo", "demo", [(10, 5, 0, "0")])
    add_usage(app, "openai", "gpt-4o-mini", [(100, 50, 0, "0.00005")])
    add_usage(app, "openai", "mystery", [(1000, 200, 0, None), (500, 100, 0, None), (7, 3, 0, "0.1")])
    add_usage(app, "other", "unpriced", [(10, 10, 0, None)])
    admin = sign_in_admin(app)
    page = admin.get(PAGE).get_data(as_text=True)
    models = re.findall(r'<tr data-model="([^"]+)">', page)
    assert models[:2] == ["openai/mystery", "other/unpriced"]  # most tokens of unknown cost first
    assert set(models[2:]) == {"demo/demo", "openai/gpt-4o-mini"}
    mystery = table_row(page, "openai/mystery")
    assert "2 requests, 1,800 tokens" in mystery and "unknown" in mystery
    mini = table_row(page, "openai/gpt-4o-mini")
    assert "litellm" in mini and "$0.15" in mini and "$0.60" in mini and "$0.075" in mini
    assert "provider" in table_row(page, "demo/demo")  # the demo plugin's own price: $0
    alert = page[page.index('id="prices-unknown"'):]
    assert "openai/mystery (2 requests, 1,800 tokens)" in alert


def test_bad_prices_are_refused_with_the_reason(app):
    admin = sign_in_admin(app)
    for fields, reason in [({"input_per_million": "lots"}, "must be a number"),
                           ({"output_per_million": "-2"}, "zero or more"),
                           ({"input_per_million": ""}, "input price is required"),
                           ({"model": ""}, "model is required")]:
        data = {"provider": "openai", "model": "m", "input_per_million": "1", "output_per_million": "2", **fields}
        response = form_post(admin, PAGE + "set", data)
        assert response.status_code == 400
        assert reason in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(ModelPrice)).all() == []


def test_setting_a_price_offers_to_price_the_unknown_usage(app):
    add_usage(app, "openai", "mystery", [(1000, 200, 400, None), (500, 100, 0, None), (7, 3, 0, "0.1")])
    admin = sign_in_admin(app)
    response = form_post(admin, PAGE + "set", {"provider": "openai", "model": "mystery", "input_per_million": "2",
                                               "output_per_million": "10", "cached_input_per_million": "0.5"})
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "admin" in table_row(page, "openai/mystery")
    offer = page[page.index('id="reprice-offer"'):]
    assert "2 requests of openai/mystery" in offer
    action = re.search(r'action="([^"]+/reprice)"', offer).group(1)
    assert form_post(admin, action).status_code == 302
    with app.app_context():
        costs = sorted(row.cost for row in db.session.scalars(select(UsageLog).where(UsageLog.model == "mystery")))
        # 600 x $2 + 400 x $0.50 + 200 x $10; 500 x $2 + 100 x $10; the known $0.1 is kept
        assert costs == [Decimal("0.002"), Decimal("0.0034"), Decimal("0.1")]
        sources = {row.price_source for row in db.session.scalars(select(UsageLog).where(UsageLog.cost < 0.01))}
        assert sources == {"admin"}
        actions = [(e.action, e.details.get("rows")) for e in db.session.scalars(
            select(AuditLog).where(AuditLog.action.like("price.%")).order_by(AuditLog.created_at))]
        assert actions == [("price.created", None), ("price.repriced", 2)]
    again = admin.get(PAGE + "?provider=openai&model=mystery").get_data(as_text=True)
    assert 'id="reprice-offer"' not in again and 'id="prices-unknown"' not in again


def test_an_admin_price_can_be_changed_and_removed(app):
    add_usage(app, "openai", "gpt-4o-mini", [(100, 50, 0, "0.00005")])
    admin = sign_in_admin(app)
    fields = {"provider": "openai", "model": "gpt-4o-mini", "input_per_million": "1", "output_per_million": "2"}
    form_post(admin, PAGE + "set", fields)
    form_post(admin, PAGE + "set", {**fields, "input_per_million": "3"})
    page = admin.get(PAGE + "?provider=openai&model=gpt-4o-mini").get_data(as_text=True)
    assert re.search(r'id="input_per_million"[^>]*value="3"', page)
    assert "$3.00" in table_row(page, "openai/gpt-4o-mini")
    with app.app_context():
        row = db.session.scalar(select(ModelPrice))
        assert (row.input_per_million, row.updated_by) == (Decimal(3), db.session.scalar(
            select(User.id).where(User.email == "root@example.com")))
        price_id = row.id
    assert form_post(admin, f"{PAGE}{price_id}/delete").status_code == 302
    page = admin.get(PAGE).get_data(as_text=True)
    assert "litellm" in table_row(page, "openai/gpt-4o-mini")
    with app.app_context():
        assert db.session.scalars(select(ModelPrice)).all() == []
        assert [e.action for e in db.session.scalars(select(AuditLog).where(AuditLog.action.like("price.%"))
                                                     .order_by(AuditLog.created_at))] == \
            ["price.created", "price.updated", "price.deleted"]


@pytest.mark.parametrize("path", ["{}/delete", "{}/reprice"])
def test_unknown_prices_are_404(app, path):
    admin = sign_in_admin(app)
    assert form_post(admin, PAGE + path.format(uuid.uuid4())).status_code == 404
    assert form_post(admin, PAGE + path.format("not-an-id")).status_code == 404
