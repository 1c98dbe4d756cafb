"""The message store (:mod:`bestchat.store`) and the ConversationManager's one path through it:
what an exchange stores, what a refused one leaves (nothing), the claim's reading of the branch
and of the provider configs in failover order. Both backends: PostgreSQL's one-statement store
and SQLite's transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bestchat.dispatch import get_dispatcher
from bestchat.errors import AccountDisabled, Conflict, NotFound, Overloaded, Unavailable
from bestchat.extensions import db
from bestchat.models import Conversation, Message, ProviderConfig, User
from bestchat.models.base import utcnow
from bestchat.models.message_status import MessageStatus
from bestchat.providers.registry import enabled_configs
from bestchat.services.conversations import ConversationManager
from bestchat.store import Exchange, get_store
from tests.chat_fakes import branch_messages
from bestchat.store.postgresql import PostgreSQLStore
from bestchat.store.sqlite import SQLiteStore
from bestchat.streaming.subscriber import Subscriber
from tests.chat_fakes import GatedProvider, app_config, gated, wait_for  # noqa: F401 - fixtures
from tests.test_admission import memory_bus

API = "/api/v1"


def new_conversation(client, model="gated/g") -> uuid.UUID:
    return uuid.UUID(client.post(f"{API}/conversations", {"model": model}).get_json()["id"])


def new_message(conversation_id, role, *, parent_id=None, status=MessageStatus.COMPLETE, model=None,
                content="", at=None) -> Message:
    at = at or utcnow()
    return Message(id=uuid.uuid4(), conversation_id=conversation_id, parent_id=parent_id, role=role,
                   content=content, parts=[], status=status, error=None, error_code=None, token_count=None,
                   provider=None, model=model, last_seq=0, created_at=at, updated_at=at)


def exchange(user_id, conversation_id, *, parent_id=None, after_newest=True, model=None) -> Exchange:
    now = utcnow()
    question = new_message(conversation_id, "user", parent_id=parent_id, content="hi", at=now)
    answer = new_message(conversation_id, "assistant", parent_id=question.id, status=MessageStatus.PENDING,
                         model=model, at=now + timedelta(microseconds=1))
    return Exchange(user_id, [question, answer], after_newest=after_newest)


def stored(conversation_id) -> list[tuple]:
    """The conversation's messages as stored (oldest first), and its ``updated_at``."""
    db.session.commit()  # (a fresh snapshot)
    rows = db.session.execute(select(Message.id, Message.parent_id, Message.role, Message.status, Message.model)
                              .where(Message.conversation_id == conversation_id)
                              .order_by(Message.created_at)).all()
    return [tuple(r) for r in rows], db.session.get(Conversation, conversation_id).updated_at


def status(message_id) -> str:
    db.session.commit()  # (a fresh snapshot)
    return db.session.get(Message, message_id).status


def refuse() -> str:
    raise Overloaded(retry_after=3)


def manager(user) -> ConversationManager:
    return ConversationManager(db.session.get(User, uuid.UUID(user["id"])))


def test_the_store_is_chosen_by_the_database(app, backend):
    expected = PostgreSQLStore if backend == "production" else SQLiteStore
    assert type(get_store(app)) is expected


# ---- exchanges ------------------------------------------------------------------------------

def test_an_exchange_follows_the_newest_message_with_the_admitted_status_and_the_conversations_model(
        app, client, user):
    conversation_id = new_conversation(client)
    user_id = uuid.UUID(user["id"])
    with app.app_context():
        first = exchange(user_id, conversation_id)
        found = get_store().add_exchange(first, lambda: MessageStatus.QUEUED)
        assert found.stored and found.parent_id is None and found.model == "gated/g"
        question, answer = first.messages
        assert (question.parent_id, answer.status, answer.model) == (None, MessageStatus.QUEUED, "gated/g")
        rows, updated_at = stored(conversation_id)
        assert rows == [(question.id, None, "user", "complete", None),
                        (answer.id, question.id, "assistant", "queued", "gated/g")]
        assert updated_at.replace(tzinfo=None) == question.created_at.replace(tzinfo=None)

        get_store().finish(answer.id, MessageStatus.COMPLETE)
        second = exchange(user_id, conversation_id, model="demo/demo")
        assert get_store().add_exchange(second, lambda: MessageStatus.PENDING).stored
        assert second.messages[0].parent_id == answer.id and second.answer.model == "demo/demo"
        assert stored(conversation_id)[0][2:] == [
            (second.messages[0].id, answer.id, "user", "complete", None),
            (second.answer.id, second.messages[0].id, "assistant", "pending", "demo/demo")]


def test_an_exchange_after_a_running_answer_is_refused_without_asking_the_admission(app, client, user):
    conversation_id = new_conversation(client)
    user_id = uuid.UUID(user["id"])
    with app.app_context():
        running = exchange(user_id, conversation_id)
        get_store().add_exchange(running, lambda: MessageStatus.PENDING)
        before = stored(conversation_id)
        asked = []
        for refused in (exchange(user_id, conversation_id),
                        exchange(user_id, conversation_id, parent_id=running.answer.id, after_newest=False)):
            found = get_store().add_exchange(refused, lambda: asked.append(1) or MessageStatus.PENDING)
            assert not found.stored and found.parent_status == "pending" and not found.allows(user_id)
        assert asked == [] and stored(conversation_id) == before


def test_an_exchange_the_admission_refuses_leaves_nothing_stored(app, client, user):
    conversation_id = new_conversation(client)
    with app.app_context():
        before = stored(conversation_id)
        with pytest.raises(Overloaded):
            get_store().add_exchange(exchange(uuid.UUID(user["id"]), conversation_id), refuse)
        assert stored(conversation_id) == before


def test_an_exchange_is_refused_for_another_users_conversation_a_foreign_parent_or_a_disabled_account(
        app, client, user):
    mine = new_conversation(client)
    other = client.new()
    other.signup("mallory@example.com", "mallory horse battery")
    theirs = new_conversation(other)
    user_id = uuid.UUID(user["id"])
    with app.app_context():
        found = get_store().add_exchange(exchange(user_id, theirs), lambda: MessageStatus.PENDING)
        assert found.owner_id not in (None, user_id) and not found.stored
        assert stored(theirs)[0] == []
        missing = get_store().add_exchange(exchange(user_id, uuid.uuid4()), lambda: MessageStatus.PENDING)
        assert (missing.owner_id, missing.stored) == (None, False)

        other_parent = new_message(theirs, "user")
        found = get_store().add_exchange(
            exchange(user_id, mine, parent_id=other_parent.id, after_newest=False), lambda: MessageStatus.PENDING)
        assert (found.owner_id, found.parent_found, found.stored) == (user_id, False, False)

        db.session.get(User, user_id).disabled = True
        db.session.commit()
        found = get_store().add_exchange(exchange(user_id, mine), lambda: MessageStatus.PENDING)
        assert (found.disabled, found.stored) == (True, False)
        assert stored(mine)[0] == []


def test_a_new_conversation_is_stored_with_its_messages_and_removed_when_refused(app, client, user):
    user_id = uuid.UUID(user["id"])
    with app.app_context():
        for admitted in (lambda: MessageStatus.PENDING, None):
            now = utcnow()
            conversation = Conversation(id=uuid.uuid4(), user_id=user_id, title="t", provider=None, model="gated/g",
                                        system_prompt=None, settings={"created_via": "test"}, created_at=now,
                                        updated_at=now)
            new = exchange(user_id, conversation.id, after_newest=False)
            new.conversation = conversation
            if admitted is None:
                with pytest.raises(Overloaded):
                    get_store().add_exchange(new, refuse)
                db.session.commit()
                assert db.session.get(Conversation, conversation.id) is None
            else:
                assert get_store().add_exchange(new, admitted).stored
                rows, _updated_at = stored(conversation.id)
                assert [r[2:4] for r in rows] == [("user", "complete"), ("assistant", "pending")]
                assert rows[1][4] == "gated/g"
                assert db.session.get(Conversation, conversation.id).settings == {"created_via": "test"}


# ---- claims ---------------------------------------------------------------------------------

def test_a_claim_reads_the_branch_and_the_configs_in_failover_order_once(app, client, user):
    user_id = uuid.UUID(user["id"])
    other = client.new()
    other_id = uuid.UUID(other.signup("mallory@example.com", "mallory horse battery")["id"])
    conversation_id = new_conversation(client)
    with app.app_context():
        made = {}
        for name, owner, priority, enabled in (("global-late", None, 50, True), ("mine", user_id, 200, True),
                                               ("global-early", None, 10, True), ("off", user_id, 1, False),
                                               ("theirs", other_id, 1, True)):
            config = ProviderConfig(user_id=owner, provider="demo", name=name, priority=priority, enabled=enabled,
                                    enabled_models=[], fallbacks=[], options={"n": name})
            db.session.add(config)
            db.session.flush()
            made[config.id] = name
        db.session.commit()
        first = exchange(user_id, conversation_id)
        get_store().add_exchange(first, lambda: MessageStatus.PENDING)
        get_store().finish(first.answer.id, MessageStatus.COMPLETE, content="an answer")
        first_answer_id = first.answer.id
        second = exchange(user_id, conversation_id)
        get_store().add_exchange(second, lambda: MessageStatus.PENDING)

        start = get_store().claim(second.answer.id)
        assert start is not None
        assert (start.message_id, start.conversation_id, start.parent_id, start.user_id) == (
            second.answer.id, conversation_id, second.messages[0].id, user_id)
        assert (start.model, start.last_seq, start.content, start.title) == ("gated/g", 0, "", "New chat")
        assert branch_messages(start.branch) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "an answer"},
                                          {"role": "user", "content": "hi"}]
        assert [made[c.id] for c in start.configs] == ["mine", "global-early", "global-late"]
        assert [c.id for c in start.configs] == [c.id for c in enabled_configs(user_id)]
        assert start.configs[0].options == {"n": "mine"}
        assert status(second.answer.id) == "streaming"
        db.session.commit()

        assert get_store().claim(second.answer.id) is None  # (claimed once)
        assert get_store().claim(first_answer_id) is None  # (not claimable)


# ---- the ConversationManager's path ---------------------------------------------------------

def test_before_announce_runs_once_stored_and_before_the_events(app, client, user, gated):
    memory_bus(app)
    conversation_id = new_conversation(client)
    subscriber = Subscriber(app.extensions["bestchat_bus"])
    seen = []

    def follow():
        seen.append(db.session.scalar(select(func.count()).select_from(Message)
                                      .where(Message.conversation_id == conversation_id)))
        subscriber.follow(str(conversation_id))

    try:
        with app.app_context():
            question, answer = manager(user).send(conversation_id, "hi", client_id="c", before_announce=follow)
        frames = [subscriber.next(timeout=5).event for _ in range(2)]
        assert seen == [2]
        assert [(f["type"], f["message"]["id"], f["client_id"]) for f in frames] == [
            ("message.created", str(question.id), "c"), ("message.created", str(answer.id), "c")]
    finally:
        subscriber.close()
        GatedProvider.feed.put(None)


def test_a_refused_send_stores_nothing_and_does_not_run_before_announce(app, client, user, gated):
    conversation_id = new_conversation(client)
    other = new_conversation(client)
    called = []
    with app.app_context():
        _question, answer = manager(user).send(conversation_id, "first")
        before = stored(conversation_id)
        with pytest.raises(Conflict) as error:
            manager(user).send(conversation_id, "too soon", before_announce=lambda: called.append(1))
        assert error.value.code == "generation_in_progress"
        with pytest.raises(Conflict) as error:
            manager(user).send(conversation_id, "after it", parent_id=answer.id)
        assert error.value.code == "generation_in_progress"
        with pytest.raises(NotFound) as error:
            manager(user).send(other, "a foreign parent", parent_id=answer.id)
        assert error.value.message == "message not found"
        with pytest.raises(NotFound) as error:
            manager(user).send(uuid.uuid4(), "nowhere")
        assert error.value.message == "conversation not found"
        assert stored(conversation_id) == before and stored(other)[0] == [] and called == []
    GatedProvider.feed.put(None)


def test_a_send_of_a_disabled_account_is_refused_and_stores_nothing(app, client, user):
    conversation_id = new_conversation(client, model="demo/demo")
    with app.app_context():
        account = db.session.get(User, uuid.UUID(user["id"]))
        account.disabled = True
        db.session.commit()
        with pytest.raises(AccountDisabled):
            ConversationManager(account).send(conversation_id, "hi")
        assert stored(conversation_id)[0] == []


def test_regenerate_keeps_the_answers_model_and_edit_takes_the_conversations(app, client, user, gated):
    conversation_id = new_conversation(client)
    with app.app_context():
        question, answer = manager(user).send(conversation_id, "hi")
        GatedProvider.feed.put(None)
        wait_for(lambda: status(answer.id) == "complete")
        conversation = db.session.get(Conversation, conversation_id)
        conversation.model = "demo/demo"
        db.session.commit()

        regenerated = manager(user).regenerate(answer.id)
        assert (regenerated.parent_id, regenerated.model) == (question.id, "gated/g")
        GatedProvider.feed.put(None)
        wait_for(lambda: status(regenerated.id) == "complete")
        edited, edit_answer = manager(user).edit(question.id, "hello")
        assert (edited.parent_id, edit_answer.parent_id, edit_answer.model) == (None, edited.id, "demo/demo")
        rows, _ = stored(conversation_id)
        assert {r[0] for r in rows} == {question.id, answer.id, regenerated.id, edited.id, edit_answer.id}


def test_a_generation_that_cannot_be_started_ends_its_answer_unavailable(app, client, user, monkeypatch):
    conversation_id = new_conversation(client, model="demo/demo")

    def broken(answer, events):
        raise ConnectionError("the queue is down")

    with app.app_context():
        monkeypatch.setattr(get_dispatcher(app), "announce_and_start", broken)
        with pytest.raises(Unavailable) as error:
            manager(user).send(conversation_id, "hi")
        assert (error.value.code, error.value.message) == ("unavailable",
                                                            "the generation could not be queued; try again")
        rows, _ = stored(conversation_id)
        assert [r[3] for r in rows] == ["complete", "failed"]
        assert db.session.get(Message, rows[1][0]).error_code == "unavailable"
