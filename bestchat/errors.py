"""The errors of the domain: what went wrong, in the service's words, with no HTTP in them.

Services, providers' callers, the store and the security checks raise these; the adapters
(REST, WebSocket, ``/v1``) turn them into their own shapes through the one table in
:mod:`bestchat.error_responses` (which status, which headers, which frame). Each error has a
stable machine ``code`` (what clients act on), a ``message`` for people, optional
``details`` (more fields of the error object, such as a limit's value) and, for refusals that
pass, ``retry_after`` seconds.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client is told about. ``code`` defaults to the class's."""

    code = "error"

    def __init__(self, code: str | None, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: int | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code or type(self).code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after
        self.param = param  # the request field at fault, when one is (OpenAI's ``param``)


class Invalid(DomainError):
    """The request is malformed or a value is not allowed (``invalid_field``, ``missing_field``...)."""

    code = "invalid_field"


class UnknownModel(Invalid):
    """No enabled provider serves the requested model."""

    code = "unknown_model"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(None, message, param=param)


class Unauthorized(DomainError):
    """No valid credentials came with the request."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The credentials are valid, the action is not allowed to them."""

    code = "forbidden"


class AccountDisabled(Forbidden):
    """The account was disabled by an admin: everything it asks is refused."""

    code = "account_disabled"

    def __init__(self) -> None:
        super().__init__(None, "this account is disabled")


class ModelNotAllowed(Forbidden):
    """None of the user's groups allows the model (and no connection of the user's own serves it)."""

    code = "model_not_allowed"

    def __init__(self, model_id: str, *, param: str | None = None):
        super().__init__(None, f"model '{model_id}' is not allowed for your account: none of your groups "
                               "includes it (ask an administrator)", param=param)


class NotFound(DomainError):
    """An unknown id, and equally another user's id (never a leak of its existence)."""

    code = "not_found"

    def __init__(self, what: str = "resource", *, code: str | None = None, message: str | None = None):
        super().__init__(code, message or f"{what} not found")


class Conflict(DomainError):
    """The request does not fit the current state (an answer still running, not editable...)."""

    code = "conflict"


class TooLarge(DomainError):
    """A body or upload is larger than its limit."""

    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    """The body is not of a type the endpoint reads."""

    code = "unsupported_media_type"


class Unreadable(DomainError):
    """The body is of an accepted type but cannot be read (a corrupt PDF, a zip bomb...)."""

    code = "unreadable_file"


class RateLimited(DomainError):
    """Too many requests of this kind from this client; ``retry_after`` says when to retry."""

    code = "rate_limited"


class PaymentRequired(DomainError):
    """The user's plan allows no more of this until it resets or the plan changes (a cost
    limit reached); ``details`` name the limit and when it resets."""

    code = "payment_required"


class Unavailable(DomainError):
    """A service the request needs cannot be reached right now (Redis, the queue, ...)."""

    code = "unavailable"


class Overloaded(Unavailable):
    """Every generation slot is busy and the queue is full: refused before anything is stored."""

    code = "overloaded"

    def __init__(self, retry_after: int, message: str = "the server is at capacity and its queue is full; "
                                                         "try again shortly"):
        super().__init__(None, message, retry_after=retry_after)

