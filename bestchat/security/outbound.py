"""The outbound-address policy: which addresses the server may connect to on a user's behalf.

Every connection the server opens to an address a user chose (a provider's ``base_url``, later
a URL-fetch tool) goes through a :class:`Policy`. It resolves the host name itself, checks every
resolved address (not the spelling: ``0x7f000001``, ``2130706433`` and ``[::ffff:127.0.0.1]``
are all loopback), and connects to the checked address only, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot redirect it. TLS still verifies the
certificate against the host name, and the ``Host`` header stays the name: only the address
lookup is pinned.

Refused unless allowed: loopback, private (RFC 1918, ``fc00::/7``), link-local, CGNAT
(``100.64.0.0/10``), multicast, unspecified, reserved and every other non-global range,
IPv6 addresses that embed one of those IPv4 addresses (mapped, compatible, 6to4, NAT64,
Teredo), and cloud metadata endpoints (by address and by name). The operator widens or narrows
it with settings (``config/defaults.py``):

- ``OUTBOUND_ALLOW``: CIDRs and host names anyone's connections may reach (a shared Ollama on
  the LAN: ``["192.168.1.20/32"]``);
- ``OUTBOUND_ADMIN_ALLOW``: the same for *trusted* connections only, which are global configs
  and configs owned by an admin (default: loopback, for an Ollama on the server itself);
- ``OUTBOUND_DENY``: CIDRs and host names nobody's connections may reach, public or not.

Metadata addresses are reached only when an allow entry names them exactly (a single-address
CIDR or the host name), never through a wider range.

Third-party plugins get a policy from their provider settings (``self.settings.outbound``);
:func:`policy_for` builds one from the app's settings, :func:`strict_policy` one without any
allowance.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union
from urllib.parse import urlsplit

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
# (host, port) -> the addresses it resolves to, as text.
Resolver = Callable[[str, int], list[str]]
# ((address, port), timeout, source_address) -> a connected socket, as socket.create_connection.
Connector = Callable[..., socket.socket]

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",     # AWS ECS task credentials
    "169.254.170.23",    # AWS EKS pod identity
    "fd00:ec2::254",     # AWS IMDS over IPv6
    "fd00:ec2::23",      # AWS EKS pod identity over IPv6
    "100.100.100.200",   # Alibaba Cloud
))
METADATA_HOSTS = frozenset((
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class OutboundRefused(Exception):
    """The policy refuses a destination. ``reason`` is short and safe to show to its user."""

    code = "outbound_refused"

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class Unresolvable(OutboundRefused):
    """The host name has no address (nothing to check, nothing to connect to)."""


@dataclass(frozen=True)
class Rules:
    """Parsed allow and deny lists (networks and lower-case host names)."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    admin_networks: tuple[IPNetwork, ...] = ()
    admin_hosts: frozenset[str] = frozenset()
    deny_networks: tuple[IPNetwork, ...] = ()
    deny_hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, allow: Iterable[str] = (), deny: Iterable[str] = (),
              admin_allow: Iterable[str] = ()) -> "Rules":
        """Rules from setting values: lists of CIDRs, addresses and host names (a host may
        start with ``*.`` for every subdomain). Raises ValueError on an unusable entry."""
        allow_networks, allow_hosts = _split_entries(allow)
        admin_networks, admin_hosts = _split_entries(admin_allow)
        deny_networks, deny_hosts = _split_entries(deny)
        return cls(allow_networks, allow_hosts, admin_networks, admin_hosts, deny_networks, deny_hosts)


def _split_entries(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    if isinstance(entries, str):
        entries = [e for e in re.split(r"[,\s]+", entries) if e]
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in entries:
        entry = str(entry).strip()
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9_.-]+", entry):
                raise ValueError(f"not a CIDR, address or host name: {entry!r}") from None
            hosts.add(_normal_host(entry))
    return tuple(networks), frozenset(hosts)


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _host_listed(host: str, hosts: frozenset[str]) -> bool:
    if host in hosts:
        return True
    return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in hosts)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.version == 4:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in _COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not an ordinary public address (a short phrase), or None if it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    inner = _embedded_ipv4(ip)
    if inner is not None:
        reason = classify(inner)
        return f"an IPv6 address embedding {reason}" if reason else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (CGNAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def numeric_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any spelling the system resolver accepts
    (``127.0.0.1``, ``::1``, ``0x7f000001``, ``2130706433``, ``0177.1``); else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (``getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass
class Policy:
    """The checks for one kind of caller. ``trusted`` (a bool, or a function asked only when
    an address needs it) adds ``OUTBOUND_ADMIN_ALLOW``; ``resolver`` and ``connector`` default to
    the system's and can be replaced (tests, a custom DNS)."""

    rules: Rules = field(default_factory=Rules)
    trusted: bool | Callable[[], bool] = False
    resolver: Resolver | None = None
    connector: Connector | None = None

    @classmethod
    def allowing(cls, *entries: str, **kwargs: Any) -> "Policy":
        """A policy that also allows ``entries`` (CIDRs, hosts) for everyone: for tests and
        tools that build providers by hand (``Policy.allowing("127.0.0.0/8")``)."""
        return cls(Rules.parse(allow=entries), **kwargs)

    # ---- checks ---------------------------------------------------------------------------

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why a connection to ``ip`` (resolved from ``host``) is refused, or None."""
        rules = self.rules
        host = _normal_host(host)
        checked = [ip] + ([_embedded_ipv4(ip)] if _embedded_ipv4(ip) else [])
        if _host_listed(host, rules.deny_hosts) or any(a in n for a in checked for n in rules.deny_networks):
            return "denied by the server's outbound policy"
        if host in METADATA_HOSTS:
            return "a cloud metadata address"
        reason = classify(ip)
        if reason is None:
            return None
        metadata = any(a in METADATA_ADDRESSES for a in checked)
        if self._listed(host, checked, rules.allow_hosts, rules.allow_networks, exact=metadata):
            return None
        if (rules.admin_hosts or rules.admin_networks) and self.is_trusted() and \
                self._listed(host, checked, rules.admin_hosts, rules.admin_networks, exact=metadata):
            return None
        return reason

    @staticmethod
    def _listed(host: str, addresses: list[IPAddress], hosts: frozenset[str],
                networks: tuple[IPNetwork, ...], *, exact: bool) -> bool:
        if _host_listed(host, hosts):
            return True
        return any(a in n and (not exact or n.num_addresses == 1) for a in addresses for n in networks
                   if a.version == n.version)

    def is_trusted(self) -> bool:
        """Whether the caller is trusted (a global or admin-owned connection)."""
        if callable(self.trusted):
            self.trusted = bool(self.trusted())  # asked once
        return bool(self.trusted)

    def fixed_address(self, host: str) -> bool:
        """Whether ``host``'s address cannot be changed by a DNS answer: a literal address, or
        a name the operator lists (so its DNS is theirs)."""
        host = _normal_host(host)
        if numeric_address(host) is not None:
            return True
        rules = self.rules
        return _host_listed(host, rules.allow_hosts) or \
            (_host_listed(host, rules.admin_hosts) and self.is_trusted())

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and return its addresses; OutboundRefused if it does not resolve
        or if any address is refused (one bad answer refuses the name)."""
        host = _normal_host(host)
        if not host:
            raise OutboundRefused(host, "no host")
        if _host_listed(host, self.rules.deny_hosts):  # refused by name, without asking DNS
            raise OutboundRefused(host, "refused: denied by the server's outbound policy")
        numeric = numeric_address(host)
        if numeric is not None:
            found = [numeric]
        else:
            if host in METADATA_HOSTS:  # refused by name, without asking DNS
                raise OutboundRefused(host, "a cloud metadata address")
            try:
                found = [ipaddress.ip_address(a.split("%", 1)[0])
                         for a in (self.resolver or system_resolver)(host, port)]
            except (OSError, UnicodeError, ValueError):
                raise Unresolvable(host, "the host name does not resolve") from None
            if not found:
                raise Unresolvable(host, "the host name does not resolve")
        for ip in found:
            reason = self.refusal(host, ip)
            if reason:
                raise OutboundRefused(host, f"refused: {reason}")
        return found

    def check_url(self, url: str) -> list[IPAddress]:
        """Check an http(s) URL's destination; its addresses, or OutboundRefused."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OutboundRefused(url, "not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(url, "not an http(s) URL")
        return self.addresses(parts.hostname, port)

    # ---- connecting -----------------------------------------------------------------------

    def create_connection(self, address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,
                          source_address: tuple[str, int] | None = None) -> socket.socket:
        """``socket.create_connection`` to a checked address of ``address``'s host (the first
        that accepts). Raises OutboundRefused before any packet when the host is refused."""
        host, port = address
        connect = self.connector or socket.create_connection
        error: OSError | None = None
        for ip in self.addresses(host, port):
            try:
                return connect((str(ip), port), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error or OSError(f"could not connect to {host}")

    def permits_peer(self, host: str, peer: str) -> bool:
        """Whether an open connection to ``peer`` (made for ``host``) may carry this caller's
        request (a pooled connection opened for another, more trusted caller may not)."""
        try:
            return self.refusal(host, ipaddress.ip_address(peer.split("%", 1)[0])) is None
        except ValueError:
            return False

    def httpx_transport(self, **kwargs: Any):
        """An ``httpx.HTTPTransport`` whose connections go through :meth:`create_connection`
        (without a proxy: a proxy resolves names itself, so nothing could be pinned)."""
        import httpcore  # noqa: PLC0415 - only callers that use httpx pay for importing it
        import httpx  # noqa: PLC0415

        policy = self

        class PinnedBackend(httpcore.SyncBackend):
            def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
                source = None if local_address is None else (local_address, 0)
                try:
                    sock = policy.create_connection((host, port), timeout, source)
                except TimeoutError as exc:
                    raise httpcore.ConnectTimeout(str(exc)) from exc
                except OutboundRefused:
                    raise
                except OSError as exc:
                    raise httpcore.ConnectError(str(exc)) from exc
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return httpcore._backends.sync.SyncStream(sock)

        transport = httpx.HTTPTransport(**kwargs)
        transport._pool._network_backend = PinnedBackend()
        return transport


def strict_policy() -> Policy:
    """A policy with no allowance: public addresses only (the default for a provider built
    without one)."""
    return Policy()


def rules_from_config(config: Any) -> Rules:
    """The :class:`Rules` of an app's settings (parsed once per distinct value)."""
    key = tuple(_as_tuple(config.get(name)) for name in ("OUTBOUND_ALLOW", "OUTBOUND_DENY", "OUTBOUND_ADMIN_ALLOW"))
    cached = _rules_cache.get(key)
    if cached is None:
        cached = _rules_cache[key] = Rules.parse(*key)
    return cached


_rules_cache: dict[tuple, Rules] = {}


def _as_tuple(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(e for e in re.split(r"[,\s]+", value) if e)
    return tuple(str(v) for v in value)


def policy_for(trusted: bool | Callable[[], bool] = False, app: Any = None) -> Policy:
    """The app's policy for a caller (``trusted``: a global or admin-owned connection). Reads
    ``OUTBOUND_*`` from ``app`` (default: the current app), and ``OUTBOUND_RESOLVER`` when set."""
    if app is None:
        from flask import current_app  # noqa: PLC0415

        app = current_app
    config = app.config
    return Policy(rules_from_config(config), trusted=trusted, resolver=config.get("OUTBOUND_RESOLVER"),
                  connector=config.get("OUTBOUND_CONNECTOR"))
