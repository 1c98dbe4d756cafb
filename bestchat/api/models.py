"""``GET /api/v1/models``: the models this user may use, from every enabled provider."""

from __future__ import annotations

from flask import current_app, g

from bestchat.api import bp
from bestchat.api.openapi import array, documented, nullable, obj, ref, string
from bestchat.providers import registry
from bestchat.security.authn import login_required


@bp.get("/models")
@documented(responses={200: obj({"models": array(ref("Model")), "default": nullable(string())}, ("models",))})
@login_required
def list_models():
    """Models the user may use: {models: [{id, provider, name, source, capabilities}], default}.
    ``default`` is the server's default model when the user may use it, else null."""
    models = registry.available_models(g.user)
    default = current_app.config["DEFAULT_MODEL"]
    return {"models": models, "default": default if any(m["id"] == default for m in models) else None}
