"""The URL rule for user-supplied URLs (DESIGN invariant 7)."""

from __future__ import annotations

import socket

import pytest

from app.integrations.urlguard import (
    UrlNotAllowed,
    check_url_allowed,
    check_url_syntax,
    is_address_allowed,
)

DISALLOWED_IPS = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.10", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
]

ALLOWED_IPS = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]


def _url_for(ip: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"https://{host}/"


@pytest.mark.parametrize(("ip", "kind"), DISALLOWED_IPS)
def test_non_public_literal_addresses_are_rejected(ip: str, kind: str) -> None:
    assert not is_address_allowed(ip)
    with pytest.raises(UrlNotAllowed) as info:
        check_url_allowed(_url_for(ip), allow_private=False)
    assert str(info.value) == f"host resolves to a {kind} address ({ip})"


@pytest.mark.parametrize("ip", ALLOWED_IPS)
def test_public_literal_addresses_are_allowed(ip: str) -> None:
    assert is_address_allowed(ip)
    check_url_allowed(_url_for(ip), allow_private=False)


@pytest.mark.parametrize(("ip", "_kind"), DISALLOWED_IPS)
def test_allow_private_lets_any_address_through(ip: str, _kind: str) -> None:
    check_url_allowed(_url_for(ip), allow_private=True)


def test_garbage_is_not_an_allowed_address() -> None:
    assert not is_address_allowed("not-an-ip")
    assert not is_address_allowed("fe80::1%eth0")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://chatwoot.example.com",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "chatwoot.com",
        "gopher://1.1.1.1:70/",
        "",
    ],
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match=r"^scheme must be http or https$"):
        check_url_allowed(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@1.1.1.1/", "https://user@1.1.1.1", "http://:pw@1.1.1.1", "http://@1.1.1.1"],
)
def test_credentials_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="credentials"):
        check_url_allowed(url, allow_private=True)


@pytest.mark.parametrize("url", ["http://", "https:///api", "https://:443/"])
def test_a_host_is_required(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match=r"^URL must have a host$"):
        check_url_allowed(url, allow_private=True)


def test_invalid_port() -> None:
    with pytest.raises(UrlNotAllowed, match="port"):
        check_url_allowed("https://1.1.1.1:99999/", allow_private=False)


def test_uppercase_scheme_and_explicit_port_are_fine() -> None:
    check_url_allowed("HTTPS://1.1.1.1:8443/app/", allow_private=False)


def test_localhost_resolves_to_loopback() -> None:
    with pytest.raises(UrlNotAllowed, match=r"^host resolves to a loopback address \("):
        check_url_allowed("http://localhost:3000", allow_private=False)
    check_url_allowed("http://localhost:3000", allow_private=True)


def test_every_resolved_address_must_be_public() -> None:
    def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("chatwoot.example.com", 443)
        return ["8.8.8.8", "10.1.2.3"]

    with pytest.raises(UrlNotAllowed) as info:
        check_url_allowed("https://chatwoot.example.com", allow_private=False, resolver=resolver)
    assert str(info.value) == "host resolves to a private address (10.1.2.3)"


def test_public_dns_answer_is_allowed() -> None:
    check_url_allowed(
        "https://chatwoot.example.com:8443/",
        allow_private=False,
        resolver=lambda host, port: ["2606:4700:4700::1111", "1.1.1.1"],
    )


def test_unresolvable_host() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UrlNotAllowed, match=r"^host does not resolve$"):
        check_url_allowed("https://nowhere.invalid", allow_private=False, resolver=resolver)
    with pytest.raises(UrlNotAllowed, match=r"^host does not resolve$"):
        check_url_allowed("https://empty.invalid", allow_private=False, resolver=lambda h, p: [])


def test_unresolvable_host_is_not_checked_when_private_allowed() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("no resolution expected")

    check_url_allowed("https://chatwoot.internal", allow_private=True, resolver=resolver)


def test_reason_is_a_value_error() -> None:
    assert issubclass(UrlNotAllowed, ValueError)


# ---- the rule without DNS (``check_url_syntax``), used when a body is validated ---------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme must be http or https"),
        ("ftp://chatwoot.example.com", "scheme must be http or https"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("data:text/html,hi", "scheme must be http or https"),
        ("http://[::1", "URL is not valid"),
        ("http://chat woot.example.com", "URL must not contain spaces or control characters"),
        ("http://chat\x00woot.example.com", "URL must not contain spaces or control characters"),
        ("https://chat\nwoot.example.com", "URL must not contain spaces or control characters"),
        ("https://chatwoot.example.com:99999", "port is not valid"),
        ("https://a:b@chatwoot.example.com", "credentials in the URL are not allowed"),
        ("https://", "URL must have a host"),
    ],
)
def test_syntax_refusals_name_their_reason(url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as refused:
        check_url_syntax(url)

    assert str(refused.value) == reason
    with pytest.raises(UrlNotAllowed):
        check_url_allowed(url, allow_private=True)


def test_syntax_gives_host_and_default_port() -> None:
    assert check_url_syntax("https://Chatwoot.Example.com/app") == ("chatwoot.example.com", 443)
    assert check_url_syntax("http://chatwoot.example.com:3000") == ("chatwoot.example.com", 3000)


def test_host_the_resolver_cannot_encode_does_not_resolve() -> None:
    with pytest.raises(UrlNotAllowed, match="host does not resolve"):
        check_url_allowed("https://" + "a" * 64 + ".example.com", allow_private=False)


def test_a_resolver_value_error_does_not_resolve() -> None:
    def refuses(host: str, port: int) -> list[str]:
        raise ValueError("embedded null character")

    with pytest.raises(UrlNotAllowed, match="host does not resolve"):
        check_url_allowed("https://chatwoot.example.com", allow_private=False, resolver=refuses)
