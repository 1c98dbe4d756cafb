"""A worker starts without the server's cloud credentials in its environment (issue: a user's
litellm config must not make the server sign requests with its own AWS/GCP/Azure identity)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bestchat.security.cloud_env import strip_cloud_credentials
from bestchat.settings import REPO_ROOT

CLOUD = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret/example",
    "AWS_SESSION_TOKEN": "token", "AWS_PROFILE": "prod", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp.json", "AZURE_CLIENT_SECRET": "s",
    "AZURE_TENANT_ID": "t", "WATSONX_APIKEY": "w",
}
SHOWN = (*CLOUD, "AWS_EC2_METADATA_DISABLED", "NO_GCE_CHECK", "PATH_SEEN")


def worker_environment(tmp_path, module="celery_worker", **settings) -> dict[str, str | None]:
    """The environment of a process that imported ``module`` (``celery_worker`` as ``celery -A``
    does; ``wsgi`` as gunicorn does, which runs the jobs itself in embedded mode)."""
    env = {**os.environ, **CLOUD, "PATH_SEEN": "yes", "BESTCHAT_INSTANCE_PATH": str(tmp_path / "instance"),
           "BESTCHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}", "BESTCHAT_ENV_NAME": "testing"}
    env.pop("BESTCHAT_REDIS_URL", None)
    env.update({f"BESTCHAT_{name}": value for name, value in settings.items()})
    code = (f"import json, os, {module}; "
            f"print(json.dumps({{n: os.environ.get(n) for n in {SHOWN!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["celery_worker", "wsgi"])
def test_worker_starts_without_cloud_credentials(tmp_path, module):
    seen = worker_environment(tmp_path, module)
    assert {name: seen[name] for name in CLOUD} == dict.fromkeys(CLOUD)
    assert seen["AWS_EC2_METADATA_DISABLED"] == "true" and seen["PATH_SEEN"] == "yes"


def test_worker_keeps_them_when_configured(tmp_path):
    seen = worker_environment(tmp_path, WORKER_KEEP_CLOUD_CREDENTIALS="true")
    assert {name: seen[name] for name in CLOUD} == CLOUD


def test_strip_returns_only_names():
    environ = {"AWS_ACCESS_KEY_ID": "AKIA", "HOME": "/root", "azure_client_id": "x"}
    assert strip_cloud_credentials(environ) == ["AWS_ACCESS_KEY_ID", "azure_client_id"]
    assert environ["HOME"] == "/root" and "AWS_ACCESS_KEY_ID" not in environ
