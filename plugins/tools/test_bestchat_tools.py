"""The built-in tools: calculator, datetime_now, url_fetch (its SSRF defences above all) and
python. Every connection goes to a server the test opens on 127.0.0.1, through a resolver and a
connector the test controls: no packet ever leaves the loopback range."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import bestchat_tools
from bestchat.plugin_api import OutboundPolicy, OutboundRules, Tool, get_tools
from bestchat.testing import plugin_registered
from bestchat_tools import CalculatorError, calculator, datetime_now, evaluate, fetch, python

# ---- registration -------------------------------------------------------------------------

RISKS = {"calculator": "low", "datetime_now": "low", "url_fetch": "medium", "python": "high"}


def test_the_hook_registers_exactly_the_four_tools():
    registered: list[Tool] = []
    bestchat_tools.register_tools(register=registered.append)
    assert {tool.name: tool.risk for tool in registered} == RISKS
    for tool in registered:
        assert isinstance(tool, Tool)
        assert tool.description and tool.parameters["type"] == "object"
        # The runner imports the function by module and qualified name in another process.
        assert getattr(sys.modules[tool.function.__module__], tool.function.__qualname__) is tool.function
        fields = {f.name for f in dataclasses.fields(Tool)}
        if "network" in fields:
            assert tool.network is (tool.name == "url_fetch")
        if "timeout" in fields and tool.name == "python":
            assert tool.timeout == bestchat_tools.PYTHON_TOOL_TIMEOUT


def test_registered_through_the_plugin_manager(app):
    with plugin_registered(bestchat_tools, "bestchat-tools") as record:  # installed or not
        assert record["status"] == "loaded"
        tools = get_tools()
    assert {name: tools[name].risk for name in RISKS} == RISKS
    assert tools["calculator"].plugin == "bestchat-tools"
    assert tools["calculator"].function(expression="6*7")["result"] == 42


# ---- calculator ---------------------------------------------------------------------------

@pytest.mark.parametrize("expression, result", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("2 * 3 % 4", 2),
    ("7 / 2", 3.5), ("7 // 2", 3), ("-7 // 2", -4), ("7 % 3", 1),
    ("-3", -3), ("+3", 3), ("--3", 3), ("2 * -3", -6), ("-2 ** 2", -4), ("(-2) ** 2", 4),
    ("2 ** -1", 0.5), ("2 ** 3 ** 2", 512), ("2 ^ 10", 1024), ("10 ** 999 // 10 ** 998", 10),
    ("1e3", 1000.0), ("2.5E-1", 0.25), (".5 + 1.", 1.5), ("12345678901234567890 * 10", 123456789012345678900),
    ("sqrt(16)", 4.0), ("abs(-2.5)", 2.5), ("round(2.567, 2)", 2.57), ("round(2.5)", 2),
    ("floor(-1.5)", -2), ("ceil(1.2)", 2), ("min(3, 1, 2)", 1), ("max(3, 1, 2) + 1", 4),
    ("log(8, 2)", 3.0), ("log10(1000)", 3.0), ("log(e)", 1.0), ("exp(0)", 1.0),
    ("cos(0) + sin(0) + tan(0)", 1.0), ("round(pi, 4)", 3.1416),
])
def test_calculator_evaluates(expression, result):
    value = evaluate(expression)
    assert value == pytest.approx(result) and type(value) is type(result)


def test_calculator_tool_returns_the_expression_and_result():
    assert calculator(expression="6*7") == {"expression": "6*7", "result": 42}


@pytest.mark.parametrize("expression, message", [
    ("1 / 0", "division by zero"), ("1 // 0", "division by zero"), ("5 % 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("x + 1", "unknown name 'x'"), ("__import__", "unknown name '__import__'"),
    ("__import__('os')", "unexpected character"), ("open('/etc/passwd')", "unexpected character"),
    ("().__class__", "unexpected"), ("a.b", "unexpected character"), ("1; 2", "unexpected character"),
    ("9 ** 99999", "exponent is larger than 10000"), ("2 ** 4000", "more than 1000 digits"),
    ("10 ** 600 * 10 ** 600", "more than 1000 digits"), ("10.0 ** 400", "too large"),
    ("1e400", "too large"), ("exp(1000)", "too large"), ("sin(10 ** 400)", "too large"),
    ("1" * 501, "longer than 500 characters"), ("(" * 150 + "1" + ")" * 150, "nests deeper"),
    ("", "empty"), ("1 +", "ends too early"), ("(1", "expected ')'"), ("1 2", "unexpected '2'"),
    ("sqrt(-1)", "not defined"), ("(-8) ** (1/3)", "not a real number"),
    ("min()", "at least 1"), ("sqrt(1, 2)", "takes 1 argument"), ("round(1, 1000)", "between -100 and 100"),
    ("pi(1)", "unexpected '('"), ("sqrt 4", "expected '('"),
])
def test_calculator_refuses_with_a_clear_error(expression, message):
    with pytest.raises(CalculatorError) as error:
        evaluate(expression)
    assert isinstance(error.value, ValueError)
    assert message in str(error.value)


def test_calculator_never_uses_eval(monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile called")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    assert evaluate("2 * (3 + 4)") == 14


# ---- datetime_now -------------------------------------------------------------------------

def test_datetime_now_in_a_zone():
    result = datetime_now(timezone="Asia/Kolkata")
    assert result["timezone"] == "Asia/Kolkata"
    assert result["utc_offset"] == "+05:30" and result["iso"].endswith("+05:30")
    assert result["weekday"] in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def test_datetime_now_defaults_to_utc():
    result = datetime_now()
    assert result["timezone"] == "UTC" and result["utc_offset"] == "+00:00"


@pytest.mark.parametrize("zone", ["Nowhere/Atlantis", "../../etc/passwd", "", "x" * 100])
def test_datetime_now_unknown_zone(zone):
    with pytest.raises(ValueError, match="unknown time zone"):
        datetime_now(timezone=zone)


# ---- url_fetch ----------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, body: bytes, content_type: str = "text/plain; charset=utf-8", status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/ok":
            self.send_body("héllo from the test server".encode())
        elif parts.path == "/latin1":
            self.send_body("café".encode("latin-1"), "text/html; charset=iso-8859-1")
        elif parts.path == "/big":
            self.send_body(b"x" * 100_000)
        elif parts.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"400\r\n" + b"y" * 0x400 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif parts.path == "/binary":
            self.send_body(b"\x89PNG" + b"\x00" * 100, "image/png")
        elif parts.path == "/missing":
            self.send_body(b"not here", status=404)
        elif parts.path == "/redirect":
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/drip":  # headers, then one byte every 50 ms, forever
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.drip(b"z")
        elif parts.path == "/slow-headers":  # the status line never ends
            self.wfile.write(b"HTTP/1.1 200 OK")
            self.drip(b" ")
        else:
            self.send_body(b"?", status=400)

    def drip(self, byte: bytes) -> None:
        try:
            for _ in range(200):
                self.wfile.write(byte)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that stops reading (size cap, timeout) breaks the pipe: expected


@pytest.fixture(scope="module")
def server():
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


class Network:
    """A resolver (a dict) and a connector that records every attempt and connects only to the
    test server's port on 127.0.0.1; anything else fails without a packet."""

    def __init__(self, port: int):
        self.port = port
        self.hosts = {
            "public.test": ["127.0.0.1"], "www.example.test": ["127.0.0.1"],
            "other.test": ["127.0.0.1"], "loopback.test": ["127.0.0.1"],
            "mixed.test": ["93.184.216.34", "10.0.0.1"],
        }
        self.attempts: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.hosts:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test host")
        return self.hosts[host]

    def connect(self, address, timeout=None, source_address=None):
        self.attempts.append(address)
        if address == ("127.0.0.1", self.port):
            return socket.create_connection(address, timeout)
        raise ConnectionRefusedError(f"the test connector refuses {address}")

    def policy(self, *allow: str, deny: tuple[str, ...] = ()) -> OutboundPolicy:
        """Allowed: the host names in ``allow`` (public.test by default), nothing else."""
        return OutboundPolicy(OutboundRules.parse(allow=allow or ("public.test",), deny=deny),
                              resolver=self.resolve, connector=self.connect)


@pytest.fixture
def net(server):
    return Network(server)


def get(net, url, policy=None, **kwargs):
    kwargs.setdefault("timeout", 5)
    return fetch(url, policy=policy or net.policy(), **kwargs)


def test_fetches_through_the_allowed_host(net):
    url = f"http://public.test:{net.port}/ok"
    result = get(net, url)
    assert result == {"url": url, "final_url": url, "status": 200,
                      "content_type": "text/plain; charset=utf-8",
                      "text": "héllo from the test server", "truncated": False}
    assert net.attempts == [("127.0.0.1", net.port)]


def test_decodes_the_declared_charset_and_keeps_error_statuses(net):
    assert get(net, f"http://public.test:{net.port}/latin1")["text"] == "café"
    missing = get(net, f"http://public.test:{net.port}/missing")
    assert (missing["status"], missing["text"]) == (404, "not here")


def test_binary_content_is_not_returned_as_text(net):
    result = get(net, f"http://public.test:{net.port}/binary")
    assert result["content_type"] == "image/png" and "not text" in result["text"]
    assert "PNG" not in result["text"]


def test_follows_an_allowed_redirect_and_reports_the_final_url(net):
    result = get(net, f"http://public.test:{net.port}/redirect?to=/ok")
    assert result["final_url"] == f"http://public.test:{net.port}/ok"
    assert result["text"] == "héllo from the test server"
    assert net.attempts == [("127.0.0.1", net.port)] * 2


REFUSED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "embedding a loopback"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://10.0.0.1/", "private"),
    ("http://loopback.test/", "loopback"),
    ("http://mixed.test/", "private"),
    ("http://2130706433/", "loopback"),
    ("http://public.test@127.0.0.1/", "loopback"),
    ("http://metadata.google.internal/", "metadata"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
]


@pytest.mark.parametrize("url, reason", REFUSED)
def test_refuses_non_public_destinations_before_connecting(net, url, reason):
    with pytest.raises(ValueError, match="refused") as error:
        get(net, url)
    assert reason in str(error.value)
    assert net.attempts == []


@pytest.mark.parametrize("url, reason", REFUSED)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_refuses_a_redirect_into_a_non_public_destination(net, url, reason, status):
    port = net.port
    with pytest.raises(ValueError, match="refused") as error:
        get(net, f"http://public.test:{port}/redirect?status={status}&to={quote(url, safe='')}")
    assert reason in str(error.value)
    # Only the first hop, to the allowed test server, was ever connected.
    assert net.attempts == [("127.0.0.1", port)]


def test_refuses_a_redirect_to_the_test_servers_own_address(net):
    """The server's address is reachable by the allowed name only, never by its number."""
    with pytest.raises(ValueError, match="loopback"):
        get(net, f"http://public.test:{net.port}/redirect?to=http://127.0.0.1:{net.port}/ok")
    assert net.attempts == [("127.0.0.1", net.port)]


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://public.test/", "gopher://public.test:70/_x", "data:text/plain,hi",
    "javascript:alert(1)", "public.test/ok", "//public.test/ok", "http:///nohost", "http://public.test:99999/",
    "http://public.test/a b",
])
def test_refuses_other_schemes_and_malformed_urls(net, url):
    with pytest.raises(ValueError):
        get(net, url)
    assert net.attempts == []


@pytest.mark.parametrize("scheme", ["file:///etc/passwd", "ftp://public.test/", "gopher://public.test/"])
def test_refuses_a_redirect_to_another_scheme(net, scheme):
    with pytest.raises(ValueError, match="only http and https"):
        get(net, f"http://public.test:{net.port}/redirect?to={scheme}")
    assert net.attempts == [("127.0.0.1", net.port)]


def test_size_cap_truncates(net):
    result = get(net, f"http://public.test:{net.port}/big", max_bytes=1000)
    assert result["text"] == "x" * 1000 and result["truncated"] is True
    chunked = get(net, f"http://public.test:{net.port}/chunked", max_bytes=5000)
    assert chunked["text"] == "y" * 5000 and chunked["truncated"] is True
    whole = get(net, f"http://public.test:{net.port}/big", max_bytes=100_000)
    assert len(whole["text"]) == 100_000 and whole["truncated"] is False


@pytest.mark.parametrize("path", ["/drip", "/slow-headers"])
def test_the_timeout_covers_the_whole_fetch(net, path):
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="longer than 0.5 s"):
        get(net, f"http://public.test:{net.port}{path}", timeout=0.5)
    assert time.monotonic() - started < 2


def test_too_many_redirects(net):
    with pytest.raises(RuntimeError, match="too many redirects"):
        get(net, f"http://public.test:{net.port}/loop", max_redirects=3)
    assert len(net.attempts) == 4
    net.attempts.clear()
    with pytest.raises(RuntimeError, match="too many redirects"):
        get(net, f"http://public.test:{net.port}/redirect?to=/ok", max_redirects=0)
    assert len(net.attempts) == 1


def test_allow_list_of_hosts(net):
    policy = net.policy("public.test", "*.example.test")
    allowed = get(net, f"http://www.example.test:{net.port}/ok", policy, allow_hosts=["*.example.test"])
    assert allowed["status"] == 200
    net.attempts.clear()
    with pytest.raises(ValueError, match="not among the hosts"):
        get(net, f"http://public.test:{net.port}/ok", policy, allow_hosts=["*.example.test"])
    with pytest.raises(ValueError, match="not among the hosts"):
        get(net, f"http://www.example.test:{net.port}/redirect?to=http://public.test:{net.port}/ok",
            policy, allow_hosts=["www.example.test"])
    assert net.attempts == [("127.0.0.1", net.port)]


def test_the_allow_list_does_not_open_refused_addresses(net):
    with pytest.raises(ValueError, match="loopback"):
        get(net, "http://loopback.test/", allow_hosts=["loopback.test"])
    assert net.attempts == []


def test_deny_list_of_hosts(net):
    policy = net.policy("public.test", "other.test")
    with pytest.raises(ValueError, match="does not fetch from public.test"):
        get(net, f"http://PUBLIC.test.:{net.port}/ok", policy, deny_hosts=["public.test"])
    with pytest.raises(ValueError, match="does not fetch from other.test"):
        get(net, f"http://public.test:{net.port}/redirect?to=http://other.test:{net.port}/ok",
            policy, deny_hosts=["*.test.invalid", "other.test"])
    assert net.attempts == [("127.0.0.1", net.port)]


def test_outbound_deny_applies(net):
    with pytest.raises(ValueError, match="denied"):
        get(net, f"http://public.test:{net.port}/ok", net.policy("public.test", deny=("public.test",)))
    assert net.attempts == []


def test_tls_failure_is_a_clear_error(net):
    with pytest.raises(RuntimeError, match="TLS|HTTP") as error:
        get(net, f"https://public.test:{net.port}/ok")
    assert "Traceback" not in str(error.value)


def _certificates(directory):
    """A test root and a certificate for public.test it signed: (root path, cert, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, key, issuer, issuer_key, *, ca, names=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BestChat test root")])
    root = certificate(root_name, root_key, root_name, root_key, ca=True)
    leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public.test")]), key,
                       root_name, root_key, ca=False, names=["public.test"])
    paths = [directory / name for name in ("root.pem", "cert.pem", "key.pem")]
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_net(tmp_path):
    root, cert, key = _certificates(tmp_path)
    httpd = Server(("127.0.0.1", 0), Handler)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Network(httpd.server_address[1]), root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_connects_to_the_pinned_address_and_verifies_the_host_name(tls_net, monkeypatch):
    net, root = tls_net
    policy = net.policy("public.test", "other.test")
    # Not trusted by the system's roots: refused.
    with pytest.raises(RuntimeError, match="certificate of public.test is not valid"):
        get(net, f"https://public.test:{net.port}/ok", policy)
    monkeypatch.setattr(bestchat_tools, "tls_context", lambda: ssl.create_default_context(cafile=str(root)))
    result = get(net, f"https://public.test:{net.port}/ok", policy)
    assert (result["status"], result["text"]) == (200, "héllo from the test server")
    # Same address, another name: the certificate does not match it.
    with pytest.raises(RuntimeError, match="certificate of other.test is not valid"):
        get(net, f"https://other.test:{net.port}/ok", policy)
    assert set(net.attempts) == {("127.0.0.1", net.port)}


def test_connection_failure_is_a_clear_error(net):
    net.hosts["public.test"] = ["127.0.0.1"]
    with pytest.raises(RuntimeError, match="refused the connection"):
        get(net, "http://public.test:1/ok")
    with pytest.raises(ValueError, match="does not resolve"):
        get(net, "http://nowhere.test/ok", net.policy("nowhere.test"))


def context(port_allow=(), **url_fetch):
    settings = {"allow_hosts": [], "deny_hosts": [], "max_bytes": 1000, "timeout": 5, "max_redirects": 2}
    settings.update(url_fetch)
    return {"outbound": {"allow": list(port_allow), "deny": [], "admin_allow": ["127.0.0.0/8"]},
            "url_fetch": settings, "tool": "url_fetch"}


def test_the_tool_reads_its_settings_from_the_context(server, monkeypatch):
    url = f"http://127.0.0.1:{server}/big"
    monkeypatch.setattr(bestchat_tools, "_context", lambda: context(["127.0.0.1/32"]))
    result = bestchat_tools.url_fetch(url=url)
    assert result["status"] == 200 and len(result["text"]) == 1000 and result["truncated"]
    monkeypatch.setattr(bestchat_tools, "_context", lambda: context(["127.0.0.1/32"], deny_hosts=["127.0.0.1"]))
    with pytest.raises(ValueError, match="does not fetch"):
        bestchat_tools.url_fetch(url=url)


def test_the_tool_ignores_admin_allowances(server, monkeypatch):
    monkeypatch.setattr(bestchat_tools, "_context", lambda: context())
    with pytest.raises(ValueError, match="loopback"):
        bestchat_tools.url_fetch(url=f"http://127.0.0.1:{server}/ok")


def test_the_tool_fetches_nothing_without_settings(monkeypatch):
    monkeypatch.setattr(bestchat_tools, "_context", lambda: {})
    with pytest.raises(RuntimeError, match="no settings"):
        bestchat_tools.url_fetch(url="http://127.0.0.1/")


# ---- python -------------------------------------------------------------------------------

def test_python_prints_and_exits():
    assert python(code="print(6 * 7)") == {"stdout": "42\n", "stderr": "", "exit_code": 0, "truncated": False}
    failed = python(code="import sys\nprint('out')\nsys.exit(3)")
    assert (failed["stdout"], failed["exit_code"]) == ("out\n", 3)
    raised = python(code="1 / 0")
    assert raised["exit_code"] == 1 and "ZeroDivisionError" in raised["stderr"]


def test_python_runs_isolated():
    result = python(code="import os, sys; print(sys.flags.isolated, sorted(os.environ))")
    assert result["stdout"].split(" ", 1)[0] == "1"
    assert "PYTHONPATH" not in result["stdout"]


def test_python_timeout(monkeypatch):
    monkeypatch.setattr(bestchat_tools, "PYTHON_CHILD_TIMEOUT", 1)
    started = time.monotonic()
    result = python(code="print('started', flush=True)\nwhile True: pass")
    assert time.monotonic() - started < 5
    assert result["exit_code"] is None and result["stdout"] == "started\n"
    assert "ran longer than 1 s" in result["stderr"]


def test_python_output_is_capped():
    limit = bestchat_tools.PYTHON_OUTPUT_MAX_BYTES
    result = python(code="import sys\nsys.stdout.write('x' * 10_000_000)\nsys.stderr.write('e' * 200_000)")
    assert result["stdout"] == "x" * limit and result["stderr"] == "e" * limit
    assert result["truncated"] is True and result["exit_code"] == 0


@pytest.mark.parametrize("code", ["", "   ", "x" * (bestchat_tools.PYTHON_CODE_MAX_CHARS + 1)])
def test_python_refuses_empty_or_huge_code(code):
    with pytest.raises(ValueError):
        python(code=code)
