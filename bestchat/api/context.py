"""``GET /api/v1/context-strategies``: the strategies a conversation may choose to fit long
conversations into its model's window, and the server's default chain."""

from __future__ import annotations

from bestchat.api import bp
from bestchat.api.openapi import documented, ref
from bestchat.context.choice import strategies_json
from bestchat.security.authn import login_required


@bp.get("/context-strategies")
@documented(responses={200: ref("ContextStrategies")})
@login_required
def list_context_strategies():
    """Installed context strategies ({name, description, plugin}) and the default chain, as
    set by the server's ``CONTEXT_STRATEGIES`` (a conversation's ``context_strategy`` null)."""
    return strategies_json()
