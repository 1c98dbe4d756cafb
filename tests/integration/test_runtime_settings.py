"""Settings changed in the console reach every process without a restart: blocking a plugin
through one web process removes its models from ``/api/v1/models`` in another web process and
makes the Celery worker refuse a generation with its model within seconds; unblocking brings
both back. (Embedded mode: the same in its one process.)"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import create_engine, text

from tests.integration.stack import PASSWORD, wait_for

PRODUCTION_WEB_PROCESSES = 2
SECONDS = 10  # a safety bound: the processes check every SITE_SETTINGS_REFRESH_SECONDS (1 s)


def make_admin(stack) -> tuple[httpx.Client, str]:
    """A signed-in admin's client on web process 0, and its CSRF token."""
    email = f"root-{time.monotonic_ns()}@example.com"
    stack.new_user(email)
    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET role = 'admin' WHERE email = :email"), {"email": email})
    engine.dispose()
    client = httpx.Client(base_url=stack.url(0), timeout=30)
    csrf = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["csrf_token"]
    return client, csrf


def models(user, web: int) -> list[str]:
    response = user.api("GET", "/models", web=web)
    assert response.status_code == 200, response.text
    return [model["id"] for model in response.json()["models"]]


def answer(user, conversation_id: str, web: int) -> dict:
    """Send a message naming the demo model; the finished answer."""
    sent = user.api("POST", f"/conversations/{conversation_id}/messages", web=web,
                    json={"content": "hello", "model": "demo/demo"})
    assert sent.status_code == 202, sent.text
    answer_id = sent.json()["assistant_message"]["id"]

    def ended():
        listing = user.api("GET", f"/conversations/{conversation_id}/messages", web=web).json()
        found = [m for m in listing["messages"] if m["id"] == answer_id]
        return found[0] if found and found[0]["status"] in ("complete", "failed") else None

    return wait_for(ended, timeout=30, what="the answer to end")


def test_blocking_a_plugin_in_one_process_applies_in_the_others_and_unblocking_undoes_it(stack, alice):
    other = len(stack.webs) - 1  # the second web process in production mode
    admin, csrf = make_admin(stack)
    before, after = alice.conversation(), alice.conversation()
    assert "demo/demo" in models(alice, other)
    assert answer(alice, before, other)["status"] == "complete"

    try:
        blocked = admin.post("/admin/plugins/block", data={"name": "bestchat-demo", "csrf_token": csrf})
        assert blocked.status_code == 302, blocked.text
        wait_for(lambda: "demo/demo" not in models(alice, other), timeout=SECONDS,
                 what="the demo model to disappear in the other web process")
        # The web process accepts the send (it does not resolve models); the worker refuses it
        # once it checked (each job checks when its last check is over a second old).
        refused = wait_for(lambda: (lambda a: a if a["status"] == "failed" else None)(answer(alice, after, other)),
                           timeout=SECONDS, what="the worker to refuse the demo model")
        assert refused["error_code"] == "unknown_model"
    finally:
        unblocked = admin.post("/admin/plugins/unblock", data={"name": "bestchat-demo", "csrf_token": csrf})
        assert unblocked.status_code == 302, unblocked.text
    wait_for(lambda: "demo/demo" in models(alice, other), timeout=SECONDS,
             what="the demo model to come back in the other web process")
    wait_for(lambda: answer(alice, after, other)["status"] == "complete", timeout=SECONDS,
             what="the worker to serve the demo model again")
    admin.close()
