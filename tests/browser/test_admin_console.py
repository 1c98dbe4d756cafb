"""The admin console under the server's Content-Security-Policy: its pages render and run
their scripts without a single CSP violation, and it refuses to be framed."""

from __future__ import annotations

import subprocess

import pytest

from tests.browser.conftest import PASSWORD
from tests.browser.server import REPO, VENV_BIN, LiveServer

pytestmark = pytest.mark.browser

ADMIN = "root@example.com"


@pytest.fixture(scope="module")
def server():
    with LiveServer() as live:
        subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "create-admin", ADMIN, "--password", PASSWORD],
                       cwd=REPO, env=live.env, check=True, capture_output=True)
        yield live


def test_admin_pages_run_under_the_csp_and_cannot_be_framed(page, server):
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto("/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Message", exact=True).wait_for()

    for path, text in (("/admin/users/", ADMIN), ("/admin/audit_log/", "login.success"), ("/admin/plugins/", "demo")):
        response = page.goto(path)
        assert response.status == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.get_by_text(text).first.wait_for()
    page.goto("/admin/users/")
    page.get_by_role("link", name="Add Filter").click()  # bootstrap's dropdown: the scripts run
    page.locator(".dropdown-menu .filter").first.wait_for(state="visible")
    assert violations == []

    page.set_content(f'<iframe src="{server.url}/admin/users/"></iframe>')  # framing is refused
    page.wait_for_timeout(500)
    frame = page.frames[-1]
    assert ADMIN not in (frame.content() if frame is not page.main_frame else "")
