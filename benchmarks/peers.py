"""The peers of ``peer_bench.py``: Open WebUI and the LiteLLM proxy, each in its own virtualenv.

A peer lives in ``<peers dir>/<name>`` (default ``/work/peers``), outside the repository, so that
nothing it depends on touches BestChat's environment. :meth:`Peer.ensure_installed` creates the
venv and pip-installs the pinned release on first use (``<peers dir>/logs/<name>-install.log``);
when that fails the peer is skipped (:class:`Skipped`) with the reason, and the benchmark goes on.

Both run offline, listening on 127.0.0.1 only, with the fake upstream as their only model
server: no telemetry, no update or version checks, no model or cost-map downloads, and an HTTP
proxy on a closed loopback port for any client that would still try to reach the internet.

* LiteLLM proxy: ``litellm --config <file> --num_workers 1``, one model (``bench``) routed to the
  fake upstream (``openai/bench?tokens=200&delay=0.02``), a master key, no database.
* Open WebUI: ``open-webui serve`` (one uvicorn worker), SQLite in a temporary data dir, Ollama
  off, the fake upstream as its one OpenAI connection (the model listed in the connection's
  ``model_ids``: the fake lists none), API keys on; an admin signs up, makes an API key, and the
  load goes to its OpenAI pass-through ``POST /openai/chat/completions`` with that key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

LITELLM_VERSION = "1.110.2"
OPEN_WEBUI_VERSION = "0.12.4"
TORCH_SPEC = "torch==2.13.0"  # a CPU build: Open WebUI's plain torch requirement pulls CUDA builds
NEVER_LITELLM = {"1.82.7", "1.82.8", "1.107.0"}  # compromised or withdrawn releases: never installed
FAKE_MODEL = "bench?tokens=200&delay=0.02"

# What every peer process gets: offline, no telemetry, loopback only.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "false", "POSTHOG_DISABLED": "1",
    # any HTTP client that honours the proxy variables fails at once instead of going out
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
}


class Skipped(Exception):
    """The peer cannot be installed or started here; the message says why."""


def _free_port() -> int:
    from bestchat.testing.processes import free_port

    return free_port()


def descendants(pid: int) -> list[int]:
    from stream_bench import descendants as tree

    return tree(pid)


class Peer:
    name = ""
    package = ""
    version = ""
    executable = ""

    def __init__(self, peers_dir: Path, procs: Any, fake_url: str, tmp: Path):
        self.dir = Path(peers_dir) / self.name
        self.logs = Path(peers_dir) / "logs"
        self.procs = procs
        self.fake_url = fake_url
        self.tmp = tmp
        self.port = 0
        self.base = ""
        self.path = "/v1/chat/completions"
        self.model = FAKE_MODEL
        self.headers: dict[str, str] = {}
        self.torch_spec = TORCH_SPEC

    @property
    def python(self) -> Path:
        return self.dir / "bin" / "python"

    def installed_version(self) -> str | None:
        if not self.python.exists():
            return None
        done = subprocess.run([str(self.python), "-c", f"import importlib.metadata as m; print(m.version({self.package!r}))"],
                              capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 and (self.dir / "bin" / self.executable).exists() else None

    def ensure_installed(self, install: bool) -> dict[str, Any]:
        """Installs the peer when it is missing (or another version); raises :class:`Skipped`."""
        found = self.installed_version()
        if found == self.version:
            return {"installed": "already", "venv": str(self.dir), "size_mb": _size_mb(self.dir)}
        if not install:
            raise Skipped(f"{self.package} {self.version} is not installed in {self.dir} (--no-install)")
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{self.name}-install.log"
        started = time.time()
        with open(log_path, "ab") as log:
            if not self.python.exists():
                # (the venv module makes it from the base interpreter of this one)
                self._run([sys.executable, "-m", "venv", str(self.dir)], log)
            self._run([str(self.python), "-m", "pip", "install", "--upgrade", "pip"], log, must=False)
            self.install(log)
        found = self.installed_version()
        if found != self.version:
            raise Skipped(f"installing {self.package} {self.version} into {self.dir} failed (found {found}); "
                          f"see {log_path}")
        return {"installed": "now", "install_s": round(time.time() - started), "venv": str(self.dir),
                "size_mb": _size_mb(self.dir)}

    def install(self, log: Any) -> None:
        raise NotImplementedError

    def pip(self, args: list[str], log: Any, must: bool = True) -> bool:
        return self._run([str(self.python), "-m", "pip", "install", *args], log, must=must)

    @staticmethod
    def _run(argv: list[str], log: Any, must: bool = True) -> bool:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode and must:
            raise Skipped(f"`{' '.join(argv[-3:])}` failed (exit {done.returncode}); see {log.name}")
        return done.returncode == 0

    def env(self) -> dict[str, str]:
        keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
        return {**{k: v for k, v in os.environ.items() if k in keep}, **OFFLINE_ENV,
                "PATH": f"{self.dir / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(self.dir)}

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.procs.stop(self.name)

    def groups(self) -> dict[str, list[int]]:
        process = self.procs.items.get(self.name)
        return {self.name: descendants(process.pid)} if process is not None else {}

    def _wait_up(self, url: str, timeout: float, ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.time() + timeout
        process = self.procs.items[self.name]
        while time.time() < deadline:
            if process.poll() is not None:
                raise Skipped(f"{self.name} exited at start (code {process.returncode}): "
                              f"{self.procs.log_text(self.name)[-1500:]}")
            try:
                if httpx.get(url, timeout=5).status_code in ok:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise Skipped(f"{self.name} did not answer {url} within {timeout:.0f} s: "
                      f"{self.procs.log_text(self.name)[-1500:]}")


def _size_mb(path: Path) -> int:
    done = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout else 0


class LitellmProxy(Peer):
    name, package, version, executable = "litellm", "litellm", LITELLM_VERSION, "litellm"
    master_key = "sk-bench-litellm-master"

    def install(self, log: Any) -> None:
        if self.version in NEVER_LITELLM:
            raise Skipped(f"litellm {self.version} is a compromised release; refusing to install it")
        if self.pip([f"litellm[proxy]=={self.version}"], log, must=False):
            return
        # The ``proxy`` extra pins companion packages (``litellm-proxy``, ...) that an index may not
        # carry: install litellm itself, then the extra's requirements that exist (the proxy server
        # is in the litellm wheel).
        self.pip([f"litellm=={self.version}"], log)
        code = ("import importlib.metadata as m, re\n"
                "for r in m.requires('litellm') or []:\n"
                "    if \"extra == 'proxy'\" in r:\n"
                "        r = r.replace(\" and extra == 'proxy'\", '').replace(\" ; extra == 'proxy'\", '')\n"
                "        name = re.split('[ ;<>=!~\\\\[]', r, 1)[0]\n"
                "        if name == 'litellm-proxy': continue\n"
                "        print(name if name.startswith('litellm') else r)\n")
        done = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        requirements = self.dir / "proxy-requirements.txt"
        requirements.write_text(done.stdout)
        self.pip(["-r", str(requirements)], log)

    def start(self) -> None:
        self.port = _free_port()
        config = self.tmp / "litellm.yaml"
        # JSON is YAML: the proxy reads this file as its config.
        config.write_text(json.dumps({
            "model_list": [{"model_name": "bench", "litellm_params": {
                "model": f"openai/{FAKE_MODEL}", "api_base": self.fake_url, "api_key": "sk-bench-000000000000"}}],
            "general_settings": {"master_key": self.master_key},
            "litellm_settings": {"telemetry": False, "drop_params": True},
        }, indent=1))
        env = {**self.env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION",
               "LITELLM_LOG": "ERROR", "DISABLE_ADMIN_UI": "True", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True"}
        self.procs.spawn(self.name, [str(self.dir / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
                                     "--port", str(self.port), "--num_workers", "1"], env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.model = "bench"
        self.headers = {"Authorization": f"Bearer {self.master_key}"}
        self._wait_up(f"{self.base}/health/liveliness", 180)


class OpenWebUI(Peer):
    name, package, version, executable = "open-webui", "open-webui", OPEN_WEBUI_VERSION, "open-webui"

    def install(self, log: Any) -> None:
        # torch first, as a CPU build: otherwise the resolver may pull several GB of CUDA wheels.
        torch = self.torch_spec.split()
        self.pip(torch, log)
        # torch pinned to what is installed now, so that the resolver keeps it
        done = subprocess.run([str(self.python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                              capture_output=True, text=True)
        self.pip([f"open-webui=={self.version}", f"torch=={done.stdout.strip()}"], log)

    def start(self) -> None:
        self.port = _free_port()
        data = self.tmp / "open-webui-data"
        data.mkdir(exist_ok=True)
        env = {
            **self.env(),
            "DATA_DIR": str(data), "WEBUI_SECRET_KEY": "bench-" + os.urandom(16).hex(), "PORT": str(self.port),
            "HOST": "127.0.0.1", "UVICORN_WORKERS": "1", "WEBUI_AUTH": "True", "ENABLE_SIGNUP": "True",
            "ENABLE_API_KEY": "True", "ENABLE_API_KEYS": "True",
            "ENABLE_OLLAMA_API": "False", "ENABLE_OPENAI_API": "True",
            "OPENAI_API_BASE_URL": self.fake_url, "OPENAI_API_BASE_URLS": self.fake_url,
            "OPENAI_API_KEY": "sk-bench-000000000000", "OPENAI_API_KEYS": "sk-bench-000000000000",
            "OFFLINE_MODE": "True", "ENABLE_VERSION_UPDATE_CHECK": "False", "ENABLE_COMMUNITY_SHARING": "False",
            "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "False", "RAG_RERANKING_MODEL_AUTO_UPDATE": "False",
            "WHISPER_MODEL_AUTO_UPDATE": "False", "BYPASS_EMBEDDING_AND_RETRIEVAL": "True",
            "RAG_EMBEDDING_ENGINE": "openai", "AUDIO_STT_ENGINE": "openai",
            "ENABLE_WEB_SEARCH": "False", "ENABLE_IMAGE_GENERATION": "False", "ENABLE_CODE_INTERPRETER": "False",
            "ENABLE_EVALUATION_ARENA_MODELS": "False", "ENABLE_TITLE_GENERATION": "False",
            "ENABLE_FOLLOW_UP_GENERATION": "False", "ENABLE_TAGS_GENERATION": "False",
            "ENABLE_AUTOCOMPLETE_GENERATION": "False", "ENABLE_BASE_MODELS_CACHE": "True",
            "GLOBAL_LOG_LEVEL": "WARNING", "ENV": "prod",
        }
        self.procs.spawn(self.name, [str(self.dir / "bin" / "open-webui"), "serve", "--host", "127.0.0.1",
                                     "--port", str(self.port)], env)
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_up(f"{self.base}/health", 300)
        self._configure()

    def _configure(self) -> None:
        """The first signup is the admin: its API key drives the load; the connection lists the
        fake's model by name (the fake answers ``/v1/models`` with a 404)."""
        with httpx.Client(base_url=self.base, timeout=60) as http:
            r = http.post("/api/v1/auths/signup", json={"name": "bench", "email": "bench@example.com",
                                                        "password": "bench horse battery staple"})
            if r.status_code != 200:
                raise Skipped(f"open-webui signup: {r.status_code} {r.text[:300]}")
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            r = http.post("/openai/config/update", headers=auth, json={
                "ENABLE_OPENAI_API": True, "OPENAI_API_BASE_URLS": [self.fake_url],
                "OPENAI_API_KEYS": ["sk-bench-000000000000"],
                "OPENAI_API_CONFIGS": {"0": {"enable": True, "model_ids": [FAKE_MODEL]}}})
            if r.status_code != 200:
                raise Skipped(f"open-webui connection config: {r.status_code} {r.text[:300]}")
            r = http.post("/api/v1/auths/api_key", headers=auth)
            if r.status_code != 200:
                raise Skipped(f"open-webui API key: {r.status_code} {r.text[:300]}")
            self.headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            r = http.get("/api/models", headers=self.headers)
            if r.status_code != 200 or FAKE_MODEL not in r.text:
                raise Skipped(f"open-webui does not list the fake's model: {r.status_code} {r.text[:300]}")
        self.path = "/openai/chat/completions"
        self.model = FAKE_MODEL


PEERS = {"litellm": LitellmProxy, "open-webui": OpenWebUI}
