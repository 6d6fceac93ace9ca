"""The egress policy of `http_request`: which destinations a worker may connect to (SSRF protection)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx
from sqlalchemy.engine import make_url

from workflow_engine.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
DEFAULT_PORTS = {"http": 80, "https": 443}
# How long the addresses of an infrastructure host are trusted before they are resolved again.
_RESOLVE_TTL = 30.0


class EgressDenied(Exception):
    """A destination the policy refuses: bad scheme, or a host resolving to a non-public address."""

    def __init__(self, message: str, *, host: str = "", address: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class HostResolutionError(Exception):
    """The host name could not be resolved (DNS failure; usually worth retrying)."""


def non_public_reason(address: IPAddress) -> str | None:
    """Return why `address` is not a public internet address, or None when it is public.

    Args:
        address: The resolved address; IPv4-mapped IPv6 addresses are judged as their IPv4 address.

    Returns:
        A short human-readable category such as "a loopback address", or None.
    """
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        (address in METADATA_ADDRESSES, "the cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    )
    return next((reason for matched, reason in checks if matched), None)


@dataclass(frozen=True)
class Endpoint:
    """A `host:port` of our own infrastructure (port None: every port), named for error messages."""

    host: str
    port: int | None
    what: str


def parse_endpoint(entry: str, what: str) -> Endpoint:
    """Read `host:port`, `[v6]:port` or `host:*` (every port).

    Raises:
        ValueError: The entry has no port, or the port is not a number.
    """
    host, sep, port = entry.strip().rpartition(":")
    if not sep or not host or not (port == "*" or port.isdigit()):
        raise ValueError(f"EGRESS_DENY entry {entry.strip()!r} must be host:port or host:*")
    return Endpoint(host.strip("[]").lower(), None if port == "*" else int(port), what)


def _is_local(address: IPAddress) -> bool:
    """Whether `address` belongs to this machine: loopback, unspecified, or one we can bind to."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


class Infrastructure:
    """The endpoints of this deployment (Temporal, its UI and HTTP API, the API, the database) tasks never reach.

    A destination is ours when its port matches and its address is one the endpoint's host resolves to; an
    endpoint on a loopback or unspecified host (`localhost`, `0.0.0.0`) covers every address of this machine, so
    the machine's LAN address does not get around it.
    """

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        """Remember the endpoints; their hosts are resolved when first needed, then every 30 s."""
        self.endpoints = list(endpoints)
        self._resolved: dict[str, tuple[float, list[IPAddress]]] = {}

    async def _addresses(self, host: str) -> list[IPAddress]:
        cached = self._resolved.get(host)
        if cached is not None and time.monotonic() - cached[0] < _RESOLVE_TTL:
            return cached[1]
        try:
            addresses = [ip_address(host)]
        except ValueError:
            try:
                addresses = await resolve(host)
            except HostResolutionError:
                addresses = []  # not resolvable from here, so not reachable through this name either
        self._resolved[host] = (time.monotonic(), addresses)
        return addresses

    async def match(self, address: IPAddress, port: int) -> Endpoint | None:
        """Return the endpoint `address:port` is, or None when it is none of ours."""
        for endpoint in self.endpoints:
            if endpoint.port is not None and endpoint.port != port:
                continue
            addresses = await self._addresses(endpoint.host)
            if address in addresses:
                return endpoint
            if any(a.is_loopback or a.is_unspecified for a in addresses) and _is_local(address):
                return endpoint
        return None


class EgressPolicy:
    """Refuses non-public destinations unless the host name or the address is allowlisted.

    Allowlist entries are host names (`api.internal`, or `*.corp.example` for every subdomain),
    single addresses (`10.0.0.5`) or CIDRs (`10.0.0.0/8`). The cloud metadata addresses are only
    reachable when an entry names them exactly (a single address or a /32 or /128 network) or names
    the host: a broad CIDR such as `169.254.0.0/16` or `0.0.0.0/0` does not unlock them.
    """

    def __init__(self, allowlist: Iterable[str], infrastructure: Infrastructure | None = None) -> None:
        """Parse the allowlist entries (see the class docstring); blank entries are ignored.

        `infrastructure` is refused before the allowlist is consulted: no entry unlocks it.

        Raises:
            ValueError: An entry with a `/` is not a valid CIDR.
        """
        self.infrastructure = infrastructure or Infrastructure(())
        self.hosts: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[IPNetwork] = []
        for raw in allowlist:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                self.networks.append(ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                if "/" in entry:
                    raise ValueError(f"HTTP_ALLOWLIST entry {raw.strip()!r} is not a valid CIDR") from None
            if entry.startswith("*."):
                self.suffixes.append(entry[1:])
            else:
                self.hosts.add(entry)

    def host_allowed(self, host: str) -> bool:
        """Return whether the host name itself is allowlisted."""
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith(suffix) for suffix in self.suffixes)

    def address_allowed(self, address: IPAddress) -> bool:
        """Return whether an allowlist network contains `address` (exactly, for a metadata address)."""
        candidates = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for candidate in candidates:
            exact_only = candidate in METADATA_ADDRESSES
            for network in self.networks:
                if network.version != candidate.version or candidate not in network:
                    continue
                if not exact_only or network.num_addresses == 1:
                    return True
        return False

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise `EgressDenied` when `address` (resolved from `host`) may not be reached."""
        reason = non_public_reason(address)
        if reason is None or self.host_allowed(host) or self.address_allowed(address):
            return
        hint = "the exact address" if address in METADATA_ADDRESSES else "the host or address"
        raise EgressDenied(
            f"refusing to connect to {host!r}: it resolves to {address}, {reason}; "
            f"add {hint} to HTTP_ALLOWLIST to allow it",
            host=host,
            address=str(address),
        )

    async def check_url(self, url: httpx.URL | str) -> list[IPAddress]:
        """Resolve the URL's host and check every address; return them, in resolver order.

        Args:
            url: The destination; parsed with httpx so the check sees exactly what the request uses.

        Returns:
            Every resolved address (deduplicated); all of them passed the policy.

        Raises:
            EgressDenied: The scheme is not http(s), the URL has no host, or any address is refused.
            HostResolutionError: DNS resolution failed.
        """
        parsed = httpx.URL(url) if isinstance(url, str) else url
        if parsed.scheme not in ALLOWED_SCHEMES:
            raise EgressDenied(f"scheme {parsed.scheme!r} is not allowed; use http or https", host=parsed.host)
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise EgressDenied(f"URL {parsed.copy_with(query=None)} has no host")
        addresses = await resolve(host)
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        for address in addresses:
            ours = await self.infrastructure.match(address, port)
            if ours is not None:
                raise EgressDenied(
                    f"refusing to connect to {host!r} port {port}: {address} is {ours.what} of this deployment, "
                    "which tasks may never reach (HTTP_ALLOWLIST does not change this)",
                    host=host,
                    address=str(address),
                )
            self.check_address(host, address)
        return addresses


async def resolve(host: str) -> list[IPAddress]:
    """Return every address `host` resolves to (TCP), deduplicated, in resolver order.

    Raises:
        HostResolutionError: The resolver failed or returned nothing usable.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostResolutionError(f"DNS lookup of {host!r} failed: {exc}") from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostResolutionError(f"cannot resolve {host!r}: no IPv4 or IPv6 address")
    return addresses


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit():
        return host.strip("[]") or "127.0.0.1", int(port)
    return address.strip("[]"), default_port


def infrastructure_of(settings: Settings) -> Infrastructure:
    """Return every endpoint of this deployment the settings name, plus EGRESS_DENY.

    Raises:
        ValueError: An EGRESS_DENY entry is not `host:port` or `host:*`.
    """
    temporal_host, temporal_port = _host_port(settings.temporal_address, 7233)
    endpoints = [
        Endpoint(temporal_host, temporal_port, "the Temporal frontend"),
        Endpoint(temporal_host, settings.temporal_ui_port, "the Temporal UI"),
        Endpoint(temporal_host, settings.temporal_http_port, "the Temporal HTTP API"),
        Endpoint("localhost", settings.temporal_ui_port, "the Temporal UI"),
        Endpoint(settings.api_host, settings.api_port, "the workflow-engine API"),
    ]
    endpoints += [Endpoint(settings.worker_metrics_host, port, "a worker's metrics endpoint")
                  for port in (settings.worker_metrics_port, settings.worker_sdk_metrics_port) if port]  # fmt: skip
    database = make_url(settings.database_url)
    if database.host:
        default = {"postgresql": 5432, "mysql": 3306}.get(database.get_backend_name(), 5432)
        endpoints.append(Endpoint(database.host, database.port or default, "the database"))
    endpoints += [parse_endpoint(entry, "listed in EGRESS_DENY") for entry in settings.egress_deny.split(",")
                  if entry.strip()]  # fmt: skip
    return Infrastructure(endpoints)
