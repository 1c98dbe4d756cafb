"""Bad input is a 4xx with a clear code, never a 500, on both backends: text the database
cannot store (a lone surrogate escape, NUL) in any JSON field or query parameter, integers
beyond 64 bits, dates at the ends of the calendar, JSON nested too deep (REST, ``/v1`` and
WebSocket frames; the socket stays usable), and JSON bodies not sent as JSON (415: a
cross-site ``text/plain`` form cannot sign a browser in)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import Conversation, Message, User
from bestchat.testing.client import assert_error
from bestchat.validation import MAX_JSON_DEPTH
from tests.socket_client import SocketClient

API = "/api/v1"
PASSWORD = "correct horse battery"
# JSON text with a lone surrogate escape and with a NUL escape (json.dumps writes both as escapes).
SURROGATE = "a\ud800b"
NUL = "a\x00b"


def nested(depth: int) -> object:
    """A JSON value ``depth`` containers deep."""
    value: object = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def token_client(client):
    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    api = client.new()
    api.bearer = token
    return api


# ---- text the database cannot store ---------------------------------------------------------


@pytest.mark.parametrize("text", [SURROGATE, NUL], ids=["surrogate", "nul"])
def test_unstorable_text_in_anonymous_register_and_login_is_400(client, app, text):
    assert_error(client.post(f"{API}/auth/register", {"email": "x@example.com", "password": PASSWORD + text}),
                 400, "invalid_text")
    assert_error(client.post(f"{API}/auth/register", {"email": f"{text}@example.com", "password": PASSWORD}),
                 400, "invalid_text")
    assert_error(client.post(f"{API}/auth/login", {"email": f"{text}@example.com", "password": PASSWORD}),
                 400, "invalid_text")
    assert count(app, User) == 0


@pytest.mark.parametrize("text", [SURROGATE, NUL], ids=["surrogate", "nul"])
def test_unstorable_text_in_any_field_of_a_signed_in_user_is_400_and_stores_nothing(client, app, user, text):
    conversation_id = client.post(f"{API}/conversations", {"title": "kept"}).get_json()["id"]
    refused = [
        client.post(f"{API}/conversations", {"title": text}),
        client.post(f"{API}/conversations", {"settings": {"note": text}}),
        client.post(f"{API}/conversations", {"settings": {text: 1}}),
        client.patch(f"{API}/conversations/{conversation_id}", {"system_prompt": text}),
        client.post(f"{API}/conversations/{conversation_id}/messages", {"content": text}),
        client.post(f"{API}/tokens", {"name": text}),
        client.post(f"{API}/conversations", [{"title": text}]),
    ]
    for response in refused:
        assert_error(response, 400, "invalid_text")
    assert count(app, Conversation) == 1 and count(app, Message) == 0
    assert client.get(f"{API}/conversations/{conversation_id}").get_json()["title"] == "kept"


@pytest.mark.parametrize("text", [SURROGATE, NUL], ids=["surrogate", "nul"])
def test_unstorable_text_in_a_chat_completion_is_400_in_openai_shape(client, app, user, text):
    api = token_client(client)
    response = api.post("/v1/chat/completions", {"model": "demo/demo",
                                                 "messages": [{"role": "user", "content": text}]})
    error = assert_error(response, 400, "invalid_text")
    assert error["type"] == "invalid_request_error"
    assert count(app, Conversation) == 0


def test_a_surrogate_sent_as_raw_utf_8_bytes_is_400_and_escaped_backslashes_are_text(client, app, user):
    headers = {"Content-Type": "application/json"}
    raw = client.post(f"{API}/conversations", data=b'{"title": "a\xed\xa0\x80b"}', headers=headers)
    assert_error(raw, 400, "invalid_text")
    literal = client.post(f"{API}/conversations", {"title": "\\u0000 and \\ud800"})
    assert literal.status_code == 201 and literal.get_json()["title"] == "\\u0000 and \\ud800"


def test_nul_in_a_query_parameter_is_400(client, user):
    assert_error(client.get(f"{API}/conversations?q=%00"), 400, "invalid_text")
    assert_error(client.get(f"{API}/conversations?q=a%00b&limit=5"), 400, "invalid_text")
    assert client.get(f"{API}/conversations?q=hello").status_code == 200


# ---- numbers and dates ----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["offset=99999999999999999999", "offset=9223372036854775808",
                                   "limit=18446744073709551617", "offset=-1"])
def test_integers_beyond_64_bits_are_400(client, user, query):
    assert_error(client.get(f"{API}/conversations?{query}"), 400, "invalid_parameter")


def test_the_largest_64_bit_offset_is_an_empty_page(client, user):
    response = client.get(f"{API}/conversations?offset=9223372036854775807")
    assert response.status_code == 200 and response.get_json()["conversations"] == []


def test_a_stream_resumed_after_a_seq_beyond_64_bits_is_400(client, user):
    conversation_id = client.post(f"{API}/conversations", {"model": "demo/demo"}).get_json()["id"]
    answer = client.post(f"{API}/conversations/{conversation_id}/messages",
                         {"content": "hi"}).get_json()["assistant_message"]
    assert_error(client.get(f"{API}/messages/{answer['id']}/stream?after=99999999999999999999"),
                 400, "invalid_parameter")
    assert_error(client.get(f"{API}/messages/{answer['id']}/stream",
                            headers={"Last-Event-ID": "99999999999999999999"}), 400, "invalid_parameter")


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=0001-01-01", "to=0001-01-05",
                                   "from=0001-01-01&to=0001-01-02", "from=9999-12-31&to=9999-12-31"])
def test_dates_at_the_ends_of_the_calendar_are_400(client, user, query):
    assert_error(client.get(f"{API}/usage?{query}"), 400, "invalid_parameter")


def test_the_last_supported_date_is_answered(client, user):
    response = client.get(f"{API}/usage?from=9999-12-01&to=9999-12-30")
    assert response.status_code == 200
    days = response.get_json()["days"]
    assert (days[0]["date"], days[-1]["date"], len(days)) == ("9999-12-01", "9999-12-30", 30)
    first = client.get(f"{API}/usage?to=1970-01-05").get_json()["days"]
    assert (first[0]["date"], first[-1]["date"]) == ("1970-01-01", "1970-01-05")


# ---- nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_nested_too_deep_is_400_on_rest_and_v1(client, app, user, depth):
    api = token_client(client)
    raw = json.dumps(nested(depth)) if depth < 1000 else "[" * depth + "]" * depth
    headers = {"Content-Type": "application/json"}
    for response in (client.post(f"{API}/conversations", data=raw, headers=headers),
                     client.post(f"{API}/auth/login", data=raw, headers=headers),
                     api.post("/v1/chat/completions", data=raw, headers=headers)):
        assert_error(response, 400, "json_too_deep")
    body = {"title": "deep", "settings": {"deep": nested(MAX_JSON_DEPTH + 1)}}
    assert_error(client.post(f"{API}/conversations", body), 400, "json_too_deep")
    assert count(app, Conversation) == 0


def test_json_as_deep_as_the_limit_is_read(client, user):
    body = {"content": "hi", "extra": nested(MAX_JSON_DEPTH - 1)}  # (the body is one level)
    conversation_id = client.post(f"{API}/conversations", {"model": "demo/demo"}).get_json()["id"]
    response = client.post(f"{API}/conversations/{conversation_id}/messages", body)
    assert response.status_code == 202, response.get_json()


@pytest.mark.parametrize("raw", ["NaN", '{"title": Infinity}', '{"title": 1e999}'])
def test_numbers_json_does_not_have_are_400(client, user, raw):
    response = client.post(f"{API}/conversations", data=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")


# ---- content type ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_cross_site_form_cannot_sign_in(client, app, content_type):
    client.post(f"{API}/auth/register", {"email": "eve@example.com", "password": PASSWORD})
    browser = client.new()
    body = json.dumps({"email": "eve@example.com", "password": PASSWORD})
    headers = {"Content-Type": content_type} if content_type else {}
    response = browser.http.post(f"{API}/auth/login", data=body, headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert "Set-Cookie" not in response.headers
    assert_error(browser.get(f"{API}/me"), 401)


def test_every_json_route_requires_a_json_content_type(client, app, user):
    conversation_id = client.post(f"{API}/conversations", {"title": "kept"}).get_json()["id"]
    plain = {"Content-Type": "text/plain"}
    for method, path, body in (
            ("POST", f"{API}/auth/register", {"email": "x@example.com", "password": PASSWORD}),
            ("POST", f"{API}/conversations", {"title": "t"}),
            ("PATCH", f"{API}/conversations/{conversation_id}", {"title": "changed"}),
            ("POST", f"{API}/conversations/{conversation_id}/messages", {"content": "hi"}),
            ("POST", f"{API}/tokens", {"name": "t"})):
        response = client.request(method, path, data=json.dumps(body), headers=plain)
        assert_error(response, 415, "unsupported_media_type")
    assert count(app, Conversation) == 1 and count(app, Message) == 0
    api = token_client(client)
    response = api.post("/v1/chat/completions", data=json.dumps(
        {"model": "demo/demo", "messages": [{"role": "user", "content": "hi"}]}), headers=plain)
    assert_error(response, 415, "unsupported_media_type")
    charset = client.post(f"{API}/conversations", data=json.dumps({"title": "t"}),
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 201


# ---- WebSocket frames -----------------------------------------------------------------------


@pytest.fixture
def app_config(request):
    """With a socket, jobs run in this process: the memory bus stands in for Redis's (below), and
    Celery jobs would announce their answers on Redis, where nobody here listens."""
    return {"JOBS_IN_PROCESS": True} if "socket" in request.fixturenames else {}


@pytest.fixture
def socket(app, user):
    with SocketClient(app, user["id"]) as client:
        yield client


def test_a_frame_nested_too_deep_is_an_error_frame_and_the_socket_stays_open(socket):
    for raw in ("[" * 100_000 + "]" * 100_000, json.dumps({"type": "ping", "x": nested(MAX_JSON_DEPTH + 1)})):
        error = socket.ask(raw)
        assert (error["type"], error["code"]) == ("error", "json_too_deep")
        assert socket.ask({"type": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize("text", [SURROGATE, NUL], ids=["surrogate", "nul"])
def test_a_send_with_unstorable_text_is_an_error_frame_and_the_socket_stays_usable(app, client, socket, text):
    conversation_id = client.post(f"{API}/conversations", {"model": "demo/demo"}).get_json()["id"]
    error = socket.ask({"type": "send", "conversation_id": conversation_id, "content": text})
    assert (error["type"], error["code"]) == ("error", "invalid_text")
    assert socket.ask({"type": "ping"}) == {"type": "pong"}
    assert count(app, Message) == 0
    created = socket.ask({"type": "send", "conversation_id": conversation_id, "content": "fine"})
    assert created["type"] == "message.created"
