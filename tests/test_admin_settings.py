"""The console's Settings page: admins only, CSRF on its form, every editable key shown with
its effective value and source, saving changes only what changed, a bad value shows the error
and changes nothing, Reset gives the file/environment value back."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, SiteSetting
from bestchat.services.site_settings import EDITABLE
from bestchat.testing.client import Client

# Settings stored by a test are deleted after it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_site_settings_left")

PASSWORD = "correct horse battery"
PAGE = "/admin/settings/"


def form_of(page: str) -> dict[str, object]:
    """What the browser would submit for the page's settings form (no button pressed)."""
    form = re.search(r'<form method="post" action="/admin/settings/">(.*?)</form>', page, re.DOTALL).group(1)
    data: dict[str, object] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                data.setdefault(name.group(1), []).append(value.group(1))
            continue
        data[name.group(1)] = value.group(1) if value else ""
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.DOTALL):
        data[name] = re.search(r'<option value="([^"]*)" selected', body).group(1)
    return data


def post(admin: Client, data: dict[str, object]):
    return admin.http.post(PAGE, data=data)


def test_anonymous_visitors_go_to_sign_in_and_back(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/admin/settings/"
    response = client.http.post(PAGE, data={"UPLOAD_MAX_BYTES": "9000"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_non_admins_are_refused(app, client, user):
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data={"UPLOAD_MAX_BYTES": "9000"}).status_code == 403
    assert app.config["UPLOAD_MAX_BYTES"] == 20 * 1024 * 1024


def test_a_post_without_the_csrf_token_is_refused(app, admin):
    page = admin.get(PAGE).get_data(as_text=True)
    data = form_of(page)
    data.pop("csrf_token")
    data["UPLOAD_MAX_BYTES"] = "9000"
    assert admin.http.post(PAGE, data=data).status_code == 403
    assert app.config["UPLOAD_MAX_BYTES"] == 20 * 1024 * 1024


def test_the_page_shows_every_editable_key_with_its_value_and_source(admin):
    response = admin.get(PAGE)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for key, spec in EDITABLE.items():
        assert spec.label in page
    data = form_of(page)
    assert data["DEFAULT_MODEL"] == "demo/demo" and data["REGISTRATION"] == "open"
    assert data["CONTEXT_STRATEGIES"] == ["compress", "summarize", "truncate"]
    assert data["UPLOAD_MAX_BYTES"] == str(20 * 1024 * 1024)
    assert "set here" not in page


def test_saving_the_form_stores_only_what_changed_and_reset_restores_it(app, admin):
    data = form_of(admin.get(PAGE).get_data(as_text=True))
    data["UPLOAD_MAX_BYTES"] = "9000"
    data["RATELIMIT_SEND_PER_USER"] = "5/60"
    data["CONTEXT_STRATEGIES"] = ["summarize", "truncate"]
    data["order_truncate"], data["order_summarize"] = "1", "2"
    response = post(admin, data)
    assert response.status_code == 302
    assert app.config["UPLOAD_MAX_BYTES"] == 9000 and app.config["RATELIMIT_SEND_PER_USER"] == "5/60"
    assert app.config["CONTEXT_STRATEGIES"] == ["truncate", "summarize"]
    with app.app_context():
        assert sorted(db.session.scalars(select(SiteSetting.key))) == \
            ["CONTEXT_STRATEGIES", "RATELIMIT_SEND_PER_USER", "UPLOAD_MAX_BYTES"]
        assert db.session.scalar(select(AuditLog.details).where(AuditLog.action == "site_settings.updated"))["keys"] \
            == ["CONTEXT_STRATEGIES", "RATELIMIT_SEND_PER_USER", "UPLOAD_MAX_BYTES"]
    page = admin.get(PAGE).get_data(as_text=True)
    assert page.count("set here") == 3 and 'value="9000"' in page
    assert form_of(page)["CONTEXT_STRATEGIES"] == ["truncate", "summarize"]

    reset_form = re.search(r'<form id="reset-UPLOAD_MAX_BYTES"[^>]*>(.*?)</form>', page, re.DOTALL).group(1)
    assert 'name="reset" value="UPLOAD_MAX_BYTES"' in reset_form and 'name="csrf_token"' in reset_form
    data = form_of(page)
    data["reset"] = "UPLOAD_MAX_BYTES"
    data["UPLOAD_MAX_BYTES"] = "1"  # ignored: only the reset is done
    assert post(admin, data).status_code == 302
    assert app.config["UPLOAD_MAX_BYTES"] == 20 * 1024 * 1024
    assert admin.get(PAGE).get_data(as_text=True).count("set here") == 2


@pytest.mark.parametrize("key, value, error", [
    ("UPLOAD_MAX_BYTES", "lots", "must be a whole number"),
    ("RATELIMIT_LOGIN_PER_IP", "ten a minute", "count/seconds"),
    ("DEFAULT_MODEL", "openai/not-offered", "must be a model the server offers"),
    ("REGISTRATION", "sometimes", "must be one of open, invite, closed"),
    ("BLOCKED_PLUGINS", "no-such-plugin", "unknown plugin"),
])
def test_a_bad_value_shows_the_error_and_changes_nothing(app, admin, key, value, error):
    data = form_of(admin.get(PAGE).get_data(as_text=True))
    data["USER_MAX_ACTIVE_GENERATIONS"] = "2"  # a good change beside the bad one
    data[key] = value
    response = post(admin, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert error in page and "Nothing was changed." in page
    assert app.config["USER_MAX_ACTIVE_GENERATIONS"] == 4
    with app.app_context():
        assert db.session.scalars(select(SiteSetting)).all() == []


def test_resetting_an_unknown_key_changes_nothing(app, admin):
    data = form_of(admin.get(PAGE).get_data(as_text=True))
    data["reset"] = "SECRET_KEY"
    response = post(admin, data)
    assert response.status_code == 400 and "cannot be changed here" in response.get_data(as_text=True)
