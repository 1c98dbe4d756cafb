"""Test helpers for BestChat and its plugins: a JSON client that knows the CSRF dance, and the
error-shape assertion. Shipped in the package so third-party plugin authors can use them."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient


class Client:
    """A Flask test client speaking the JSON API, with the session's CSRF token attached."""

    def __init__(self, app: Flask):
        self.app = app
        self.http: FlaskClient = app.test_client()
        self.csrf: str | None = None
        self.bearer: str | None = None

    def _headers(self, headers):
        merged = dict(headers or {})
        if self.csrf:
            merged.setdefault("X-CSRF-Token", self.csrf)
        if self.bearer:
            merged.setdefault("Authorization", f"Bearer {self.bearer}")
        return merged

    def request(self, method: str, path: str, json=None, headers=None, **kwargs):
        return self.http.open(path, method=method, json=json, headers=self._headers(headers), **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, json=None, **kw):
        return self.request("DELETE", path, json=json, **kw)

    def signup(self, email: str, password: str) -> dict:
        response = self.post("/api/v1/auth/register", {"email": email, "password": password})
        assert response.status_code == 201, response.get_json()
        return self.login(email, password)

    def login(self, email: str, password: str) -> dict:
        response = self.post("/api/v1/auth/login", {"email": email, "password": password})
        assert response.status_code == 200, response.get_json()
        self.csrf = response.get_json()["csrf_token"]
        return response.get_json()["user"]

    def new(self) -> "Client":
        """Another client (its own cookies) on the same app."""
        return Client(self.app)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is the contract's JSON error with ``status`` (and ``code``)."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.is_json, response.data[:200]
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message"}
    if code is not None:
        assert error["code"] == code, error
    return error
