"""Refuse URLs that would make metwatch fetch internal services (SSRF).

Links in feeds, listing pages and sitemaps are written by other people. Before
metwatch fetches one, it must be http(s) and its host must resolve only to
public addresses: not loopback, private, link-local (cloud metadata at
169.254.169.254), multicast, reserved, unspecified or otherwise non-global.
A host with several addresses is refused if any of them is not public, since
the client may connect to any of them.

``ensure_public`` resolves without blocking the event loop; ``check_public_url``
is the same check for synchronous callers (it blocks while resolving).

What this does not do: it checks the URL it is given, before the request. It
does not see redirects, and the HTTP client resolves the host again when it
connects (DNS rebinding), so on its own it narrows the attack rather than
closing it: the shared client should also run ``ensure_public`` on every hop
(an httpx request event hook sees each redirect before it is sent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from metwatch.errors import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Checked in this order so the message names the most telling property
#: (0.0.0.0 is also "private"; ::1 is also "reserved").
_KINDS = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
)
_HINT = "set METWATCH_ALLOW_PRIVATE_ADDRESSES=true only in tests"


def check_public_url(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` unless it is http(s) on a public host; resolves, blocking.

    Raises:
        FetchError: the scheme is not http/https, the host is missing or cannot
            be resolved, or it resolves to a non-public address.
    """
    host, port = _host_and_port(url)
    if allow_private:
        return
    _check_addresses(url, host, _literal(host) or _resolve(url, host, port))


async def ensure_public(url: str, *, allow_private: bool) -> None:
    """``check_public_url`` for async callers: resolves on the event loop's resolver.

    Raises:
        FetchError: as ``check_public_url``.
    """
    host, port = _host_and_port(url)
    if allow_private:
        return
    addresses = _literal(host)
    if not addresses:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise _unresolvable(url, host, e) from e
        addresses = _addresses(infos)
    _check_addresses(url, host, addresses)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from (e.g. "a loopback address"), or None."""
    # ::ffff:127.0.0.1 reaches 127.0.0.1; judge the IPv4 address it wraps.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for prop, kind in _KINDS:
        if getattr(address, prop):
            return f"{kind} address"
    # Catches the ranges Python knows are not global but names no property for
    # (e.g. 100.64.0.0/10, carrier-grade NAT); multicast was refused above.
    if not address.is_global:
        return "a non-public address"
    return None


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchError("refused: no scheme (only http and https URLs are fetched)", url=url)
    if scheme not in _SCHEMES:
        raise FetchError(f"refused: only http and https URLs are fetched, not {scheme!r}", url=url)
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as e:
        raise FetchError(f"refused: invalid port in the URL ({e})", url=url) from e
    if not parts.hostname:
        raise FetchError("refused: the URL has no host", url=url)
    return parts.hostname, port


def _literal(host: str) -> list[IPAddress]:
    """The host as an IP address when it is written as one (no lookup needed)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return []


def _resolve(url: str, host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise _unresolvable(url, host, e) from e
    return _addresses(infos)


def _addresses(infos: list[tuple[Any, ...]]) -> list[IPAddress]:
    # sockaddr[0] is the address string; IPv6 may carry a "%scope", which ip_address accepts.
    return [ipaddress.ip_address(str(info[4][0])) for info in infos]


def _check_addresses(url: str, host: str, addresses: list[IPAddress]) -> None:
    for address in addresses:
        reason = refusal(address)
        if reason is None:
            continue
        where = f"{host} is" if _literal(host) else f"{host} resolves to {address},"
        raise FetchError(f"refused: {where} {reason} ({_HINT})", url=url)


def _unresolvable(url: str, host: str, error: Exception) -> FetchError:
    return FetchError(f"cannot resolve host {host!r}: {error}", url=url)
