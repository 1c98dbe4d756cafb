"""The console's users page: search and filter accounts, create one, invite someone, and per
account change the role, disable or enable it, reset its password or delete it.

Every change goes through :mod:`bestchat.services.accounts` or
:mod:`bestchat.services.invites`, which audit-log it and hold the rules (the last active admin
stays, a reset ends the account's sessions and revokes its API tokens). Generated passwords and
invitation links are shown once, on the page answering the POST, and never stored in plaintext.
The page's own forms carry the session's CSRF token (checked in :meth:`UserView._handle_view`);
the edit form inherited from Flask-Admin carries its ``SecureForm`` token.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import abort, flash, has_request_context, redirect, request
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.model.template import EndpointLinkRowAction
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import inspect, select

from bestchat.admin import plans as plan_pages
from bestchat.admin.base import SecureModelView
from bestchat.errors import Conflict, DomainError, NotFound
from bestchat.extensions import db
from bestchat.models import User
from bestchat.models.groups import Group, GroupMember
from bestchat.models.limits import LIMIT_KINDS
from bestchat.models.users import ROLES
from bestchat.security.csrf import check_csrf
from bestchat.services import accounts, billing, invites, limit_settings
from bestchat.services import limits as usage_limits

# Statuses of a refused console action (the page says why; nothing changed).
_STATUS = {Conflict: 409, NotFound: 404}


def _status(error: DomainError) -> int:
    return next((status for kind, status in _STATUS.items() if isinstance(error, kind)), 400)


def _group_options() -> list[tuple[str, str]]:
    return [(str(group.id), group.name) for group in db.session.scalars(select(Group).order_by(Group.name))]


class GroupFilter(BaseSQLAFilter):
    """Accounts that are members of the chosen group."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        try:
            group_id = uuid.UUID(str(value))
        except ValueError:
            return query.filter(False)
        return query.filter(User.id.in_(select(GroupMember.user_id).where(GroupMember.group_id == group_id)))

    def operation(self) -> str:
        return "is member of"

    def get_options(self, view: Any) -> list[tuple[str, str]] | None:
        """The groups as they are now (none while the view is built, outside a request)."""
        return _group_options() if has_request_context() else None


def _email_link(view: Any, context: Any, user: User, name: str) -> Markup:
    """The email, linking to the account's page (its actions)."""
    return Markup('<a href="{}">{}</a>').format(view.get_url(".manage", id=user.id), user.email)


class UserView(SecureModelView):
    """Accounts, searchable by email and name, filterable by role, disabled and group. Never
    shows password hashes; the edit form's role and disabled changes go through the service."""

    can_create = False
    can_delete = False
    list_template = "bestchat_admin/users_list.html"
    column_list = ("email", "display_name", "role", "disabled", "last_login_at", "created_at")
    column_searchable_list = ("email", "display_name")
    column_filters = ("role", "disabled", GroupFilter(User.id, "Group"))
    column_default_sort = ("created_at", True)
    named_filter_urls = True
    column_extra_row_actions = [EndpointLinkRowAction("fa fa-cog", ".manage", title="Manage")]
    column_formatters = {"email": _email_link}
    form_columns = ("display_name", "role", "disabled")
    form_choices = {"role": [("user", "user"), ("admin", "admin")]}

    # Flask-Admin's own views check their SecureForm token; every other unsafe request to this
    # view is one of the page's forms, which carry the session's token.
    _own_forms = {"create_view", "edit_view", "delete_view", "action_view", "ajax_update"}

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        refused = super()._handle_view(name, **kwargs)
        if refused is None and request.method not in ("GET", "HEAD", "OPTIONS") and name not in self._own_forms:
            check_csrf()
        return refused

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self) -> Any:
        """Flask-Admin's edit form (name, role, disabled), with 404 for an unknown id."""
        self._account()
        return super().edit_view()

    def _get_filter_groups(self) -> Any:
        """The filters with the group list read again for each page (groups change at runtime)."""
        self._refresh_filters_cache()
        return super()._get_filter_groups()

    def on_model_change(self, form: Any, model: User, is_created: bool) -> None:
        """The edit form's changes go through the service (audited, last admin kept): each is
        put back first, so the service sees the account as it is stored."""
        actor = current_user._get_current_object()
        changed = {}
        for attr in ("display_name", "role", "disabled"):
            old = inspect(model).attrs[attr].history.deleted
            if old:
                changed[attr] = getattr(model, attr)
                setattr(model, attr, old[0])
        if "display_name" in changed:
            accounts.set_display_name(actor, model, changed["display_name"])
        if "role" in changed:
            accounts.set_role(actor, model, changed["role"])
        if "disabled" in changed:
            accounts.set_disabled(actor, model, changed["disabled"])

    # --- helpers -----------------------------------------------------------------------------

    def _actor(self) -> User:
        return current_user._get_current_object()

    def _account(self) -> User:
        """The account named by ``?id=``; 404 for a malformed or unknown id."""
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            abort(404)
        return user

    def _page(self, template: str, status: int = 200, **context: Any) -> Any:
        """A page that may show a secret once: never cached, never stored by the browser."""
        return self.render(template, roles=ROLES, **context), status, {"Cache-Control": "no-store"}

    def _manage_page(self, user: User, status: int = 200, error: str | None = None, **context: Any) -> Any:
        groups = db.session.scalars(
            select(Group).join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id).order_by(Group.name)
        ).all()
        context.setdefault("limit_values", limit_settings.shown(
            limit_settings.of(limit_settings.user_overrides(user.id))))
        return self._page("bestchat_admin/user_manage.html", status, account=user, groups=groups,
                          error=error, plan_section=plan_pages.plan_section(user),
                          limit_fields=limit_settings.LABELS,
                          effective_limits=usage_limits.effective(user.id), **context)

    # --- create and invite -------------------------------------------------------------------

    @expose("/new-user/", methods=("GET", "POST"))
    def new_user(self) -> Any:
        """Create an account: email, name, role and a password given or generated."""
        if request.method == "GET":
            return self._page("bestchat_admin/user_new.html", values={})
        values = {key: request.form.get(key, "").strip() for key in ("email", "display_name", "role")}
        given = request.form.get("password", "")
        password = given or accounts.generate_password()
        try:
            user = accounts.register(values["email"], password, role=values["role"] or "user",
                                     display_name=values["display_name"] or None, actor=self._actor())
        except DomainError as error:
            db.session.rollback()
            return self._page("bestchat_admin/user_new.html", _status(error), values=values, error=error.message)
        return self._page("bestchat_admin/user_created.html", account=user,
                          password=None if given else password)

    @expose("/invite/", methods=("GET", "POST"))
    def invite(self) -> Any:
        """Make a one-time sign-up link, optionally bound to an email and joining a group."""
        groups = _group_options()
        if request.method == "GET":
            return self._page("bestchat_admin/user_invite.html", values={}, groups=groups,
                              pending=invites.pending())
        values = {key: request.form.get(key, "").strip() for key in ("email", "role", "group_id")}
        try:
            group_id = uuid.UUID(values["group_id"]) if values["group_id"] else None
        except ValueError:
            abort(404)
        try:
            invite, token = invites.create(self._actor(), values["email"] or None, values["role"] or "user", group_id)
        except DomainError as error:
            db.session.rollback()
            return self._page("bestchat_admin/user_invite.html", _status(error), values=values, groups=groups,
                              pending=invites.pending(), error=error.message)
        url = request.host_url.rstrip("/") + invites.link(token)
        return self._page("bestchat_admin/user_invited.html", invite=invite, url=url)

    @expose("/invite/revoke/", methods=("POST",))
    def revoke_invite(self) -> Any:
        try:
            invites.revoke(self._actor(), uuid.UUID(request.args.get("id", "")))
        except (ValueError, NotFound):
            abort(404)
        flash("Invitation revoked.", "success")
        return redirect(self.get_url(".invite"))

    # --- one account -------------------------------------------------------------------------

    @expose("/manage/")
    def manage(self) -> Any:
        return self._manage_page(self._account())

    def _change(self, user: User, change: Any, done: str) -> Any:
        """Run a service change on ``user``; back to its page with ``done``, or its page with the
        refusal (nothing changed)."""
        try:
            change()
        except DomainError as error:
            db.session.rollback()
            return self._manage_page(user, _status(error), error=error.message)
        flash(done, "success")
        return redirect(self.get_url(".manage", id=user.id))

    @expose("/manage/role/", methods=("POST",))
    def change_role(self) -> Any:
        user = self._account()
        role = request.form.get("role", "")
        return self._change(user, lambda: accounts.set_role(self._actor(), user, role), f"Role set to {role}.")

    @expose("/manage/disable/", methods=("POST",))
    def disable(self) -> Any:
        user = self._account()
        return self._change(user, lambda: accounts.set_disabled(self._actor(), user, True), "Account disabled.")

    @expose("/manage/enable/", methods=("POST",))
    def enable(self) -> Any:
        user = self._account()
        return self._change(user, lambda: accounts.set_disabled(self._actor(), user, False), "Account enabled.")

    @expose("/manage/reset-password/", methods=("POST",))
    def reset_password(self) -> Any:
        user = self._account()
        password = accounts.reset_password(self._actor(), user)
        return self._page("bestchat_admin/user_created.html", account=user, password=password, reset=True)

    # --- the user's plan (its own section of the page) ----------------------------------------

    @expose("/manage/plan/", methods=("POST",))
    def assign_plan(self) -> Any:
        """Put the account on a plan (source admin), or take the assigned plan away."""
        user = self._account()
        plan = plan_pages.chosen_plan(request.form.get("plan_id", ""))
        return self._change(user, lambda: billing.assign_plan(self._actor(), user, plan),
                            f"Plan set to {plan.name}." if plan else "Assigned plan removed.")

    # --- one account: usage limits ------------------------------------------------------------

    @expose("/manage/limits/", methods=("POST",))
    def set_limits(self) -> Any:
        """The user's own usage limits (overrides); blank fields are not set."""
        user = self._account()
        values = {kind: request.form.get("limit_" + kind, "") for kind in LIMIT_KINDS}
        try:
            limit_settings.set_user_overrides(self._actor(), user, values)
        except DomainError as error:
            db.session.rollback()
            return self._manage_page(user, _status(error), error=error.message,
                                     limit_values={kind: values[kind].strip() for kind in LIMIT_KINDS})
        flash("Usage limits saved.", "success")
        return redirect(self.get_url(".manage", id=user.id))

    @expose("/manage/delete/", methods=("GET", "POST"))
    def delete(self) -> Any:
        """GET asks for confirmation (typing the email); POST deletes with the same cascade as
        the user's own deletion."""
        user = self._account()
        if request.method == "GET":
            return self._page("bestchat_admin/user_delete.html", account=user)
        if request.form.get("confirm_email", "").strip().lower() != user.email:
            return self._page("bestchat_admin/user_delete.html", 400, account=user,
                              error="Type the account's email to confirm.")
        email = user.email
        try:
            accounts.delete_user(self._actor(), user)
        except DomainError as error:
            db.session.rollback()
            return self._page("bestchat_admin/user_delete.html", _status(error), account=user, error=error.message)
        flash(f"Account {email} deleted.", "success")
        return redirect(self.get_url(".index_view"))
