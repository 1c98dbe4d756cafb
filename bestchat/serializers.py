"""One JSON representation per model, used by every API, WebSocket event and export."""

from __future__ import annotations

from bestchat.models import (
    ApiToken, AutoApprovalSetting, ContextOptimization, Conversation, FileUpload, Message, ProviderConfig,
    Subscription, ToolExecution, UsageLog, User,
)
from bestchat.models.base import isoformat


def _stamps(obj) -> dict:
    return {"created_at": isoformat(obj.created_at), "updated_at": isoformat(obj.updated_at)}


def user_json(user: User) -> dict:
    return {
        "id": str(user.id), "email": user.email, "display_name": user.display_name,
        "role": user.role, "disabled": user.disabled, "settings": user.settings or {},
        "last_login_at": isoformat(user.last_login_at), **_stamps(user),
    }


def token_json(token: ApiToken) -> dict:
    return {
        "id": str(token.id), "name": token.name, "prefix": token.prefix,
        "last_used_at": isoformat(token.last_used_at), "expires_at": isoformat(token.expires_at),
        "revoked_at": isoformat(token.revoked_at), **_stamps(token),
    }


def conversation_json(conversation: Conversation) -> dict:
    return {
        "id": str(conversation.id), "title": conversation.title,
        "provider": conversation.provider, "model": conversation.model,
        "system_prompt": conversation.system_prompt, "settings": conversation.settings or {},
        "disabled_tools": conversation.disabled_tools or [],
        "context_strategy": conversation.context_strategy or None, **_stamps(conversation),
    }


def message_json(message: Message) -> dict:
    return {
        "id": str(message.id), "conversation_id": str(message.conversation_id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role, "content": message.content, "parts": message.parts or [],
        "status": message.status, "error": message.error, "error_code": message.error_code, "token_count": message.token_count,
        "provider": message.provider, "model": message.model, "last_seq": message.last_seq,
        "meta": message.meta or {}, **_stamps(message),
    }


def summary_json(row: ContextOptimization) -> dict:
    """A conversation summary (a ``context_optimizations`` row with a summary)."""
    return {
        "id": str(row.id),
        "first_message_id": str(row.first_message_id) if row.first_message_id else None,
        "last_message_id": str(row.last_message_id) if row.last_message_id else None,
        "covered": int((row.details or {}).get("covered") or 0), "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens, "summary": row.summary or "", **_stamps(row),
    }


def upload_json(upload: FileUpload) -> dict:
    """Never the storage key nor the text itself (only its token count)."""
    details = dict(upload.details or {})
    return {
        "id": str(upload.id), "name": upload.name, "size": upload.size, "sha256": upload.sha256,
        "mime": upload.mime, "kind": details.get("kind", "text"), "text_tokens": upload.text_tokens,
        "details": details,
        "conversation_id": str(upload.conversation_id) if upload.conversation_id else None,
        **_stamps(upload),
    }


def provider_config_json(config: ProviderConfig) -> dict:
    """The key itself is write-only: only whether one is set and its last four characters."""
    return {
        "id": str(config.id), "provider": config.provider, "name": config.name,
        "scope": "global" if config.user_id is None else "user",
        "has_key": config.api_key_encrypted is not None, "key_last4": config.key_last4,
        "base_url": config.base_url, "enabled_models": config.enabled_models or [],
        "discovered_models": config.discovered_models,
        "models_refreshed_at": isoformat(config.models_refreshed_at),
        "model_names": config.model_names or {},
        "fallbacks": config.fallbacks or [], "options": config.options or {},
        "priority": config.priority, "enabled": config.enabled, **_stamps(config),
    }


def usage_json(log: UsageLog) -> dict:
    return {
        "id": str(log.id), "conversation_id": str(log.conversation_id) if log.conversation_id else None,
        "message_id": str(log.message_id) if log.message_id else None,
        "provider": log.provider, "model": log.model, "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens, "cached_tokens": log.cached_tokens,
        # None: the price was unknown when the row was written (never reported as 0)
        "cost": None if log.cost is None else float(log.cost), "price_source": log.price_source,
        **_stamps(log),
    }


def tool_execution_json(execution: ToolExecution) -> dict:
    return {
        "id": str(execution.id), "message_id": str(execution.message_id), "tool": execution.tool,
        "call_id": execution.call_id, "arguments": execution.arguments or {},
        "risk": execution.risk, "status": execution.status, "result": execution.result,
        "error": execution.error, "started_at": isoformat(execution.started_at),
        "finished_at": isoformat(execution.finished_at), "duration_ms": execution.duration_ms,
        "approver_id": str(execution.approver_id) if execution.approver_id else None,
        **_stamps(execution),
    }


def auto_approval_json(setting: AutoApprovalSetting) -> dict:
    return {
        "id": str(setting.id), "tool": setting.tool, "risk_level": setting.risk_level,
        "decision": setting.decision, **_stamps(setting),
    }


def subscription_json(subscription: Subscription) -> dict:
    return {
        "id": str(subscription.id), "plan_id": str(subscription.plan_id),
        "status": subscription.status, "source": subscription.source,
        "current_period_end": isoformat(subscription.current_period_end),
        "cancel_at_period_end": subscription.cancel_at_period_end, **_stamps(subscription),
    }
