"""The console's groups page (``/admin/groups/``): groups with their member counts; create,
edit and delete a group (its models and tools: "all", or a checklist plus free entry of model
ids) and its usage limits (blank: not set); add members by email (with a search) and remove
them.

Thin: the rules and the audit log are :mod:`bestchat.services.groups`'s. A refused change is
shown on the form again with its reason, nothing changed; an unknown or malformed id is 404.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from bestchat import plugins
from bestchat.admin.base import SecureView
from bestchat.errors import DomainError, NotFound
from bestchat.models import Group
from bestchat.providers import registry
from bestchat.models.limits import LIMIT_KINDS
from bestchat.services import groups, limit_settings

# Free entry of model ids: separated by commas, spaces or new lines.
_SEPARATORS = re.compile(r"[\s,]+")


class GroupsView(SecureView):
    """Groups and per-group model and tool access."""

    @expose("/")
    def index(self) -> str:
        return self.render("bestchat_admin/groups.html", groups=groups.list_groups())

    @expose("/new", methods=("GET", "POST"))
    def create(self) -> Any:
        values: dict[str, Any] = {"name": "", "description": "", "models": None, "tools": None,
                                  "limits": limit_settings.of(None)}
        if request.method == "POST":
            values = _form_values()
            try:
                group = groups.create_group(_actor(), **values)
            except DomainError as error:
                return self._form(None, values, error.message, status=400)
            flash(f"Group {group.name} created.", "success")
            return redirect(url_for(".edit", group_id=group.id))
        return self._form(None, values)

    @expose("/<group_id>/", methods=("GET", "POST"))
    def edit(self, group_id: str) -> Any:
        group = _group(group_id)
        if request.method == "POST":
            values = _form_values()
            try:
                groups.update_group(_actor(), group, **values)
            except DomainError as error:
                return self._form(group, values, error.message, status=400)
            flash(f"Group {group.name} saved.", "success")
            return redirect(url_for(".edit", group_id=group.id))
        return self._form(group, {"name": group.name, "description": group.description or "",
                                  "models": group.models, "tools": group.tools,
                                  "limits": limit_settings.of(group)})

    @expose("/<group_id>/delete", methods=("POST",))
    def delete(self, group_id: str) -> Any:
        group = _group(group_id)
        name = group.name
        groups.delete_group(_actor(), group)
        flash(f"Group {name} deleted.", "success")
        return redirect(url_for(".index"))

    @expose("/<group_id>/members", methods=("POST",))
    def add_member(self, group_id: str) -> Any:
        group = _group(group_id)
        try:
            user = groups.add_member(_actor(), group, request.form.get("email", ""))
            flash(f"{user.email} added to {group.name}.", "success")
        except DomainError as error:
            flash(error.message, "error")
        return redirect(url_for(".edit", group_id=group.id))

    @expose("/<group_id>/members/<user_id>/remove", methods=("POST",))
    def remove_member(self, group_id: str, user_id: str) -> Any:
        group = _group(group_id)
        try:
            user = groups.remove_member(_actor(), group, user_id)
        except NotFound:
            abort(404)
        flash(f"{user.email if user else 'The user'} removed from {group.name}.", "success")
        return redirect(url_for(".edit", group_id=group.id))

    def _form(self, group: Group | None, values: dict[str, Any], error: str | None = None,
              status: int = 200) -> Any:
        """The create/edit form with ``values``; when editing, the members and the search."""
        offered = [model["id"] for model in registry.operator_models()]
        chosen = values["models"] or []
        tools = sorted(plugins.get_tools())
        query = request.args.get("q", "") if group is not None else ""
        page = self.render(
            "bestchat_admin/group_form.html", group=group, values=values, error=error,
            model_choices=offered, extra_models=[m for m in chosen if m not in offered],
            tool_choices=sorted(set(tools) | set(values["tools"] or [])),
            limit_fields=limit_settings.LABELS, limit_values=limit_settings.shown(values["limits"]),
            members=groups.members(group) if group is not None else [],
            query=query, found=groups.search_users(query, not_in=group) if group is not None else [])
        return page, status


def _actor() -> Any:
    return current_user._get_current_object()


def _group(group_id: str) -> Group:
    try:
        return groups.get_group(group_id)
    except NotFound:
        abort(404)


def _form_values() -> dict[str, Any]:
    """The group's fields from the posted form (checked by the service)."""
    form = request.form
    models = None
    if form.get("models_mode") == "list":
        models = form.getlist("models") + [entry for entry in _SEPARATORS.split(form.get("models_extra", ""))
                                          if entry]
    tools = form.getlist("tools") if form.get("tools_mode") == "list" else None
    return {"name": form.get("name", ""), "description": form.get("description", ""), "models": models,
            "tools": tools, "limits": {kind: form.get("limit_" + kind, "") for kind in LIMIT_KINDS}}
