"""A fake Stripe API for the billing tests, and signed webhook events.

:class:`FakeStripe` serves real HTTP on 127.0.0.1 (a free port, one thread) so the billing
service is tested through the real ``stripe`` library: point ``STRIPE_API_BASE`` at
``server.url``. It answers Checkout sessions, billing portal sessions and customers with
plausible JSON, records every request (path, headers, decoded form fields) in
``server.requests``, and answers ``server.fail_with`` (a status) instead when set.

:func:`signed` makes a webhook delivery: the event's JSON body and its ``Stripe-Signature``
header, computed with the library's own helper (``t=<ts>,v1=<hmac_sha256(secret, "<ts>.<body>")>``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import stripe


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.fail_with: int | None = None
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                              dict(parse_qsl(body, keep_blank_values=True))))
                status, answer = fake._answer(self.path, fake.requests[-1].form)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(fake._ids)}")
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        if self.fail_with:
            return self.fail_with, {"error": {"type": "api_error", "message": "fake failure"}}
        n = next(self._ids)
        if path == "/v1/checkout/sessions":
            return 200, {"id": f"cs_test_{n}", "object": "checkout.session", "mode": form.get("mode"),
                         "url": f"https://checkout.stripe.test/c/pay/cs_test_{n}",
                         "customer": form.get("customer"), "client_reference_id": form.get("client_reference_id")}
        if path == "/v1/billing_portal/sessions":
            return 200, {"id": f"bps_{n}", "object": "billing_portal.session", "customer": form.get("customer"),
                         "url": f"https://billing.stripe.test/p/session/bps_{n}"}
        if path == "/v1/customers":
            return 200, {"id": f"cus_{n}", "object": "customer", "email": form.get("email")}
        return 404, {"error": {"type": "invalid_request_error", "message": f"no such path {path}"}}

    def of(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> "FakeStripe":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def event(event_type: str, obj: dict, *, event_id: str, created: int | None = None) -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "created": created or int(time.time()),
            "api_version": "2025-03-31.basil", "livemode": False, "data": {"object": obj}}


def signed(event_body: dict | str, secret: str, timestamp: int | None = None) -> tuple[str, dict[str, str]]:
    """The body and headers of a webhook delivery of ``event_body`` signed with ``secret``."""
    payload = event_body if isinstance(event_body, str) else json.dumps(event_body)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload, {"Stripe-Signature": header, "Content-Type": "application/json"}


# The keys of a test server with billing on (test-mode shaped, never real).
SECRET_KEY = "sk_test_51SecretKeyThatMustNeverLeak0123456789"
WEBHOOK_SECRET = "whsec_testWebhookSecretNeverShown42"


def billing_config(server: FakeStripe) -> dict[str, str]:
    """The settings of an app with billing on, calling ``server`` instead of Stripe."""
    return {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": server.url, "BILLING_PUBLIC_URL": "https://chat.example.com"}
