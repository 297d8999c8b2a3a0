"""The SSRF guard: refuse to connect to private, loopback, link-local, multicast and reserved
addresses unless ``crawl.allow_private_addresses`` is on.

The check runs inside the connection itself (a network backend under httpx): the host name is
resolved once, every address it resolves to is checked, and the socket is opened to one of
those very addresses. So a redirect to an internal host is refused like a first request, and a
DNS answer that changes between a check and the connect (DNS rebinding) cannot slip through.
Proxies from the environment are not used (``trust_env=False``): through a proxy the address
connected would be the proxy's, not the target's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

ALLOWED_SCHEMES = ("http", "https")
ALLOW_HINT = "set crawl.allow_private_addresses = true to crawl an intranet"

# host, port -> the IP addresses it resolves to (as strings)
Resolver = Callable[[str, int], Awaitable[list[str]]]


class ResolutionFailed(Exception):
    """The host name does not resolve (not retried: DNS answers do not change in seconds)."""


class AddressRefused(Exception):
    """A connection the guard refused; ``reason`` says which address and why."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


def address_problem(address: str) -> str | None:
    """Why ``address`` must not be connected to, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, what in checks:
        if getattr(ip, attribute):
            return f"{ip} is {what}"
    if not ip.is_global:  # e.g. 100.64.0.0/10, shared by carriers' NATs
        return f"{ip} is not a globally routable address"
    return None


def scheme_problem(url: httpx.URL | str) -> str | None:
    scheme = httpx.URL(str(url)).scheme
    if scheme not in ALLOWED_SCHEMES:
        return f"the {scheme or 'missing'} scheme is not fetched (only http and https)"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo, run by asyncio in a worker thread so it never blocks the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolutionFailed(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def checked_addresses(host: str, addresses: Iterable[str], allow_private: bool) -> list[str]:
    """``addresses`` if all may be connected to; raise AddressRefused otherwise.

    One bad address refuses the host: a name that mixes public and internal addresses
    is how rebinding attacks are set up.
    """
    addresses = list(addresses)
    if not addresses:
        raise AddressRefused(host, "resolves to no address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                via = "" if host == address else f"{host} resolves to it; "
                raise AddressRefused(host, f"refused address: {problem} ({via}{ALLOW_HINT})")
    return addresses


def trusted_hosts(urls: Iterable[str]) -> frozenset:
    """(host, port) of URLs the user configured: they may be on a private network or loopback."""
    hosts = set()
    for url in urls:
        parsed = httpx.URL(url)
        if parsed.host:
            hosts.add((parsed.host.lower(), parsed.port or (443 if parsed.scheme == "https" else 80)))
    return frozenset(hosts)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard accepts."""

    def __init__(self, allow_private: bool, resolver: Resolver = system_resolver, trusted: frozenset = frozenset()):
        self.allow_private = allow_private
        self.resolver = resolver
        self.trusted = trusted  # (host, port) the user configured (discovery endpoints): private allowed
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]
        except ValueError:
            addresses = await self.resolver(host, port)
        last_error: Exception | None = None
        allow_private = self.allow_private or (host.lower(), port) in self.trusted
        for address in checked_addresses(host, addresses, allow_private):
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # try the host's next address
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AddressRefused(path, "unix sockets are never connected to")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a :class:`GuardedBackend` (no proxies)."""

    def __init__(
        self,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        limits: httpx.Limits | None = None,
        trusted: frozenset = frozenset(),
    ):
        limits = limits or httpx.Limits()
        super().__init__(trust_env=False, limits=limits)
        # httpx offers no hook for the network backend; the pool it built is replaced by the
        # same pool over the guarded backend (keeping httpx's request/response mapping).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private, resolver, trusted),
        )
