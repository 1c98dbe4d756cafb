"""Accounts: registration, sign-in checks, API tokens, roles, passwords, export and deletion.

The last active admin (an admin account that is not disabled) is never demoted, disabled or
deleted, whichever path asks (console, API, command line): :func:`guard_last_admin` refuses with
:class:`Conflict` ``last_admin``.

Every change that takes credentials away (a token revoked, sessions ended, the role changed,
the account disabled or deleted) is announced after its commit, so open WebSockets re-check
theirs at once (:mod:`bestchat.security.revocation`)."""

from __future__ import annotations

import re
import secrets
import uuid

from sqlalchemy import delete, func, select, update

from bestchat.errors import AccountDisabled, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from bestchat.extensions import db
from bestchat.models import (
    ApiToken, AutoApprovalSetting, Conversation, FileUpload, Message, ProviderConfig,
    Subscription, UsageLog, User,
)
from bestchat.models.base import utcnow
from bestchat.models.users import ROLES
from bestchat.security import revocation
from bestchat.security.authn import end_sessions, new_token
from bestchat.security.passwords import check_policy, hash_password, verify_password
from bestchat import serializers
from bestchat.services import audit, uploads

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$|^[^@\s]{1,64}@localhost$")


def _wrong_password() -> Forbidden:
    return Forbidden("invalid_password", "password is wrong")


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise Invalid("invalid_field", "'email' is not a valid email address")
    return email


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def register(email: str, password: str, role: str = "user", display_name: str | None = None,
             *, actor: User | None = None, commit: bool = True) -> User:
    """Create an account; :class:`Invalid` for a bad email, role or weak password,
    :class:`Conflict` (``email_taken``) if the email is taken. ``actor`` is the admin who
    creates it (None: the person signing up); ``commit=False`` leaves the transaction open for
    a caller that adds more to it (an invitation's use)."""
    email = normalize_email(email)
    if role not in ROLES:
        raise Invalid("invalid_field", "role must be 'admin' or 'user'")
    check_policy(password)
    if find_by_email(email) is not None:
        raise Conflict("email_taken", "an account with this email already exists")
    user = User(email=email, password_hash=hash_password(password), role=role,
                display_name=display_name)
    db.session.add(user)
    db.session.flush()
    if actor is None:
        audit.record("user.registered", user.id, "user", user.id, role=role)
    else:
        audit.record("user.created", actor.id, "user", user.id, role=role)
    if commit:
        db.session.commit()
    return user


def generate_password() -> str:
    """A random password for an account an admin creates or resets (shown once)."""
    return secrets.token_urlsafe(12)


def check_login(email: str, password: str) -> User:
    """The user for these credentials; :class:`Unauthorized` (``invalid_credentials``) on a
    wrong pair, :class:`AccountDisabled` for a disabled account."""
    user = find_by_email(email.strip().lower())
    if not verify_password(user.password_hash if user else None, password):
        audit.record("login.failure", user.id if user else None, "user",
                     user.id if user else None, reason="bad_credentials")
        db.session.commit()
        raise Unauthorized("invalid_credentials", "wrong email or password")
    if user.disabled:
        audit.record("login.failure", user.id, "user", user.id, reason="disabled")
        db.session.commit()
        raise AccountDisabled()
    user.last_login_at = utcnow()
    audit.record("login.success", user.id, "user", user.id)
    db.session.commit()
    return user


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    plaintext, token_hash = new_token()
    token = ApiToken(user_id=user.id, name=name, token_hash=token_hash, prefix=plaintext[:10])
    db.session.add(token)
    db.session.flush()
    audit.record("token.created", user.id, "api_token", token.id, name=name)
    db.session.commit()
    return token, plaintext


def list_tokens(user: User) -> list[ApiToken]:
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ))


def get_token(user: User, token_id: uuid.UUID) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("token")
    return token


def revoke_token(user: User, token_id: uuid.UUID) -> None:
    token = get_token(user, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record("token.revoked", user.id, "api_token", token.id, name=token.name)
        db.session.commit()
        revocation.announce(user.id)


def active_admin_ids(lock: bool = False) -> list[uuid.UUID]:
    """The ids of the admin accounts that are not disabled; ``lock`` holds their rows until
    the transaction ends (``FOR UPDATE`` on PostgreSQL; SQLite serializes writers anyway)."""
    query = select(User.id).where(User.role == "admin", User.disabled.is_(False))
    return list(db.session.scalars(query.with_for_update() if lock else query))


def guard_last_admin(user: User) -> bool:
    """:class:`Conflict` (``last_admin``) when ``user`` is the only active admin: a change
    about to demote, disable or delete it would leave the server without one. The admins' rows
    stay locked until the transaction ends (PostgreSQL), so two admins demoting each other at
    once cannot both pass; :func:`_require_an_admin` checks again once the change is written.
    Returns whether ``user`` is an active admin (whether that second check is needed)."""
    if user.role != "admin" or user.disabled:
        return False
    admins = active_admin_ids(lock=True)
    if admins == [user.id] or not admins:
        raise _last_admin()
    return True


def _require_an_admin() -> None:
    """After a change is flushed (the write lock held on SQLite, row locks on PostgreSQL): undo
    it with :class:`Conflict` ``last_admin`` when no active admin is left."""
    db.session.flush()
    if not active_admin_ids():
        db.session.rollback()
        raise _last_admin()


def _last_admin() -> Conflict:
    return Conflict("last_admin", "this is the last active admin: make another account admin first")


def set_role(actor: User | None, user: User, role: str) -> None:
    if role not in ROLES:
        raise Invalid("invalid_field", "role must be 'admin' or 'user'")
    if user.role != role:
        demoted = guard_last_admin(user) if user.role == "admin" else False
        audit.record("user.role_changed", actor.id if actor else None, "user", user.id,
                     old=user.role, new=role)
        user.role = role
        if demoted:
            _require_an_admin()
        db.session.commit()
        revocation.announce(user.id)


def set_display_name(actor: User | None, user: User, name: str | None) -> None:
    name = (name or "").strip() or None
    if name is not None and len(name) > 120:
        raise Invalid("invalid_field", "the name is longer than 120 characters")
    if user.display_name != name:
        audit.record("user.renamed", actor.id if actor else None, "user", user.id,
                     old=user.display_name, new=name)
        user.display_name = name
        db.session.commit()


def set_disabled(actor: User | None, user: User, disabled: bool) -> None:
    if user.disabled != disabled:
        was_admin = guard_last_admin(user) if disabled else False
        user.disabled = disabled
        audit.record("user.disabled" if disabled else "user.enabled",
                     actor.id if actor else None, "user", user.id)
        if was_admin:
            _require_an_admin()
        if disabled:
            end_sessions(user)
        db.session.commit()
        revocation.announce(user.id)


def set_password(actor: User | None, user: User, password: str) -> None:
    """Set a new password (policy checked) and end every web session of the account; its API
    tokens stay valid (revoke them separately)."""
    check_policy(password)
    user.password_hash = hash_password(password)
    end_sessions(user)
    audit.record("user.password_changed", actor.id if actor else None, "user", user.id)
    db.session.commit()
    revocation.announce(user.id)


def reset_password(actor: User, user: User) -> str:
    """An admin's reset: a new random password (returned, to be shown once), every web session
    and remember-me cookie of the account ended and every API token of it revoked."""
    password = generate_password()
    user.password_hash = hash_password(password)
    end_sessions(user)
    revoked = db.session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    audit.record("user.password_reset", actor.id, "user", user.id, tokens_revoked=revoked)
    db.session.commit()
    revocation.announce(user.id)
    return password


def change_password(user: User, current: str, new: str) -> None:
    """The user's own password change: :class:`Forbidden` (``invalid_password``) unless
    ``current`` is right."""
    if not verify_password(user.password_hash, current):
        raise _wrong_password()
    set_password(user, user, new)


def logout(user: User) -> None:
    """Sign out: every web session and remember-me cookie of the account ends."""
    end_sessions(user)
    audit.record("logout", user.id, "user", user.id)
    db.session.commit()
    revocation.announce(user.id)


def admin_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin"))


def make_admin(email: str, password: str) -> User:
    """The command line's ``create-admin``: a new admin account, or an existing account made
    admin, enabled again and given ``password`` (its sessions end)."""
    existing = find_by_email(normalize_email(email))
    if existing is None:
        return register(email, password, role="admin")
    check_policy(password)
    set_role(None, existing, "admin")
    set_disabled(None, existing, False)
    set_password(None, existing, password)
    return existing


def export(user: User) -> dict:
    """Everything the user owns, as one JSON-ready document."""
    conversations = db.session.scalars(
        select(Conversation).where(Conversation.user_id == user.id).order_by(Conversation.created_at)
    ).all()
    ids = [c.id for c in conversations]
    messages = db.session.scalars(
        select(Message).where(Message.conversation_id.in_(ids)).order_by(Message.created_at)
    ).all() if ids else []
    by_conversation: dict = {c.id: [] for c in conversations}
    for message in messages:
        by_conversation[message.conversation_id].append(serializers.message_json(message))

    def owned(model, serializer):
        rows = db.session.scalars(select(model).where(model.user_id == user.id).order_by(model.created_at))
        return [serializer(row) for row in rows]

    return {
        "format": "bestchat-export/1",
        "exported_at": serializers.isoformat(utcnow()),
        "account": serializers.user_json(user),
        "api_tokens": [serializers.token_json(t) for t in list_tokens(user)],
        "conversations": [
            {**serializers.conversation_json(c), "messages": by_conversation[c.id]} for c in conversations
        ],
        "uploads": owned(FileUpload, serializers.upload_json),
        "provider_configs": owned(ProviderConfig, serializers.provider_config_json),
        "auto_approval_settings": owned(AutoApprovalSetting, serializers.auto_approval_json),
        "usage": owned(UsageLog, serializers.usage_json),
        "subscriptions": owned(Subscription, serializers.subscription_json),
    }


def delete_account(user: User, password: str) -> None:
    """The user's own deletion (after a password check): see :func:`_delete`."""
    if not verify_password(user.password_hash, password):
        raise _wrong_password()
    _delete(user, user)


def delete_user(actor: User, user: User) -> None:
    """An admin deletes an account: the same cascade as the user's own deletion."""
    _delete(actor, user)


def _delete(actor: User, user: User) -> None:
    """Delete the account and everything it owns in one transaction (never the last active
    admin), then its uploads' stored bytes (once their rows are gone)."""
    was_admin = guard_last_admin(user)
    user_id = user.id
    stored = uploads.storage_keys_of(user_id)
    audit.record("user.deleted", actor.id, "user", user_id)
    db.session.execute(delete(User).where(User.id == user_id))
    if was_admin:
        _require_an_admin()
    db.session.commit()
    db.session.expunge_all()
    uploads.remove_bytes(stored)
    revocation.announce(user_id)
