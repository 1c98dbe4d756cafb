"""The admin console in a real browser: an admin signs in through the login page, follows the
chat UI's Admin link and walks every console page (each renders under the server's
Content-Security-Policy without a single violation and refuses to be framed); a non-admin sees
no Admin link and is refused the console.

With ``BESTCHAT_SCREENSHOTS=1`` the walk saves a PNG of each page as
``docs/screenshots/admin-<page>.png`` (the docs show them); without it nothing is written.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser.conftest import PASSWORD, sign_up
from tests.browser.server import REPO, VENV_BIN, LiveServer

pytestmark = pytest.mark.browser

ADMIN = "root@example.com"
SCREENSHOTS = REPO / "docs" / "screenshots"

# The console's pages, walked in this order: (name of the screenshot, path, a text the page
# shows once rendered). "{conversation}" is the seeded conversation's id. Pages added to the
# console are added here.
CONSOLE_PAGES = [
    ("home", "/admin/", "Readiness"),
    ("usage", "/admin/usage/?by=model", "openai/gpt-4o-mini"),
    ("conversations", "/admin/conversations/", "Quarterly report"),
    ("conversation", "/admin/conversations/{conversation}", "<script>alert(1)</script>"),
    ("users", "/admin/users/", ADMIN),
    ("user", "/admin/users/manage/?id={ada}", "Reset password"),
    ("groups", "/admin/groups/", "Research"),
    ("group", "/admin/groups/{group}/", "ada@example.com"),
    ("connections", "/admin/connections/", "Team Ollama"),
    ("connection", "/admin/connections/{connection}/", "phi4:14b"),
    ("plugins", "/admin/plugins/", "demo"),
    ("settings", "/admin/settings/", "Registration (open, invite only, closed)"),
    ("audit-log", "/admin/audit_log/", "login.success"),
]

# Runs in the server's environment (same instance directory): users, a group, a conversation
# with an attachment, and 14 days of usage, so that every page has something to show.
SEED = r'''
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import Conversation, Group, GroupMember, Message, ProviderConfig, UsageLog
from bestchat.services import accounts

app = create_app()
with app.app_context():
    ada = accounts.register("ada@example.com", "correct horse battery", display_name="Ada")
    grace = accounts.register("grace@example.com", "correct horse battery")
    research = Group(name="Research", description="The research team: the local models only",
                     models=["openai/llama3.2:3b", "openai/qwen2.5:7b", "demo/*"], tools=["calculator"])
    team = ProviderConfig(user_id=None, provider="openai", name="Team Ollama", priority=10,
                          base_url="http://127.0.0.1:11434/v1", enabled_models=["llama3.2:3b", "qwen2.5:7b"],
                          discovered_models=["llama3.2:3b", "qwen2.5:7b", "phi4:14b"],
                          model_names={"llama3.2:3b": "Llama 3.2 (3B)"}, models_refreshed_at=datetime.now(timezone.utc))
    db.session.add(team)
    db.session.add(research)
    db.session.flush()
    db.session.add(GroupMember(group_id=research.id, user_id=ada.id))
    now = datetime.now(timezone.utc)
    chats = {}
    for owner, title, provider, model in ((ada, "Quarterly report", "openai", "gpt-4o-mini"),
                                          (ada, "Grant proposal draft", "openai", "gpt-4o-mini"),
                                          (grace, "Trip itinerary", "demo", "demo"),
                                          (grace, "SQL query help", "demo", "demo")):
        chat = Conversation(user_id=owner.id, title=title, provider=provider, model=model,
                            created_at=now - timedelta(days=14), updated_at=now - timedelta(days=14))
        db.session.add(chat)
        chats.setdefault(owner.id, []).append(chat)
    db.session.flush()
    report = chats[ada.id][0]
    question = Message(conversation_id=report.id, role="user", created_at=now,
                       content="Summarize the attached report. <script>alert(1)</script>",
                       parts=[{"type": "file", "upload_id": "00000000-0000-0000-0000-000000000000",
                               "name": "q3-report.pdf", "mime": "application/pdf"}])
    db.session.add(question)
    db.session.flush()
    today = now.date()
    for back in range(14):
        day = datetime.combine(today - timedelta(days=back), time(0), tzinfo=timezone.utc)
        when = min(now, day + timedelta(hours=12))
        for user, provider, model, prompt, completion, cost in (
                (ada, "openai", "gpt-4o-mini", 1200 + 150 * (back % 5), 300 + 40 * (back % 3), "0.0009"),
                (grace, "demo", "demo", 400 + 90 * (back % 4), 200, "0")):
            chat = report if back == 0 and user is ada else chats[user.id][back % 2 if user is grace else 1]
            answer = Message(conversation_id=chat.id, role="assistant", provider=provider, model=model,
                             created_at=when + timedelta(seconds=2),
                             parent_id=question.id if chat is report else None,
                             content=("Revenue grew 12% over the quarter; costs stayed flat." if chat is report
                                      else f"Answer of {day.date().isoformat()}."))
            db.session.add(answer)
            db.session.flush()
            chat.updated_at = max(chat.updated_at, when)
            db.session.add(UsageLog(user_id=user.id, provider=provider, model=model, prompt_tokens=prompt,
                                    completion_tokens=completion, cost=Decimal(cost), created_at=when,
                                    conversation_id=chat.id, message_id=answer.id))
    db.session.commit()
    print(report.id, ada.id, research.id, team.id)
'''


@pytest.fixture(scope="module")
def server():
    with LiveServer() as live:
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "create-admin", ADMIN, "--password", PASSWORD],
                       cwd=REPO, env=live.env, check=True, capture_output=True)
        seeded = subprocess.run([str(VENV_BIN / "python"), "-c", SEED], cwd=REPO, env=live.env, check=True,
                                capture_output=True, text=True)
        live.ids = dict(zip(("conversation", "ada", "group", "connection"),
                            seeded.stdout.strip().splitlines()[-1].split()))
        live.conversation = live.ids["conversation"]
        yield live


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Message", exact=True).wait_for()


def shoot(page, name: str) -> None:
    if os.environ.get("BESTCHAT_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(200)  # let the last frame paint
        page.screenshot(path=str(SCREENSHOTS / f"admin-{name}.png"), full_page=True)


def test_admin_follows_the_admin_link_and_walks_the_console(page, server):
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    sign_in(page, ADMIN)
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url("**/admin/")
    page.get_by_text("Readiness").wait_for()

    for name, path, text in CONSOLE_PAGES:
        response = page.goto(path.format(**server.ids))
        assert response.status == 200, path
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.get_by_text(text, exact=False).first.wait_for()
        shoot(page, name)
    assert violations == []


def test_console_pages_show_the_seeded_figures(page, server, watch):
    sign_in(page, ADMIN)
    page.goto("/admin/")
    assert page.locator("#users-total").inner_text() == "3"
    assert page.locator("#workers-state").inner_text().strip().startswith("in-process")
    page.goto("/admin/usage/")
    assert page.locator("svg.usage-chart g.day-bar").count() == 30
    assert page.locator("svg.usage-chart .cost-point").count() == 30
    labels = page.locator("svg.usage-chart .day-label")
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    assert 3 <= len(boxes) < 30
    assert all(a["x"] + a["width"] <= b["x"] for a, b in zip(boxes, boxes[1:]))  # no label overlaps the next
    page.goto(f"/admin/conversations/{server.conversation}")
    assert "<script>alert(1)</script>" in page.locator("#messages-table").inner_text()
    page.get_by_text("q3-report.pdf").wait_for()
    assert watch.dialogs == []  # the message's <script> ran nothing


def test_csv_export_downloads(page, server):
    sign_in(page, ADMIN)
    page.goto("/admin/usage/?by=user")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    path = download.value.path()
    text = open(path, encoding="utf-8").read()
    assert text.splitlines()[0].startswith("user_email,prompt_tokens")
    assert "ada@example.com" in text


def test_a_non_admin_sees_no_admin_link_and_is_refused(page, server, watch):
    sign_up(page)
    page.get_by_role("link", name="Settings").wait_for()
    assert page.get_by_role("link", name="Admin").count() == 0
    response = page.goto("/admin/")
    assert response.status == 403


def test_admin_pages_run_under_the_csp_and_cannot_be_framed(page, server):
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    sign_in(page, ADMIN)
    page.goto("/admin/users/")
    page.get_by_role("link", name="Add Filter").click()  # bootstrap's dropdown: the scripts run
    page.locator(".dropdown-menu .filter").first.wait_for(state="visible")
    assert violations == []

    page.set_content(f'<iframe src="{server.url}/admin/users/"></iframe>')  # framing is refused
    page.wait_for_timeout(500)
    frame = page.frames[-1]
    assert ADMIN not in (frame.content() if frame is not page.main_frame else "")
