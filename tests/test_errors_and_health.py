"""Every error is the contract's JSON shape; health and readiness endpoints."""

from __future__ import annotations

from bestchat import create_app
from bestchat.testing.client import assert_error
from bestchat.testing.pytest_plugin import make_config


def test_unknown_api_route_is_json_404(client):
    assert_error(client.get("/api/v1/nope"), 404, "not_found")


def test_wrong_method_is_json_405(client):
    response = client.request("PUT", "/api/v1/auth/login", json={})
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_body_over_the_limit_is_413_and_changes_nothing(client, app):
    big = {"email": "big@example.com", "password": "x" * (1024 * 1024)}
    assert_error(client.post("/api/v1/auth/register", big), 413, "payload_too_large")
    assert_error(client.post("/api/v1/auth/login", {"email": "big@example.com", "password": "correct horse battery"}),
                 401)


def test_unhandled_exception_is_json_500_without_traceback(app, client):
    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/api/v1/_boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True) and error["message"]


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_backends(client, backend):
    body = client.get("/readyz").get_json()
    assert body["status"] == "ok" and body["checks"]["database"] == "ok"
    assert ("redis" in body["checks"]) == (backend == "production")


def test_readyz_is_503_naming_what_is_down(tmp_path):
    config = make_config("embedded", tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    app = create_app(config)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"].startswith("down")


def test_readyz_when_database_is_down(tmp_path):
    config = make_config("embedded", tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    response = create_app(config).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("down")
