"""Chatting with a test app the way its users do, for end-to-end tests of plugins: send a
message through the REST API and get the answer the server stored.

:func:`send_and_wait` works with the shipped ``app``, ``client`` and ``user`` fixtures as they
are, on both backends. The answer's generation job runs in the test process, as a greenlet: on
the app's in-process pool (the embedded backend, or ``JOBS_IN_PROCESS``), or, when the app hands
jobs to Celery (the production backend, where no worker runs), started by the wait itself. The
wait polls the answer and yields to the job meanwhile (``gevent.sleep``). A provider that blocks
without yielding (plain sockets, ``time.sleep``) is fine: its job runs to its end before the
wait resumes; it only cannot be interrupted by ``timeout``.

:func:`add_provider` saves a provider configuration for the signed-in user, e.g. one whose
``base_url`` is the ``fake_openai`` fixture's server.
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

import gevent
from flask import Flask
from sqlalchemy import func, select

from bestchat.dispatch import GENERATE_TASK, get_dispatcher
from bestchat.extensions import db
from bestchat.models import UsageLog
from bestchat.models.message_status import CLAIMABLE, MessageStatus
from bestchat.tasks import TASK_MODULES
from bestchat.testing.client import Client

API = "/api/v1"
# An answer in these statuses is still being generated (or waits for its job to start).
ANSWERING = frozenset({*CLAIMABLE, MessageStatus.STREAMING})
POLL_SECONDS = 0.01


def send_and_wait(client: Client, content: str, *, model: str | None = None, conversation_id: str | None = None,
                  settings: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Send ``content`` as the signed-in user of ``client`` and return the answer once its
    generation has ended.

    :param client: the ``client`` fixture, signed in (the ``user`` fixture does it).
    :param content: the user's message.
    :param model: ``provider/model`` (e.g. ``"demo/demo"``): the new conversation's model, or
        this message's model in ``conversation_id``; None leaves the choice to the server.
    :param conversation_id: send in this conversation instead of creating one.
    :param settings: the new conversation's settings (its provider's options, e.g.
        ``{"tokens_per_second": 0}`` for the demo provider); not with ``conversation_id``.
    :param timeout: seconds to wait for the answer to leave ``pending``/``queued``/``streaming``
        (a safety bound: :class:`TimeoutError`, with the answer as it was).
    :return: the assistant message as ``GET /api/v1/conversations/<id>/messages`` lists it
        (``id``, ``conversation_id``, ``content``, ``status``, ``error``, ``error_code``,
        ``provider``, ``model``, ``tool_executions``...), plus ``usage``: the tokens and cost
        recorded for it (``{"prompt_tokens", "completion_tokens", "cost"}``, ``cost`` None when
        no price is known; the whole ``usage`` None when no
        provider was called, e.g. for an unknown model). A ``failed`` answer is returned like
        any other: assert on its ``status`` and ``error_code``. An answer ``waiting`` for a tool
        call's approval is returned too: decide, then :func:`wait_for_answer`.

    The server refusing to create the conversation or to take the message (an unknown setting,
    empty content...) is an :class:`AssertionError` with its JSON error.
    """
    if conversation_id is None:
        body: dict[str, Any] = {"settings": settings} if settings is not None else {}
        if model is not None:
            body["model"] = model
        conversation_id = _ok(client.post(f"{API}/conversations", body), 201, "creating the conversation")["id"]
    elif settings is not None:
        raise ValueError("settings apply to a new conversation; change an existing one's with "
                         "client.patch(f'/api/v1/conversations/{conversation_id}', {'settings': ...})")
    message: dict[str, Any] = {"content": content}
    if model is not None:
        message["model"] = model
    sent = _ok(client.post(f"{API}/conversations/{conversation_id}/messages", message), 202, "sending the message")
    return wait_for_answer(client, sent["assistant_message"]["id"], timeout=timeout)


def wait_for_answer(client: Client, message_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for the answer ``message_id`` to leave ``pending``/``queued``/``streaming`` and
    return it as :func:`send_and_wait` does (after a tool call's approval, a regenerate...).

    An app that runs its jobs in process (the embedded backend, or ``JOBS_IN_PROCESS``) runs the
    answer's job itself; for an app that hands jobs to Celery workers (the production backend:
    no worker runs in a test), the job is run here, in the test process, as a worker would.
    """
    app = client.app
    runs_jobs = get_dispatcher(app).in_process
    job: gevent.Greenlet | None = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            answer = _ok(client.get(f"{API}/messages/{message_id}"), 200, "reading the answer")
            if answer["status"] not in ANSWERING:
                return _listed(client, answer)
            if job is not None and job.dead and job.exception is not None:
                raise AssertionError(f"the generation job of {message_id} raised {job.exception!r}") from job.exception
            if not runs_jobs and answer["status"] in CLAIMABLE and (job is None or job.dead):
                job = gevent.spawn(_generate, app, message_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the answer {message_id} is still {answer['status']!r} after {timeout} s: "
                                   "its provider never finished, or every job slot (JOBS_CONCURRENCY) is busy")
            gevent.sleep(POLL_SECONDS)  # the job's greenlet runs meanwhile
    finally:
        if job is not None:
            job.kill(timeout=5)  # a job that outlived the wait does not run on into a later test


def add_provider(client: Client, provider: str, **fields: Any) -> dict[str, Any]:
    """Save a provider configuration for ``client``'s user (``POST /api/v1/providers``) and
    return it. ``fields`` are the API's: ``api_key``, ``base_url``, ``enabled_models``,
    ``options``, ``name``... With a ``base_url`` and no ``enabled_models`` the server asks the
    upstream for its models at once (the ``fake_openai`` server lists ``gpt-4o-mini`` and
    ``fake-model``). A refusal is an :class:`AssertionError` with the server's JSON error."""
    return _ok(client.post(f"{API}/providers", {"provider": provider, **fields}), 201, "saving the provider config")


def _generate(app: Flask, message_id: str) -> None:
    """Run the generation job of ``message_id``, as a Celery worker runs it."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    app.extensions["celery"].tasks[GENERATE_TASK](message_id)


def _listed(client: Client, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` as its conversation lists it (with its tool executions), plus its usage."""
    listing = _ok(client.get(f"{API}/conversations/{answer['conversation_id']}/messages?limit=200"), 200,
                  "listing the conversation")
    found = next((m for m in listing["messages"] if m["id"] == answer["id"]), answer)
    return {**found, "usage": _usage(client, answer["id"])}


def _usage(client: Client, message_id: str) -> dict[str, Any] | None:
    """The tokens and cost recorded for the answer, summed over its rounds; None if none."""
    with client.app.app_context():
        rows, prompt, completion, cost = db.session.execute(
            select(func.count(), func.sum(UsageLog.prompt_tokens), func.sum(UsageLog.completion_tokens),
                   func.sum(UsageLog.cost)).where(UsageLog.message_id == uuid.UUID(message_id))).one()
    if not rows:
        return None
    return {"prompt_tokens": int(prompt or 0), "completion_tokens": int(completion or 0),
            "cost": None if cost is None else float(cost)}


def _ok(response, status: int, doing: str) -> dict[str, Any]:
    """The response's JSON; an AssertionError naming ``doing`` and quoting the body if its
    status is not ``status``."""
    if response.status_code != status:
        body = response.get_json(silent=True) or response.data[:500]
        raise AssertionError(f"{doing}: HTTP {response.status_code} {body!r}")
    return response.get_json()
