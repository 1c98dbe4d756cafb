"""The last active admin is never demoted, disabled or deleted (Conflict ``last_admin``), by the
console, the API or the command line; ``create-admin`` on an existing account re-enables it,
makes it admin and sets its password."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from bestchat.errors import Conflict, DomainError
from bestchat.extensions import db
from bestchat.models import User
from bestchat.services import accounts
from bestchat.testing.client import Client, assert_error
from tests.admin_helpers import ADMIN_EMAIL, PASSWORD, form_post, load, sign_up, user_id


@pytest.mark.parametrize("action, data", [("role", {"role": "user"}), ("disable", {}),
                                          ("delete", {"confirm_email": ADMIN_EMAIL})])
def test_the_console_keeps_the_last_admin(app, admin, action, data):
    root_id = user_id(app, ADMIN_EMAIL)
    path = "/admin/users/manage/delete/" if action == "delete" else f"/admin/users/manage/{action}/"
    response = form_post(admin, f"{path}?id={root_id}", data)
    assert response.status_code == 409
    assert "last active admin" in response.get_data(as_text=True)
    root = load(app, ADMIN_EMAIL)
    assert (root.role, root.disabled) == ("admin", False)
    assert admin.get("/api/v1/me").status_code == 200


def test_the_console_edit_form_keeps_the_last_admin(app, admin):
    root_id = user_id(app, ADMIN_EMAIL)
    form = admin.http.get(f"/admin/users/edit/?id={root_id}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = admin.http.post(f"/admin/users/edit/?id={root_id}",
                               data={"csrf_token": csrf, "display_name": "Root", "role": "user", "disabled": "y"})
    assert "last active admin" in response.get_data(as_text=True)
    root = load(app, ADMIN_EMAIL)
    assert (root.role, root.disabled) == ("admin", False)


def test_with_a_second_admin_one_can_go_but_not_both(app, admin):
    sign_up(app, "second@example.com")
    second_id = user_id(app, "second@example.com")
    assert form_post(admin, f"/admin/users/manage/role/?id={second_id}", {"role": "admin"}).status_code == 302
    root_id = user_id(app, ADMIN_EMAIL)
    assert form_post(admin, f"/admin/users/manage/disable/?id={second_id}").status_code == 302
    # A disabled admin does not count: root is the last active one again.
    assert form_post(admin, f"/admin/users/manage/role/?id={root_id}", {"role": "user"}).status_code == 409
    assert form_post(admin, f"/admin/users/manage/enable/?id={second_id}").status_code == 302
    assert form_post(admin, f"/admin/users/manage/role/?id={root_id}", {"role": "user"}).status_code == 302
    assert load(app, ADMIN_EMAIL).role == "user"


def test_the_api_refuses_to_delete_the_last_admin(app, admin):
    assert_error(admin.delete("/api/v1/me", {"password": PASSWORD}), 409, "last_admin")
    assert load(app, ADMIN_EMAIL) is not None
    with app.app_context():
        accounts.register("other-admin@example.com", PASSWORD, role="admin")
    assert admin.delete("/api/v1/me", {"password": PASSWORD}).status_code == 204
    assert load(app, ADMIN_EMAIL) is None


def test_the_service_rule_holds_for_every_caller(app, admin):
    with app.app_context():
        root = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
        for change in (lambda: accounts.set_role(None, root, "user"), lambda: accounts.set_disabled(None, root, True),
                       lambda: accounts.delete_user(root, root), lambda: accounts.delete_account(root, PASSWORD)):
            with pytest.raises(Conflict) as refused:
                change()
            assert refused.value.code == "last_admin"
            db.session.rollback()
    root = load(app, ADMIN_EMAIL)
    assert (root.role, root.disabled) == ("admin", False)


def test_two_admins_demoting_each_other_at_once_leave_one(app, admin):
    with app.app_context():
        accounts.register("second@example.com", PASSWORD, role="admin")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(email: str) -> None:
        with app.app_context():
            target = db.session.scalar(select(User).where(User.email == email))
            barrier.wait()
            try:
                accounts.set_role(None, target, "user")
                outcomes.append("ok")
            except DomainError as error:
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=demote, args=(email,)) for email in (ADMIN_EMAIL, "second@example.com")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["last_admin", "ok"]
    with app.app_context():
        assert accounts.active_admin_ids() != []


def test_create_admin_re_enables_a_disabled_admin_and_sets_the_password(app, runner):
    with app.app_context():
        root = accounts.register(ADMIN_EMAIL, PASSWORD, role="admin")
        accounts.register("helper@example.com", PASSWORD, role="admin")
        accounts.set_disabled(None, root, True)
    result = runner.invoke(args=["create-admin", ADMIN_EMAIL])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    root = load(app, ADMIN_EMAIL)
    assert (root.role, root.disabled) == ("admin", False)
    assert Client(app).login(ADMIN_EMAIL, password)["role"] == "admin"


def test_create_admin_promotes_a_disabled_user_with_the_given_password(app, runner):
    with app.app_context():
        bob = accounts.register("bob@example.com", PASSWORD)
        accounts.set_disabled(None, bob, True)
    result = runner.invoke(args=["create-admin", "bob@example.com", "--password", "a brand new phrase"])
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output
    assert Client(app).login("bob@example.com", "a brand new phrase")["role"] == "admin"


def test_create_admin_with_a_weak_password_changes_nothing_of_an_existing_account(app, runner):
    with app.app_context():
        bob = accounts.register("bob@example.com", PASSWORD)
        accounts.set_disabled(None, bob, True)
    result = runner.invoke(args=["create-admin", "bob@example.com", "--password", "123"])
    assert result.exit_code == 1
    bob = load(app, "bob@example.com")
    assert (bob.role, bob.disabled) == ("user", True)
