"""Conversations over REST and the ConversationManager: CRUD, search, paging, ownership."""

from __future__ import annotations

import uuid

import pytest

from bestchat.services.titles import DEFAULT_TITLE, TITLE_MAX, short_title
from bestchat.testing.client import assert_error
from tests.chat_fakes import GatedProvider, app_config, gated, jobs  # noqa: F401 - fixtures

API = "/api/v1/conversations"


def create(client, **body):
    response = client.post(API, body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_get_rename_delete(client, user):
    conversation = create(client, model="demo/demo", system_prompt="be brief", settings={"temperature": 0.5})
    assert conversation["title"] == DEFAULT_TITLE
    assert conversation["model"] == "demo/demo" and conversation["system_prompt"] == "be brief"
    assert conversation["settings"] == {"temperature": 0.5}

    url = f"{API}/{conversation['id']}"
    assert client.get(url).get_json()["id"] == conversation["id"]
    renamed = client.patch(url, {"title": "  Trip plans ", "system_prompt": None})
    assert renamed.status_code == 200
    assert renamed.get_json()["title"] == "Trip plans" and renamed.get_json()["system_prompt"] is None
    assert renamed.get_json()["model"] == "demo/demo"

    assert client.delete(url).status_code == 204
    assert_error(client.get(url), 404, "not_found")
    assert_error(client.delete(url), 404, "not_found")


def test_invalid_input_is_400(client, user):
    assert_error(client.post(API, {"title": 5}), 400, "invalid_field")
    assert_error(client.post(API, {"settings": []}), 400, "invalid_field")
    conversation = create(client)
    assert_error(client.patch(f"{API}/{conversation['id']}", {"title": "x" * 201}), 400, "invalid_field")
    assert_error(client.post(f"{API}/{conversation['id']}/messages", {"content": "  "}), 400, "missing_field")
    assert_error(client.post(f"{API}/{conversation['id']}/messages", {}), 400, "missing_field")
    assert messages_of(client, conversation["id"]) == []


def test_list_is_most_recent_first_and_pages(client, user):
    ids = [create(client, title=f"c{i}")["id"] for i in range(3)]
    client.patch(f"{API}/{ids[0]}", {"title": "touched"})
    body = client.get(f"{API}?limit=2").get_json()
    assert [c["id"] for c in body["conversations"]] == [ids[0], ids[2]] and body["has_more"] is True
    rest = client.get(f"{API}?limit=2&offset=2").get_json()
    assert [c["id"] for c in rest["conversations"]] == [ids[1]] and rest["has_more"] is False
    assert_error(client.get(f"{API}?limit=0"), 400, "invalid_parameter")


def test_search_matches_titles_and_message_text_of_own_conversations(client, user, jobs):
    by_title = create(client, title="Holiday in Lisbon")
    by_text = create(client)
    create(client, title="unrelated")
    client.post(f"{API}/{by_text['id']}/messages", {"content": "what about LISBON_100% trams?"})
    jobs.join(15)
    other = client.new()
    other.signup("bob@example.com", "correct horse battery")
    create(other, title="Lisbon too")

    found = client.get(f"{API}?q=lisbon").get_json()["conversations"]
    assert {c["id"] for c in found} == {by_title["id"], by_text["id"]}
    assert [c["id"] for c in client.get(f"{API}?q=_100%25").get_json()["conversations"]] == [by_text["id"]]
    assert client.get(f"{API}?q=nothing-like-this").get_json()["conversations"] == []


def test_other_users_conversations_are_not_found(client, user):
    conversation = create(client)
    other = client.new()
    other.signup("bob@example.com", "correct horse battery")
    url = f"{API}/{conversation['id']}"
    for response in (other.get(url), other.patch(url, {"title": "mine"}), other.delete(url),
                     other.get(f"{url}/messages"), other.post(f"{url}/messages", {"content": "hi"})):
        assert_error(response, 404, "not_found")
    assert other.get(API).get_json()["conversations"] == []
    assert client.get(url).get_json()["title"] == DEFAULT_TITLE
    assert messages_of(client, conversation["id"]) == []


def test_conflicting_requests_are_409_with_their_code_and_store_nothing(client, user, gated):
    conversation = create(client, model="gated/g")
    sent = client.post(f"{API}/{conversation['id']}/messages", {"content": "first"}).get_json()
    question, answer = sent["user_message"], sent["assistant_message"]
    before = messages_of(client, conversation["id"])
    assert [m["id"] for m in before] == [question["id"], answer["id"]]

    for response, code in (
        (client.post(f"{API}/{conversation['id']}/messages", {"content": "too soon"}), "generation_in_progress"),
        (client.post(f"{API}/{conversation['id']}/messages", {"content": "after it", "parent_id": answer["id"]}),
         "generation_in_progress"),
        (client.post(f"/api/v1/messages/{answer['id']}/regenerate"), "generation_in_progress"),
        (client.patch(f"/api/v1/messages/{answer['id']}", {"content": "edited"}), "not_editable"),
        (client.post(f"/api/v1/messages/{question['id']}/regenerate"), "not_regenerable"),
        (client.post(f"/api/v1/messages/{question['id']}/cancel"), "not_cancellable"),
    ):
        assert_error(response, 409, code)
    assert [(m["id"], m["content"]) for m in messages_of(client, conversation["id"])] == [
        (m["id"], m["content"]) for m in before]
    GatedProvider.feed.put(None)


def messages_of(client, conversation_id) -> list[dict]:
    body = client.get(f"{API}/{conversation_id}/messages").get_json()
    assert body["has_more"] is False
    return body["messages"]


@pytest.mark.parametrize("path", [f"{API}/not-a-uuid", f"{API}/{uuid.uuid4()}", f"{API}/{uuid.uuid4()}/messages"])
def test_unknown_ids_are_not_found(client, user, path):
    assert_error(client.get(path), 404, "not_found")


def test_authentication_required(client):
    assert_error(client.get(API), 401, "unauthorized")
    assert_error(client.post(API, {}), 401, "unauthorized")


def test_bearer_token_works(client, user):
    token = client.post("/api/v1/tokens", {"name": "cli"}).get_json()["token"]
    api = client.new()
    api.bearer = token
    assert api.post(API, {"title": "from the CLI"}).status_code == 201
    assert [c["title"] for c in api.get(API).get_json()["conversations"]] == ["from the CLI"]


def test_short_title():
    assert short_title("  How do I\n\nboil an egg?") == "How do I"
    long = "word " * 30
    title = short_title(long)
    assert len(title) <= TITLE_MAX and title.endswith("…") and not title[:-1].endswith(" ")
    assert short_title("x" * 100) == "x" * (TITLE_MAX - 1) + "…"
