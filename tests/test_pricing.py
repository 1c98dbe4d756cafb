"""What an answer costs: the price's order (the admin's, the provider's, litellm's model map,
unknown), cached prompt tokens, and the usage rows real generations write on SQLite and
PostgreSQL (an unknown price is stored as unknown, never as $0)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import Group, GroupMember, ModelPrice, UsageLog, User
from bestchat.plugin_api import Finish, Price, Provider, TextDelta, Usage, hookimpl
from bestchat.services import accounts, model_prices, pricing, usage_events
from bestchat.testing import Script, add_provider, plugin_registered, send_and_wait

MAP_MINI = Price(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), "model_map")  # litellm's gpt-4o-mini


class Priced(Provider):
    """Knows its own price; reports cached prompt tokens, and no cost."""

    name = "priced"
    needs_key = False
    default_models = ("gpt-4o-mini", "p")

    def price(self, model):
        return Price(2, 8, "0.5")

    def stream(self, model, messages, *, options=None, tools=None):
        yield TextDelta("cached answer")
        yield Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
        yield Finish()


class Plain(Provider):
    """Says nothing of prices."""

    name = "plain"
    needs_key = False
    default_models = ("gpt-4o-mini", "mystery-model")

    def stream(self, model, messages, *, options=None, tools=None):
        yield TextDelta("plain answer")
        yield Usage(prompt_tokens=10, completion_tokens=5)
        yield Finish()


class PricedPlugin:
    @hookimpl
    def register_providers(self, register):
        register(Priced)
        register(Plain)


@pytest.fixture
def priced(app):
    with plugin_registered(PricedPlugin(), "bestchat-priced-test"):
        yield


def admin_user() -> User:
    return accounts.register(f"root-{uuid.uuid4().hex[:6]}@example.com", "correct horse battery", role="admin")


def rows_of(app, answer) -> list[UsageLog]:
    with app.app_context():
        rows = db.session.scalars(select(UsageLog).where(UsageLog.message_id == uuid.UUID(answer["id"]))
                                  .order_by(UsageLog.round)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


# ---- the price's order ------------------------------------------------------------------------

def test_the_admin_wins_then_the_provider_then_the_map_else_unknown(app, priced):
    with app.app_context():
        assert pricing.resolve("plain", "gpt-4o-mini") == MAP_MINI
        assert pricing.resolve("priced", "gpt-4o-mini") == Price(2, 8, "0.5", "provider")
        assert pricing.resolve("plain", "mystery-model") is None
        model_prices.set_price(admin_user(), provider="plain", model="gpt-4o-mini", input_per_million="1",
                               output_per_million="3")
        model_prices.set_price(admin_user(), provider="priced", model="gpt-4o-mini", input_per_million="0.5",
                               output_per_million="1.5", cached_input_per_million="0.25")
        assert pricing.resolve("plain", "gpt-4o-mini") == Price(1, 3, None, "admin")
        assert pricing.resolve("priced", "gpt-4o-mini") == Price("0.5", "1.5", "0.25", "admin")
        assert pricing.resolve("priced", "p").source == "provider"  # another model keeps the provider's


def test_a_cost_the_provider_reports_ranks_as_its_price(app, priced):
    with app.app_context():
        reported = Usage(prompt_tokens=10, completion_tokens=5, cost=0.25)
        assert pricing.round_cost("plain", "mystery-model", reported) == (Decimal("0.25"), "provider")
        assert pricing.round_cost("plain", "mystery-model", Usage(10, 5)) == (None, None)
        model_prices.set_price(admin_user(), provider="plain", model="mystery-model", input_per_million="1000",
                               output_per_million="2000")
        assert pricing.round_cost("plain", "mystery-model", reported) == (Decimal("0.02"), "admin")


def test_cached_prompt_tokens_are_charged_at_the_cached_rate():
    price = Price(2, 8, "0.5")
    # 600 uncached at $2, 400 cached at $0.50, 100 completion at $8, per million
    assert pricing.cost_of(price, 1000, 100, 400) == Decimal("0.0022")
    # without a cached rate they are charged as input
    assert pricing.cost_of(Price(2, 8), 1000, 100, 400) == Decimal("0.0028")
    assert pricing.cost_of(MAP_MINI, 1_000_000, 1_000_000) == Decimal("0.75")


def test_prices_the_admin_sets_are_validated(app):
    with app.app_context():
        actor = admin_user()
        for bad in ({"input_per_million": "abc"}, {"input_per_million": "-1"}, {"output_per_million": ""},
                    {"cached_input_per_million": "NaN"}, {"input_per_million": "99999999999"}, {"model": " "}):
            values = {"provider": "plain", "model": "m", "input_per_million": "1", "output_per_million": "2", **bad}
            with pytest.raises(Exception) as raised:
                model_prices.set_price(actor, **values)
            assert raised.value.code in ("invalid_field", "missing_field")
        assert pricing.admin_prices() == {}


# ---- usage rows of real generations -------------------------------------------------------------

def test_a_native_openai_answer_with_a_model_in_litellms_map_gets_its_price(app, client, user, fake_openai):
    if "openai" not in plugins.get_providers():
        pytest.skip("bestchat-openai is not installed")
    add_provider(client, "openai", base_url=fake_openai.url, api_key="sk-test-key")
    fake_openai.enqueue(Script(content="four words of answer"))
    answer = send_and_wait(client, "how much is this", model="openai/gpt-4o-mini")
    assert answer["status"] == "complete"
    [row] = rows_of(app, answer)
    assert (row.provider, row.model, row.price_source) == ("openai", "gpt-4o-mini", "model_map")
    assert row.prompt_tokens > 0 and row.completion_tokens == 4
    assert row.cost == pricing.cost_of(MAP_MINI, row.prompt_tokens, row.completion_tokens).quantize(Decimal("1e-8"))
    assert answer["usage"]["cost"] == pytest.approx(float(row.cost))


def test_an_unknown_model_stores_an_unknown_cost_never_zero(app, client, user, fake_openai):
    if "openai" not in plugins.get_providers():
        pytest.skip("bestchat-openai is not installed")
    add_provider(client, "openai", base_url=fake_openai.url, api_key="sk-test-key")
    answer = send_and_wait(client, "hello", model="openai/fake-model")
    [row] = rows_of(app, answer)
    assert (row.cost, row.price_source) == (None, None)
    assert row.prompt_tokens > 0 and answer["usage"]["cost"] is None


def test_the_demo_provider_is_free(app, client, user):
    answer = send_and_wait(client, "two words", model="demo/demo", settings={"tokens_per_second": 0})
    [row] = rows_of(app, answer)
    assert (row.cost, row.price_source) == (Decimal(0), "provider")


def test_cached_tokens_are_recorded_and_priced(app, client, user, priced):
    answer = send_and_wait(client, "hello", model="priced/p")
    [row] = rows_of(app, answer)
    assert (row.prompt_tokens, row.cached_tokens, row.completion_tokens) == (1000, 400, 100)
    assert (row.cost, row.price_source) == (Decimal("0.0022"), "provider")


def test_an_admin_price_set_later_wins_for_new_answers(app, client, user, priced):
    first = send_and_wait(client, "hello", model="plain/gpt-4o-mini")
    assert rows_of(app, first)[0].price_source == "model_map"
    with app.app_context():
        model_prices.set_price(admin_user(), provider="plain", model="gpt-4o-mini", input_per_million="1000",
                               output_per_million="1000")
    again = send_and_wait(client, "hello", model="plain/gpt-4o-mini")
    [row] = rows_of(app, again)
    assert (row.cost, row.price_source) == (Decimal("0.015"), "admin")  # 15 tokens at $1000 per million
    with app.app_context():
        model_prices.delete_price(admin_user(), model_prices.get_price(
            db.session.scalar(select(ModelPrice.id))))
    third = send_and_wait(client, "hello", model="plain/gpt-4o-mini")
    assert rows_of(app, third)[0].price_source == "model_map"


def test_usage_is_counted_under_the_users_first_group_by_name(app, client, user, priced):
    with app.app_context():
        owner = db.session.scalar(select(User.id).where(User.email == "alice@example.com"))
        beta, alpha = Group(name="Beta"), Group(name="Alpha")
        db.session.add_all([beta, alpha])
        db.session.flush()
        db.session.add_all([GroupMember(group_id=beta.id, user_id=owner), GroupMember(group_id=alpha.id, user_id=owner)])
        db.session.commit()
        alpha_id = alpha.id
    answer = send_and_wait(client, "hello", model="plain/mystery-model")
    assert rows_of(app, answer)[0].group_id == alpha_id


def test_usage_callbacks_hear_of_committed_rows_only_once(app, client, user, priced):
    heard = []

    def listener(user_id, tokens, cost):
        with db.engine.connect() as connection:  # another connection sees the rows: committed
            stored = connection.execute(select(func.count()).select_from(UsageLog)
                                        .where(UsageLog.user_id == user_id)).scalar()
        heard.append((tokens, cost, stored))

    usage_events.on_usage(listener)
    try:
        send_and_wait(client, "hello", model="priced/p")
        send_and_wait(client, "hello", model="plain/mystery-model")
    finally:
        usage_events._callbacks.remove(listener)
    # the unknown cost adds no known cost
    assert heard == [(1100, Decimal("0.0022"), 1), (15, Decimal(0), 2)]


def test_a_price_changed_by_another_process_is_read_at_once(app, backend, priced):
    """Another process's change reaches this one through the version in Redis."""
    if backend != "production":
        pytest.skip("processes share prices through Redis (embedded mode is one process)")
    from bestchat.redis_client import get_redis

    with app.app_context():
        assert pricing.resolve("plain", "gpt-4o-mini").source == "model_map"  # read and kept
        db.session.add(ModelPrice(provider="plain", model="gpt-4o-mini", input_per_million=Decimal(1),
                                  output_per_million=Decimal(2)))
        db.session.commit()
        get_redis().incr("bestchat:prices:version")  # what the other process's pricing.changed() does
        assert pricing.resolve("plain", "gpt-4o-mini") == Price(1, 2, None, "admin")
