"""No page shows a secret: every console page an admin can reach by following links, and the
chat UI's pages and API answers for a user, carry no API key, no password hash, and no base URL
of a connection its viewer did not create."""

from __future__ import annotations

import re
from collections import deque

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import User
from bestchat.testing.client import Client
from tests.admin_helpers import sign_in_admin, sign_up

GLOBAL_KEY = "sk-global-SECRET-0123456789abcdef"
BOB_KEY = "sk-bob-SECRET-0123456789abcdef"
GLOBAL_URL = "http://127.0.0.1:9/global-hidden-path/v1"
BOB_URL = "http://127.0.0.1:7/bob-hidden-path/v1"
# Links a crawler must not follow: they change state or leave the console.
SKIP = re.compile(r"/(delete|logout|export|block|unblock)\b|\.csv|/static/")


@pytest.fixture
def world(app):
    admin = sign_in_admin(app, "root@example.com")
    bob = sign_up(app, "bob@example.com")
    alice = sign_up(app, "alice@example.com")
    created = admin.post("/api/v1/providers", {"provider": "openai", "scope": "global", "name": "Team",
                                               "api_key": GLOBAL_KEY, "base_url": GLOBAL_URL,
                                               "enabled_models": ["team-model"]})
    assert created.status_code == 201, created.get_json()
    created = bob.post("/api/v1/providers", {"provider": "openai", "name": "Bob's", "api_key": BOB_KEY,
                                             "base_url": BOB_URL, "enabled_models": ["bob-model"]})
    assert created.status_code == 201, created.get_json()
    with app.app_context():
        hashes = list(db.session.scalars(select(User.password_hash)))
    return admin, alice, hashes


def crawl(client: Client, start: str, limit: int = 300) -> dict[str, str]:
    """GET every same-console page linked from ``start`` (breadth first), path -> HTML."""
    pages: dict[str, str] = {}
    queue = deque([start])
    while queue and len(pages) < limit:
        path = queue.popleft()
        if path in pages:
            continue
        response = client.get(path)
        pages[path] = response.get_data(as_text=True)
        if response.status_code != 200 or "html" not in response.content_type:
            continue
        for link in re.findall(r'href="(/admin[^"#]*)"', pages[path]):
            link = link.replace("&amp;", "&")
            if link not in pages and not SKIP.search(link):
                queue.append(link)
    return pages


def test_console_pages_show_no_key_hash_or_foreign_base_url(world):
    admin, _, hashes = world
    pages = crawl(admin, "/admin/")
    assert len(pages) >= 3
    for path, html in pages.items():
        for secret in (GLOBAL_KEY, BOB_KEY, BOB_URL, *hashes):
            assert secret not in html, (path, secret[:12])


def test_user_pages_and_answers_show_no_key_or_foreign_base_url(world):
    _, alice, hashes = world
    token = alice.post("/api/v1/tokens", {"name": "sdk"}).get_json()["token"]
    sdk = alice.new()
    sdk.bearer = token
    for client, path in ((alice, "/"), (alice, "/settings"), (alice, "/usage"), (alice, "/api/v1/providers"),
                         (alice, "/api/v1/models"), (alice, "/api/v1/me"), (sdk, "/v1/models")):
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        for secret in (GLOBAL_KEY, BOB_KEY, GLOBAL_URL, BOB_URL, "global-hidden-path", *hashes):
            assert secret not in body, (path, secret[:12])
