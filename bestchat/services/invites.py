"""Invitations: one-time sign-up links an admin makes, and the sign-up that uses one.

An invite's token is shown once (in its link, ``/signup?invite=<token>``); only its SHA-256 is
stored. It works until it is used or expires (``INVITE_DAYS``), may be bound to one email, and
gives the new account its role and, optionally, a group. Using it is atomic: of two sign-ups
with the same token, one wins. Every failure to use one is the same ``invite_invalid`` (unknown,
used, expired or bound to another email: a guesser learns nothing).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from bestchat.errors import Forbidden, Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import User
from bestchat.models.base import as_utc, utcnow
from bestchat.models.groups import Group, GroupMember
from bestchat.models.site import Invite
from bestchat.models.users import ROLES
from bestchat.services import accounts, audit

SIGNUP_PATH = "/signup"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _invalid() -> Forbidden:
    return Forbidden("invite_invalid", "this invitation is not valid (unknown, already used or expired)")


def create(actor: User, email: str | None = None, role: str = "user",
           group_id: uuid.UUID | None = None) -> tuple[Invite, str]:
    """A new invitation and its plaintext token (to show once). :class:`Invalid` for a bad
    email or role, :class:`NotFound` for an unknown group."""
    email = accounts.normalize_email(email) if email and email.strip() else None
    if role not in ROLES:
        raise Invalid("invalid_field", "role must be 'admin' or 'user'")
    if group_id is not None and db.session.get(Group, group_id) is None:
        raise NotFound("group")
    token = secrets.token_urlsafe(32)
    invite = Invite(token_hash=_hash(token), email=email, role=role, group_id=group_id,
                    created_by=actor.id,
                    expires_at=utcnow() + timedelta(days=float(current_app.config["INVITE_DAYS"])))
    db.session.add(invite)
    db.session.flush()
    audit.record("invite.created", actor.id, "invite", invite.id, email=email, role=role,
                 group_id=str(group_id) if group_id else None)
    db.session.commit()
    return invite, token


def link(token: str) -> str:
    """The path of an invitation's sign-up link (relative to the server's origin)."""
    return f"{SIGNUP_PATH}?invite={token}"


def pending() -> list[Invite]:
    """Invitations not used yet and not expired, newest first."""
    return list(db.session.scalars(
        select(Invite).where(Invite.used_at.is_(None), Invite.expires_at > utcnow())
        .order_by(Invite.created_at.desc())
    ))


def revoke(actor: User, invite_id: uuid.UUID) -> None:
    """Delete an unused invitation (its link stops working); :class:`NotFound` otherwise."""
    invite = db.session.get(Invite, invite_id)
    if invite is None or invite.used_at is not None:
        raise NotFound("invite")
    audit.record("invite.revoked", actor.id, "invite", invite.id, email=invite.email)
    db.session.delete(invite)
    db.session.commit()


def register(token: str, email: str, password: str, display_name: str | None = None) -> User:
    """Create an account with an invitation: its role, its group, the invitation marked used,
    all in one transaction. :class:`Forbidden` ``invite_invalid`` when the token is unknown,
    used, expired or bound to another email (nothing is created)."""
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == _hash(token)))
    now = utcnow()
    normalized = accounts.normalize_email(email)
    if (invite is None or invite.used_at is not None or as_utc(invite.expires_at) <= now
            or (invite.email is not None and invite.email != normalized)):
        raise _invalid()
    user = accounts.register(normalized, password, role=invite.role, display_name=display_name,
                             commit=False)
    # The claim: only a row still unused (and unexpired) is updated, so of two sign-ups racing
    # with one token exactly one sees a row changed.
    claimed = db.session.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None), Invite.expires_at > now,
               or_(Invite.email.is_(None), Invite.email == normalized))
        .values(used_at=now, used_by=user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise _invalid()
    if invite.group_id is not None:
        db.session.add(GroupMember(group_id=invite.group_id, user_id=user.id))
    audit.record("invite.used", user.id, "invite", invite.id, user_id=str(user.id))
    db.session.commit()
    return user
