"""Groups of users, and which models and tools their members may use.

The rules:

- A group's ``models`` is an allow-list of model ids ``<provider>/<model>``; an entry
  ``<provider>/*`` allows every model of that provider; None allows every model. ``tools`` is
  an allow-list of tool names the same way.
- A user in no group may use every model and tool (an install without groups works as if
  groups did not exist). A user in groups may use what at least one of them allows (union).
  Admins may use everything.
- The lists restrict what the operator provides (global connections and keyless built-in
  providers such as ``demo``). Models served by the user's own connections stay usable: the
  user pays for them (:mod:`bestchat.providers.registry` keeps those targets).

Where they hold: the model lists (``registry.available_models``), every send
(:meth:`ConversationManager.send` and friends refuse with :class:`ModelNotAllowed` before
anything is stored), the worker's target resolution, and the tools a generation offers and
``GET /api/v1/tools`` lists.

What a user's groups allow (:func:`access`) is read once per user and generation of the groups
(:mod:`bestchat.providers.models_cache`): one query reads every group's lists with whether the
user is a member (groups are few), which also tells whether any group restricts anything. While
none does, a user's first lookup after a change is answered without a query; every change here
bumps the generation once committed, so no process trusts an entry older than the change.

A group may also set usage limits (``limit_*`` columns, checked by
:mod:`bestchat.services.limit_settings`); a member gets the most generous value among their
groups that set a kind (:mod:`bestchat.services.limits`), and every change here invalidates
the resolved limits.

Every change is audit-logged (``group.created``, ``group.updated``, ``group.deleted``,
``group.member_added``, ``group.member_removed``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sqlalchemy import exists, func, select

from bestchat.database import read_beside
from bestchat.errors import Conflict, Invalid, ModelNotAllowed, NotFound
from bestchat.extensions import db
from bestchat.models import Group, GroupMember, User
from bestchat.providers import models_cache
from bestchat.services import audit, limit_settings
from bestchat.services import limits as usage_limits
from bestchat.tools.base import NAME_RE

NAME_MAX = 100
DESCRIPTION_MAX = 500
LIST_MAX = 500
MODEL_ID_MAX = 200
# A model id as groups name it: ``<provider>/<model>`` (the model part may hold slashes), or
# ``<provider>/*`` for every model of the provider.
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+/\S+$")


@dataclass(frozen=True)
class Access:
    """What a user may use: allowed model ids and patterns, allowed tool names (None: all)."""

    models: frozenset[str] | None = None
    tools: frozenset[str] | None = None

    def allows_model(self, model_id: str) -> bool:
        if self.models is None:
            return True
        provider = model_id.partition("/")[0]
        return model_id in self.models or f"{provider}/*" in self.models

    def allows_tool(self, name: str) -> bool:
        return self.tools is None or name in self.tools

    @property
    def restricted(self) -> bool:
        return self.models is not None or self.tools is not None


EVERYTHING = Access()


# ---- what a user may use ------------------------------------------------------------------

def access_for(user: User) -> Access:
    """What ``user`` may use (an admin: everything)."""
    return access(user.id, admin=user.is_admin)


def access(user_id: uuid.UUID, *, admin: bool | Callable[[], bool]) -> Access:
    """What the user ``user_id`` may use. ``admin`` is whether the user is an admin, or a
    function asked only when the user's groups restrict something (it may read the database)."""
    if admin is True:
        return EVERYTHING
    generation, cached, restricting = models_cache.get_access(user_id)
    if cached is None and restricting is False:
        return EVERYTHING
    if cached is None:
        cached, restricting = _read_access(user_id)
        models_cache.put_access(user_id, generation, cached, restricting)
    found = Access(models=_frozen(cached["models"]), tools=_frozen(cached["tools"]))
    if found.restricted and callable(admin) and admin():
        return EVERYTHING
    return found


def _read_access(user_id: uuid.UUID) -> tuple[dict[str, Any], bool]:
    """The user's access as stored in the cache, and whether any group restricts anything: one
    query over the groups, with whether the user is in each."""
    member = exists().where(GroupMember.group_id == Group.id, GroupMember.user_id == user_id)
    # Beside the caller's session (a send's, a generation's), which is left as it was.
    rows = read_beside(select(Group.models, Group.tools, member.label("member")))
    mine = [row for row in rows if row.member]
    restricting = any(row.models is not None or row.tools is not None for row in rows)
    return {"models": _union(row.models for row in mine), "tools": _union(row.tools for row in mine)}, restricting


def _union(lists: Iterable[list[str] | None]) -> list[str] | None:
    """The union of allow-lists (None: no group, or a group that allows everything)."""
    lists = list(lists)
    if not lists or any(entries is None for entries in lists):
        return None
    return sorted({entry for entries in lists for entry in entries})


def _frozen(entries: list[str] | None) -> frozenset[str] | None:
    return None if entries is None else frozenset(entries)


def check_model(user_id: uuid.UUID, found: Access, model_id: str, *, param: str | None = None) -> None:
    """:class:`ModelNotAllowed` unless ``found`` allows ``model_id`` or one of the user's own
    connections serves it (read only then)."""
    if found.allows_model(model_id):
        return
    from bestchat.providers import registry  # noqa: PLC0415 - the registry reads this module

    if not registry.served_by_own_config(user_id, model_id):
        raise ModelNotAllowed(model_id, param=param)


# ---- groups and members -------------------------------------------------------------------

def list_groups() -> list[tuple[Group, int]]:
    """Every group by name, with its number of members."""
    counts = (select(GroupMember.group_id, func.count().label("members"))
              .group_by(GroupMember.group_id).subquery())
    rows = db.session.execute(select(Group, func.coalesce(counts.c.members, 0))
                              .outerjoin(counts, counts.c.group_id == Group.id).order_by(Group.name)).all()
    return [(group, int(members)) for group, members in rows]


def get_group(group_id: Any) -> Group:
    """The group ``group_id`` (a UUID or its text); :class:`NotFound` for an unknown or malformed id."""
    try:
        key = group_id if isinstance(group_id, uuid.UUID) else uuid.UUID(str(group_id))
    except ValueError:
        raise NotFound("group") from None
    group = db.session.get(Group, key)
    if group is None:
        raise NotFound("group")
    return group


def members(group: Group) -> list[User]:
    return list(db.session.scalars(select(User).join(GroupMember, GroupMember.user_id == User.id)
                                   .where(GroupMember.group_id == group.id).order_by(User.email)))


def search_users(query: str, *, not_in: Group, limit: int = 20) -> list[User]:
    """Users whose email contains ``query`` (case-insensitive) and who are not in ``not_in``."""
    needle = (query or "").strip().lower()
    if not needle:
        return []
    already = exists().where(GroupMember.group_id == not_in.id, GroupMember.user_id == User.id)
    return list(db.session.scalars(select(User).where(func.lower(User.email).contains(needle, autoescape=True),
                                                      ~already).order_by(User.email).limit(limit)))


def create_group(actor: User, *, name: Any, description: Any = None, models: Any = None,
                 tools: Any = None, limits: dict[str, Any] | None = None) -> Group:
    """A new group (checked first: :class:`Invalid` or :class:`Conflict`, nothing stored);
    ``limits``: ``{kind: value}`` of its usage limits (blank or missing: not set)."""
    values = _checked(name=name, description=description, models=models, tools=tools)
    values.update(limit_settings.columns(limits or {}))
    _check_name_free(values["name"])
    group = Group(**values)
    db.session.add(group)
    db.session.flush()
    audit.record("group.created", actor.id, "group", group.id, **_summary(group))
    _commit()
    return group


def update_group(actor: User, group: Group, *, name: Any, description: Any = None, models: Any = None,
                 tools: Any = None, limits: dict[str, Any] | None = None) -> Group:
    """Replace the group's name, description and lists, and its usage limits when ``limits``
    is given (checked first, nothing changed on error)."""
    values = _checked(name=name, description=description, models=models, tools=tools)
    if limits is not None:
        values.update(limit_settings.columns(limits))
    if values["name"] != group.name:
        _check_name_free(values["name"], but=group.id)
    before = _summary(group)
    for key, value in values.items():
        setattr(group, key, value)
    after = _summary(group)
    changed = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    audit.record("group.updated", actor.id, "group", group.id, name=group.name, changes=changed)
    _commit()
    return group


def delete_group(actor: User, group: Group) -> None:
    """Delete the group; its members lose what only it allowed."""
    audit.record("group.deleted", actor.id, "group", group.id, name=group.name,
                 members=len(members(group)))
    db.session.delete(group)
    _commit()


def add_member(actor: User, group: Group, email: Any) -> User:
    """Put the user with this email in the group (:class:`NotFound` for an unknown email,
    :class:`Conflict` when already a member)."""
    if not isinstance(email, str) or not email.strip():
        raise Invalid("missing_field", "give the email of the user to add")
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise NotFound("user", message=f"no user has the email {email.strip()!r}")
    if db.session.scalar(select(GroupMember.id).where(GroupMember.group_id == group.id,
                                                      GroupMember.user_id == user.id)) is not None:
        raise Conflict("already_member", f"{user.email} is already in {group.name}")
    db.session.add(GroupMember(group_id=group.id, user_id=user.id))
    audit.record("group.member_added", actor.id, "group", group.id, group=group.name, user_id=str(user.id),
                 email=user.email)
    _commit()
    return user


def remove_member(actor: User, group: Group, user_id: Any) -> User:
    """Take the user out of the group (:class:`NotFound` when not a member)."""
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        raise NotFound("member") from None
    membership = db.session.scalar(select(GroupMember).where(GroupMember.group_id == group.id,
                                                             GroupMember.user_id == key))
    if membership is None:
        raise NotFound("member")
    user = db.session.get(User, key)
    db.session.delete(membership)
    audit.record("group.member_removed", actor.id, "group", group.id, group=group.name, user_id=str(key),
                 email=user.email if user else None)
    _commit()
    return user


def _commit() -> None:
    """Commit, then make every cached access and resolved usage limit stale (after: a reader
    must not cache the old state under the new generation)."""
    db.session.commit()
    models_cache.groups_changed()
    usage_limits.invalidate()


def _check_name_free(name: str, but: uuid.UUID | None = None) -> None:
    taken = db.session.scalar(select(Group.id).where(func.lower(Group.name) == name.lower()))
    if taken is not None and taken != but:
        raise Conflict("name_taken", f"a group named {name!r} already exists")


def _summary(group: Group) -> dict[str, Any]:
    return {"name": group.name, "description": group.description, "models": group.models, "tools": group.tools,
            "limits": limit_settings.shown(limit_settings.of(group))}


# ---- input --------------------------------------------------------------------------------

def _checked(*, name: Any, description: Any, models: Any, tools: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise Invalid("missing_field", "a group needs a name")
    name = name.strip()
    if len(name) > NAME_MAX:
        raise Invalid("invalid_field", f"the name is longer than {NAME_MAX} characters")
    if description is not None and not isinstance(description, str):
        raise Invalid("invalid_field", "the description must be text")
    description = (description or "").strip() or None
    if description and len(description) > DESCRIPTION_MAX:
        raise Invalid("invalid_field", f"the description is longer than {DESCRIPTION_MAX} characters")
    return {"name": name, "description": description,
            "models": _checked_list(models, "models", _model_id_error),
            "tools": _checked_list(tools, "tools", _tool_name_error)}


def _checked_list(entries: Any, what: str, error_of: Callable[[str], str | None]) -> list[str] | None:
    """None (everything) or the deduplicated, sorted entries, each checked."""
    if entries is None:
        return None
    if not isinstance(entries, (list, tuple)) or len(entries) > LIST_MAX:
        raise Invalid("invalid_field", f"'{what}' must be a list of at most {LIST_MAX} entries")
    cleaned = set()
    for entry in entries:
        entry = entry.strip() if isinstance(entry, str) else entry
        if not isinstance(entry, str) or not entry:
            raise Invalid("invalid_field", f"'{what}' must hold non-empty names")
        error = error_of(entry)
        if error:
            raise Invalid("invalid_field", error)
        cleaned.add(entry)
    return sorted(cleaned)


def _model_id_error(entry: str) -> str | None:
    if len(entry) > MODEL_ID_MAX or not MODEL_ID_RE.match(entry):
        return f"{entry[:MODEL_ID_MAX]!r} is not a model id: write <provider>/<model> or <provider>/*"
    return None


def _tool_name_error(entry: str) -> str | None:
    return None if NAME_RE.match(entry) else f"{entry[:100]!r} is not a tool name"
