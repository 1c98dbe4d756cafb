"""Personal API tokens (``/api/v1/tokens``): created with the plaintext shown once, revocable."""

from __future__ import annotations

from flask import g

from bestchat.api import bp
from bestchat.api.openapi import array, documented, obj, ref, string
from bestchat.security.authn import login_required
from bestchat.serializers import token_json
from bestchat.services import accounts
from bestchat.validation import field, json_body, parse_uuid


@bp.post("/tokens")
@documented(body=obj({"name": string(100)}, ("name",)),
            responses={201: {"allOf": [ref("Token"), obj({"token": string()}, ("token",))]}})
@login_required
def create_token():
    """Create a token. Body: {name}. 201 with the token and its plaintext ``token``, shown once."""
    name = field(json_body(), "name", max_length=100)
    token, plaintext = accounts.create_token(g.user, name)
    return {**token_json(token), "token": plaintext}, 201


@bp.get("/tokens")
@documented(responses={200: obj({"tokens": array(ref("Token"))}, ("tokens",))})
@login_required
def list_tokens():
    """The user's tokens (never their plaintext), newest first."""
    return {"tokens": [token_json(t) for t in accounts.list_tokens(g.user)]}


@bp.get("/tokens/<token_id>")
@documented(responses={200: ref("Token")})
@login_required
def get_token(token_id: str):
    """One token's metadata."""
    return token_json(accounts.get_token(g.user, parse_uuid(token_id, "token")))


@bp.delete("/tokens/<token_id>")
@documented(responses={204: None})
@login_required
def revoke_token(token_id: str):
    """Revoke a token; it stops working at once. 204."""
    accounts.revoke_token(g.user, parse_uuid(token_id, "token"))
    return "", 204
