"""BestChat's built-in tools: ``calculator``, ``datetime_now``, ``url_fetch`` and ``python``.

- ``calculator`` (low risk) evaluates arithmetic with its own tokenizer and Pratt parser; user
  text never reaches ``eval``, ``exec`` or ``compile``. Its work is bounded: the expression's
  length, the nesting depth, integer exponents and the digits of any integer result.
- ``datetime_now`` (low risk) tells the current date and time in an IANA time zone.
- ``url_fetch`` (medium risk, needs the network) GETs an http(s) URL through the server's
  outbound-address policy (:mod:`bestchat.security.outbound`) with no admin allowance: the
  policy resolves the host, refuses loopback, private, link-local, CGNAT, multicast, IPv6
  addresses embedding those, and cloud metadata addresses, and connects to the checked address
  only. Redirects are never followed by the HTTP client: each hop is checked again from the
  start. The body is read up to ``max_bytes``, the whole fetch (every hop) ends at ``timeout``.
- ``python`` (high risk) runs a snippet in ``python -I`` as a child process: inside the tool
  sandbox the child inherits its isolation and limits; it has its own shorter timeout and
  capped output.

``url_fetch`` uses the standard library's ``http.client`` rather than httpx: the connection's
``connect()`` is ours, so the socket comes from :meth:`Policy.create_connection` (the checked,
pinned address) and TLS wraps it with a default verifying context whose ``server_hostname`` is
the URL's host name, so the certificate is still checked against the name. Owning the socket
also lets the fetch enforce one deadline over the whole exchange (a slow drip of headers or
body bytes cannot extend it), and ``http.client`` reads no proxy or ``.netrc`` settings from the
environment, either of which would bypass the pinned address.
"""

from __future__ import annotations

import codecs
import dataclasses
import http.client
import inspect
import math
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any, Callable, Iterable
from urllib.parse import quote, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bestchat.plugin_api import OutboundPolicy as Policy
from bestchat.plugin_api import OutboundRefused, Tool, hookimpl, tool_context
from bestchat.plugin_api import OutboundRules as Rules


# ---- calculator ---------------------------------------------------------------------------

EXPRESSION_MAX_CHARS = 500
NESTING_MAX_DEPTH = 100
EXPONENT_MAX = 10_000
RESULT_MAX_DIGITS = 1000
_RESULT_MAX_BITS = math.ceil(RESULT_MAX_DIGITS * math.log2(10))


class CalculatorError(ValueError):
    """The expression cannot be evaluated; the message says why and is safe to show."""


_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\*\*|//|[-+*/%^(),])
    )""", re.VERBOSE)

# Binding powers: a higher number binds tighter. ``**`` (and its alias ``^``) is right
# associative and binds tighter than a unary sign on its left: ``-2**2`` is -4, ``2**-1`` 0.5.
_INFIX_POWER = {"+": 10, "-": 10, "*": 20, "/": 20, "//": 20, "%": 20, "**": 40, "^": 40}
_UNARY_POWER = 30

_CONSTANTS = {"pi": math.pi, "e": math.e}


def _round(x: Any, digits: Any = None) -> Any:
    if digits is None:
        return round(x)
    if not isinstance(digits, int) or abs(digits) > 100:
        raise CalculatorError("round(x, n): n must be a whole number between -100 and 100")
    return round(x, digits)


def _log(x: Any, base: Any = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, least arguments, most arguments or None for any number)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "sqrt": (math.sqrt, 1, 1), "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1), "log": (_log, 1, 2), "log10": (math.log10, 1, 1),
    "exp": (math.exp, 1, 1), "abs": (abs, 1, 1), "round": (_round, 1, 2),
    "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1), "min": (min, 1, None),
    "max": (max, 1, None),
}


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN_RE.match(expression, position)
        if not match:
            character = expression[position:].lstrip()[0]
            raise CalculatorError(f"unexpected character {character!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _bounded(value: Any) -> Any:
    """``value`` if it is a finite real number of bounded size, else CalculatorError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalculatorError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > _RESULT_MAX_BITS:
        raise CalculatorError(f"the result has more than {RESULT_MAX_DIGITS} digits")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is too large (not a finite number)")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int):
        if abs(exponent) > EXPONENT_MAX:
            raise CalculatorError(f"the exponent is larger than {EXPONENT_MAX}")
        if exponent > 0 and abs(base) > 1 and exponent * math.log10(abs(base)) > RESULT_MAX_DIGITS:
            raise CalculatorError(f"the result has more than {RESULT_MAX_DIGITS} digits")
        if exponent < 0:
            return float(base) ** exponent
    return base ** exponent


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "//": lambda a, b: a // b, "%": lambda a, b: a % b,
    "**": _power, "^": _power,
}


class _Parser:
    """A Pratt parser that evaluates as it parses (the grammar has no side effects)."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.position = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise CalculatorError("the expression ends too early")
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        token = self.peek()
        if token is None or token != ("op", text):
            found = "the end" if token is None else repr(token[1])
            raise CalculatorError(f"expected {text!r}, found {found}")
        self.position += 1

    def parse(self) -> Any:
        value = self.expression(0)
        token = self.peek()
        if token is not None:
            raise CalculatorError(f"unexpected {token[1]!r}")
        return value

    def expression(self, right_power: int) -> Any:
        self.depth += 1
        if self.depth > NESTING_MAX_DEPTH:
            raise CalculatorError(f"the expression nests deeper than {NESTING_MAX_DEPTH} levels")
        left = self.prefix()
        while True:
            token = self.peek()
            if token is None or token[0] != "op" or token[1] not in _INFIX_POWER:
                break
            power = _INFIX_POWER[token[1]]
            if power <= right_power:
                break
            self.position += 1
            # Right associative operators parse their right side one power lower.
            right = self.expression(power - 1 if token[1] in ("**", "^") else power)
            left = _apply(_BINARY[token[1]], left, right)
        self.depth -= 1
        return left

    def prefix(self) -> Any:
        kind, text = self.take()
        if kind == "number":
            if "." in text or "e" in text.lower():
                return _bounded(float(text))
            return _bounded(int(text))
        if kind == "op" and text in ("+", "-"):
            operand = self.expression(_UNARY_POWER)
            return -operand if text == "-" else +operand
        if kind == "op" and text == "(":
            value = self.expression(0)
            self.expect(")")
            return value
        if kind == "name":
            return self.name(text)
        raise CalculatorError(f"unexpected {text!r}")

    def name(self, name: str) -> Any:
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name not in _FUNCTIONS:
            raise CalculatorError(f"unknown name {name!r}")
        function, least, most = _FUNCTIONS[name]
        self.expect("(")
        arguments = []
        if self.peek() != ("op", ")"):
            arguments.append(self.expression(0))
            while self.peek() == ("op", ","):
                self.position += 1
                arguments.append(self.expression(0))
        self.expect(")")
        if len(arguments) < least or (most is not None and len(arguments) > most):
            wanted = f"{least}" if least == most else f"{least} to {most}" if most else f"at least {least}"
            raise CalculatorError(f"{name}() takes {wanted} argument(s), got {len(arguments)}")
        return _apply(function, *arguments, name=name)


def _apply(function: Callable[..., Any], *arguments: Any, name: str | None = None) -> Any:
    try:
        return _bounded(function(*arguments))
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("a number is too large") from None
    except (ValueError, TypeError):
        where = f"{name}()" if name else "the operation"
        raise CalculatorError(f"{where} is not defined for these values") from None


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic ``expression``; CalculatorError (a ValueError) says why not."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("the expression is empty")
    if len(expression) > EXPRESSION_MAX_CHARS:
        raise CalculatorError(f"the expression is longer than {EXPRESSION_MAX_CHARS} characters")
    return _Parser(_tokenize(expression)).parse()


def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly as a calculator would."""
    return {"expression": expression, "result": evaluate(expression)}


# ---- date and time ------------------------------------------------------------------------


def datetime_now(timezone: str = "UTC") -> dict[str, str]:
    """The current date and time in an IANA time zone (e.g. Europe/Paris; default UTC)."""
    try:
        if not isinstance(timezone, str) or not 0 < len(timezone) <= 64:
            raise ValueError
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {str(timezone)[:64]!r}: use an IANA name such as "
                         "'UTC', 'Europe/Paris' or 'America/New_York'") from None
    now = datetime.now(zone)
    offset = now.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
        "utc_offset": f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}",
    }


# ---- URL fetch ----------------------------------------------------------------------------

URL_FETCH_DEFAULTS = {"max_bytes": 512 * 1024, "timeout": 10.0, "max_redirects": 5}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "BestChat-url_fetch/0.1"
_READ_SIZE = 64 * 1024
_TEXT_SUBTYPES = re.compile(r"^(json|xml|javascript|ecmascript|x-www-form-urlencoded|.*\+json|.*\+xml)$")


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error()
        return left

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def error(self) -> RuntimeError:
        return RuntimeError(f"the fetch took longer than {self.seconds:g} s and was stopped")


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection whose socket comes from the outbound policy (a checked address)."""

    def __init__(self, host: str, port: int, *, policy: Policy, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.policy = policy
        self.raw: socket.socket | None = None  # a duplicate of the TCP socket, to abort it
        self.aborted = False

    def open_tcp(self) -> socket.socket:
        sock = self.policy.create_connection((self.host, self.port), self.timeout)
        self.raw = sock.dup()
        if self.aborted:
            self.abort()
        return sock

    def connect(self) -> None:
        self.sock = self.open_tcp()

    def abort(self) -> None:
        """Cut the connection from another thread: any read in progress ends at once."""
        self.aborted = True
        if self.raw is not None:
            try:
                self.raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self) -> None:
        """Close the connection and the duplicate (``close`` alone keeps the duplicate, since
        ``http.client`` closes the connection while the response is still being read)."""
        self.close()
        if self.raw is not None:
            self.raw.close()
            self.raw = None


# The TLS context of https fetches: the system's trusted roots, certificate and host name
# verified (tests put their own root in it).
tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context


class _PinnedHTTPS(_PinnedHTTP):
    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        context = tls_context()
        self.sock = context.wrap_socket(self.open_tcp(), server_hostname=self.host)


def _host_matches(host: str, entries: Iterable[str]) -> bool:
    """Whether ``host`` is listed: exactly, or under a ``*.example.com`` entry."""
    for entry in entries:
        entry = str(entry).strip().strip("[]").rstrip(".").lower()
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _short(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def _target(url: str, allow_hosts: Iterable[str], deny_hosts: Iterable[str]):
    """Check ``url``'s form and the host lists; its (scheme, host, port, request target)."""
    if not isinstance(url, str) or not url or len(url) > 8192 or re.search(r"[\x00-\x20\x7f]", url):
        raise ValueError(f"not a valid URL: {_short(str(url))!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
        scheme = parts.scheme.lower()
        hostname = parts.hostname
    except ValueError:
        raise ValueError(f"not a valid URL: {_short(url)!r}") from None
    if scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs can be fetched, not {scheme or 'this'!r}: {_short(url)}")
    if not hostname:
        raise ValueError(f"the URL has no host: {_short(url)}")
    try:
        host = hostname.rstrip(".").encode("idna").decode("ascii").lower() if not hostname.isascii() \
            else hostname.rstrip(".").lower()
    except UnicodeError:
        raise ValueError(f"not a valid host name: {hostname[:100]!r}") from None
    if _host_matches(host, deny_hosts):
        raise ValueError(f"refused: the server does not fetch from {host}")
    allow_hosts = list(allow_hosts)
    if allow_hosts and not _host_matches(host, allow_hosts):
        raise ValueError(f"refused: {host} is not among the hosts the server fetches from")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    target = path + (f"?{query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), target


def _get(scheme: str, host: str, port: int, target: str, *, policy: Policy, deadline: _Deadline,
         max_bytes: int) -> tuple[int, str, str | None, bytes, bool, str | None]:
    """One GET: (status, content type, charset, body, truncated, redirect location)."""
    connection_class = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = connection_class(host, port, policy=policy, timeout=deadline.remaining())
    watchdog = threading.Timer(deadline.remaining(), connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("GET", target, headers={
            "User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity",
            "Connection": "close",
        })
        sock = connection.sock  # the response reads from it after the connection lets it go
        sock.settimeout(deadline.remaining())
        response = connection.getresponse()
        status = response.status
        location = response.getheader("Location")
        content_type = response.getheader("Content-Type", "") or ""
        if status in REDIRECT_STATUSES and location:
            return status, content_type, None, b"", False, location
        charset = response.headers.get_content_charset()
        if not _is_text(content_type):
            return status, content_type, charset, b"", False, None
        body = bytearray()
        truncated = False
        while True:
            sock.settimeout(deadline.remaining())
            chunk = response.read1(min(_READ_SIZE, max_bytes + 1 - len(body)))
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                del body[max_bytes:]
                truncated = True
                break
        if connection.aborted:  # the watchdog cut the body short: the deadline passed
            raise deadline.error()
        return status, content_type, charset, bytes(body), truncated, None
    except OutboundRefused as exc:
        raise ValueError(f"refused: {exc.host}: {exc.reason.removeprefix('refused: ')}") from None
    except RuntimeError:
        raise
    except Exception as exc:
        if connection.aborted or deadline.expired() or isinstance(exc, TimeoutError):
            raise deadline.error() from None
        raise RuntimeError(_network_error(host, port, exc)) from None
    finally:
        watchdog.cancel()
        connection.release()


def _network_error(host: str, port: int, exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {host} is not valid: {exc.verify_message or 'verification failed'}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed with {host}:{port}"
    if isinstance(exc, http.client.HTTPException):
        return f"{host}:{port} did not send a valid HTTP response"
    if isinstance(exc, ConnectionRefusedError):
        return f"{host}:{port} refused the connection"
    if isinstance(exc, OSError):
        return f"could not reach {host}:{port} ({exc.strerror or type(exc).__name__})"
    return f"the fetch from {host}:{port} failed ({type(exc).__name__})"


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind:
        return True
    main, _, sub = kind.partition("/")
    return main == "text" or (main == "application" and bool(_TEXT_SUBTYPES.match(sub)))


def _decode(body: bytes, charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    return codecs.getincrementaldecoder(codec)(errors="replace").decode(body, final=False)


def fetch(url: str, *, policy: Policy, max_bytes: int = URL_FETCH_DEFAULTS["max_bytes"],
          timeout: float = URL_FETCH_DEFAULTS["timeout"],
          max_redirects: int = URL_FETCH_DEFAULTS["max_redirects"],
          allow_hosts: Iterable[str] = (), deny_hosts: Iterable[str] = ()) -> dict[str, Any]:
    """GET ``url`` through ``policy``, following at most ``max_redirects`` redirects (each
    checked like the first URL), reading at most ``max_bytes`` of the body, all within
    ``timeout`` seconds. ValueError for a refused URL, RuntimeError when the fetch fails;
    both messages are short and safe to show."""
    allow_hosts, deny_hosts = list(allow_hosts), list(deny_hosts)
    deadline = _Deadline(float(timeout))
    current = url
    for _hop in range(max(0, int(max_redirects)) + 1):
        scheme, host, port, target = _target(current, allow_hosts, deny_hosts)
        status, content_type, charset, body, truncated, location = _get(
            scheme, host, port, target, policy=policy, deadline=deadline, max_bytes=int(max_bytes))
        if location is not None:
            current = urljoin(current, location)
            continue
        if _is_text(content_type):
            text = _decode(body, charset)
        else:
            text = f"(the content is {content_type.split(';', 1)[0].strip()}, not text: not shown)"
        return {"url": url, "final_url": current, "status": status, "content_type": content_type,
                "text": text, "truncated": truncated}
    raise RuntimeError(f"too many redirects (more than {max_redirects}), last to {_short(current)}")


def _context() -> dict[str, Any]:
    """What the server gave the running tool (empty when nothing was given)."""
    return tool_context() or {}


def url_fetch(url: str) -> dict[str, Any]:
    """Fetch a web page or document (http or https) and return its text, truncated when long."""
    context = _context()
    outbound = context.get("outbound")
    settings = context.get("url_fetch")
    if not isinstance(outbound, dict) or not isinstance(settings, dict):
        # Without the server's settings the deny lists are unknown: fetch nothing.
        raise RuntimeError("url_fetch runs only through BestChat's tool runner (no settings given)")
    # OUTBOUND_ADMIN_ALLOW is deliberately not used: a tool's fetch is an ordinary user's.
    policy = Policy(Rules.parse(allow=outbound.get("allow") or (), deny=outbound.get("deny") or ()))
    return fetch(url, policy=policy,
                 max_bytes=settings.get("max_bytes", URL_FETCH_DEFAULTS["max_bytes"]),
                 timeout=settings.get("timeout", URL_FETCH_DEFAULTS["timeout"]),
                 max_redirects=settings.get("max_redirects", URL_FETCH_DEFAULTS["max_redirects"]),
                 allow_hosts=settings.get("allow_hosts") or (),
                 deny_hosts=settings.get("deny_hosts") or ())


# ---- python -------------------------------------------------------------------------------

PYTHON_TOOL_TIMEOUT = 30.0
# The child stops a little before the tool's own timeout, so its output still comes back.
PYTHON_CHILD_TIMEOUT = PYTHON_TOOL_TIMEOUT - 3
PYTHON_OUTPUT_MAX_BYTES = 64 * 1024
PYTHON_CODE_MAX_CHARS = 100_000


def python(code: str) -> dict[str, Any]:
    """Run a Python 3 program and return what it printed (stdout, stderr) and its exit code.
    It runs isolated, without network access; print the results you need."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError("the code is empty")
    if len(code) > PYTHON_CODE_MAX_CHARS or "\x00" in code:
        raise ValueError(f"the code must be text of at most {PYTHON_CODE_MAX_CHARS} characters")
    limit = PYTHON_OUTPUT_MAX_BYTES
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={"LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        start_new_session=True, close_fds=True,
    )
    outputs = {child.stdout: bytearray(), child.stderr: bytearray()}
    truncated = False
    timed_out = False
    end = time.monotonic() + PYTHON_CHILD_TIMEOUT
    with selectors.DefaultSelector() as selector:
        for stream in outputs:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            left = end - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _events in selector.select(left):
                data = os.read(key.fd, _READ_SIZE)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                kept = outputs[key.fileobj]
                room = limit - len(kept)
                if len(data) > room:
                    truncated = True  # the rest is read and dropped so the child does not block
                kept += data[:max(room, 0)]
    if timed_out:
        _kill_group(child)
    try:
        exit_code = child.wait(timeout=max(end - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        _kill_group(child)
        timed_out = True
        child.wait()
    for stream in outputs:
        stream.close()
    stdout, stderr = (bytes(b).decode("utf-8", errors="replace") for b in outputs.values())
    if timed_out:
        stderr += f"\n[stopped: the program ran longer than {PYTHON_CHILD_TIMEOUT:g} s]"
        exit_code = None
    return {"stdout": stdout, "stderr": stderr, "exit_code": exit_code, "truncated": truncated}


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()


# ---- registration -------------------------------------------------------------------------


def _tool(function: Callable[..., Any], *, risk: str, parameters: dict[str, Any],
          timeout: float | None = None, network: bool = False) -> Tool:
    """A Tool with a hand-written schema; ``timeout`` and ``network`` are set where the Tool of
    this BestChat has those fields."""
    tool = Tool(name=function.__name__, description=inspect.getdoc(function) or "",
                parameters=parameters, function=function, risk=risk)
    fields = {f.name for f in dataclasses.fields(Tool)}
    extra = {k: v for k, v in (("timeout", timeout), ("network", network)) if k in fields}
    return dataclasses.replace(tool, **extra) if extra else tool


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def builtin_tools() -> list[Tool]:
    """The four tools, with their schemas and risks."""
    return [
        _tool(calculator, risk="low", parameters=_schema({"expression": {
            "type": "string", "maxLength": EXPRESSION_MAX_CHARS,
            "description": "Arithmetic such as '2 * (3 + 4) ** 2 / sqrt(16)': + - * / // % ** "
                           "(or ^), parentheses, pi, e, sqrt, sin, cos, tan, log(x[, base]), "
                           "log10, exp, abs, round(x[, n]), floor, ceil, min, max."}}, ["expression"])),
        _tool(datetime_now, risk="low", parameters=_schema({"timezone": {
            "type": "string", "default": "UTC",
            "description": "An IANA time zone name, e.g. 'Europe/Paris', 'America/New_York'."}}, [])),
        _tool(url_fetch, risk="medium", network=True, parameters=_schema({"url": {
            "type": "string", "description": "An absolute http:// or https:// URL."}}, ["url"])),
        _tool(python, risk="high", timeout=PYTHON_TOOL_TIMEOUT, parameters=_schema({"code": {
            "type": "string", "maxLength": PYTHON_CODE_MAX_CHARS,
            "description": "A complete Python 3 program; only what it prints is returned."}}, ["code"])),
    ]


@hookimpl
def register_tools(register: Callable[[Tool], None]) -> None:
    """Register calculator, datetime_now, url_fetch and python."""
    for tool in builtin_tools():
        register(tool)
