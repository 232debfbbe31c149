"""The rule for user-supplied URLs (Chatwoot base URL, gateway base URL).

A URL is allowed when it is http(s), names a host, carries no credentials and, unless private
networks are allowed, every address its host resolves to is a public (global unicast) address.
The same address rule is applied again when a connection is opened (see ``http.py``), because a
DNS answer can change between the check at ``set`` time and the connect.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = [
    "Resolver",
    "UrlNotAllowed",
    "check_url_allowed",
    "check_url_syntax",
    "is_address_allowed",
    "resolve_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""Resolves ``(host, port)`` to the IP address strings to connect to; raises ``OSError``."""

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\ud800-\udfff]")


class UrlNotAllowed(ValueError):
    """A URL (or the address its host resolves to) breaks the URL rule.

    ``str(exc)`` is a human reason such as ``scheme must be http or https``; the API layer puts it
    after ``chatwootBaseUrl is not allowed: ``.
    """


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in resolver order, deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _address_kind(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public address (``"loopback"``, ``"private"``...), or None if it is."""
    checks: list[tuple[bool, str]] = [
        (addr.is_unspecified, "unspecified"),
        (addr.is_loopback, "loopback"),
        (addr.is_link_local, "link-local"),
        (addr.is_multicast, "multicast"),
        (isinstance(addr, ipaddress.IPv4Address) and addr in _SHARED_ADDRESS_SPACE, "shared"),
        (addr.is_reserved, "reserved"),
        (addr.is_private, "private"),
        (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local, "site-local"),
        (not addr.is_global, "non-public"),
    ]
    for failed, kind in checks:
        if failed:
            return kind
    return None


def _classify(ip: str) -> str | None:
    """None when ``ip`` may be connected to, else the kind of address it is."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "invalid"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return "link-local"
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            return _address_kind(embedded)
    return _address_kind(addr)


def is_address_allowed(ip: str) -> bool:
    """True when ``ip`` is a global unicast address (IPv4-in-IPv6 forms judged by their IPv4)."""
    return _classify(ip) is None


def reject_disallowed(addresses: list[str]) -> None:
    """Raise :class:`UrlNotAllowed` naming the first address that is not allowed."""
    for ip in addresses:
        kind = _classify(ip)
        if kind is not None:
            raise UrlNotAllowed(f"host resolves to a {kind} address ({ip})")


def check_url_syntax(url: str) -> tuple[str, int]:
    """The URL rule without DNS: http(s), a host, no credentials, a valid port, no control
    characters or spaces. Returns ``(host, port)``; raises :class:`UrlNotAllowed`."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise UrlNotAllowed("URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlNotAllowed("scheme must be http or https")
    if _FORBIDDEN_CHARACTERS.search(url.strip()):
        raise UrlNotAllowed("URL must not contain spaces or control characters")
    if "@" in parts.netloc:
        raise UrlNotAllowed("credentials in the URL are not allowed")
    try:
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise UrlNotAllowed("port is not valid") from None
    if not host:
        raise UrlNotAllowed("URL must have a host")
    return host, port


def check_url_allowed(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> None:
    """Raise :class:`UrlNotAllowed` unless ``url`` obeys the URL rule.

    ``resolver`` defaults to :func:`resolve_host` (``socket.getaddrinfo``); it is a parameter so
    tests can give a hostname any DNS answer.
    """
    host, port = check_url_syntax(url)
    if allow_private:
        return
    try:
        addresses = (resolver or resolve_host)(host, port)
    except (OSError, ValueError):  # ValueError: UnicodeError (IDNA), embedded NUL
        raise UrlNotAllowed("host does not resolve") from None
    if not addresses:
        raise UrlNotAllowed("host does not resolve")
    reject_disallowed(addresses)
