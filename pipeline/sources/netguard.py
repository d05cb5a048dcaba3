"""Which addresses a fetch may connect to.

A feed URL is user input, and a worker sits inside the network: without these checks a feed
could point at a metadata service (169.254.169.254), a database on 10.x or the worker's own
loopback. Checks run on the resolved addresses, and the caller connects to the address that
passed, so a second DNS answer (rebinding) cannot swap in another one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

from pipeline.errors import ConfigError
from pipeline.sources.errors import FetchError, FetchRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list]

# NAT64 gateways forward these to the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """DOCPIPE_FETCH_ALLOW_NETWORKS: comma-separated CIDRs (a bare address is a /32 or /128)."""
    networks = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"DOCPIPE_FETCH_ALLOW_NETWORKS: {part!r} is not a CIDR network such as 10.0.0.0/8 or fd00::/8"
            ) from None
    return tuple(networks)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress | str, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why connecting to `ip` is refused, or None when it may be used."""
    ip = ipaddress.ip_address(ip)
    inner = _embedded_ipv4(ip)
    # the embedded IPv4 address first: it is where a packet really goes, and names the range better
    candidates = ([inner] if inner is not None else []) + [ip]
    allowed = tuple(allowed)
    if any(c.version == net.version and c in net for c in candidates for net in allowed):
        return None
    for c in candidates:
        if c.is_loopback:
            return f"{ip} is a loopback address"
        if c.is_link_local:
            return f"{ip} is a link-local address"
        if c.is_private:
            return f"{ip} is in a private range"
        if c.is_multicast or c.is_unspecified or c.is_reserved or not c.is_global:
            return f"{ip} is not a public address"
    return None


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """The host's addresses, in the resolver's order, without repeats."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host}: {exc}") from None
    seen: list[IPAddress] = []
    for info in infos:
        # IPv6 sockaddrs may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise FetchError(f"cannot resolve host {host}: no addresses")
    return seen


def permitted_addresses(
    host: str, port: int, allowed: Iterable[IPNetwork] = (), resolver: Resolver = socket.getaddrinfo
) -> list[IPAddress]:
    """Resolved addresses of host that may be connected to; FetchRefused when there is none."""
    allowed = tuple(allowed)
    addresses = resolve(host, port, resolver)
    ok = [ip for ip in addresses if refusal(ip, allowed) is None]
    if not ok:
        why = refusal(addresses[0], allowed)
        raise FetchRefused(f"refused to fetch from {host}: {why} (allow it with DOCPIPE_FETCH_ALLOW_NETWORKS)")
    return ok
