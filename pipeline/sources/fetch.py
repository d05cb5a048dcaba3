"""Download one feed over HTTP(S): conditional, time-boxed, size-capped, redirects re-checked.

urllib3 is the client: it is already installed (the Elasticsearch transport uses it), it streams
bodies, and it lets us open a connection to an address we checked while still sending the real
Host header and verifying TLS against the real host name; a client that resolves names itself
would let a second DNS answer bypass the address check.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from pipeline.config import FetchSettings, defaults
from pipeline.sources.errors import FetchError, FetchRefused, InvalidSource
from pipeline.sources.netguard import IPAddress, IPNetwork, Resolver, parse_networks, permitted_addresses

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json, "
    "application/x-ndjson, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_READ_SIZE = 64 * 1024
_FETCH = defaults(FetchSettings)


@dataclass
class FetchPolicy:
    timeout: float = _FETCH.timeout  # connect, each read, and the whole exchange including redirects
    max_bytes: int = _FETCH.max_bytes
    max_redirects: int = _FETCH.max_redirects
    allow: tuple[IPNetwork, ...] = ()
    user_agent: str = _FETCH.user_agent
    resolver: Resolver = field(default=socket.getaddrinfo, repr=False)

    @classmethod
    def from_settings(cls, settings, timeout: float | None = None) -> FetchPolicy:
        return cls(
            timeout=timeout or settings.fetch.timeout,
            max_bytes=settings.fetch.max_bytes,
            max_redirects=settings.fetch.max_redirects,
            allow=parse_networks(settings.fetch.allow_networks),
            user_agent=settings.fetch.user_agent,
        )


@dataclass
class FetchResult:
    url: str  # after redirects
    status: int  # 200 (body holds the feed) or 304 (not modified)
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def check_url(url: str) -> Target:
    """Only absolute http(s) URLs with a host; credentials in URLs are refused (they would be logged)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidSource(f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"refused URL {url!r}: only http and https are fetched")
    if not parts.hostname:
        raise InvalidSource(f"bad URL {url!r}: no host")
    if parts.username or parts.password:
        raise InvalidSource(f"bad URL {url!r}: credentials in the URL are not supported")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def fetch(url: str, policy: FetchPolicy, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
    """GET url, following redirects by hand so that every hop passes the address check."""
    deadline = time.monotonic() + policy.timeout
    headers = {"User-Agent": policy.user_agent, "Accept": _ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    for _hop in range(policy.max_redirects + 1):
        target = check_url(url)
        addresses = permitted_addresses(target.host, target.port, policy.allow, policy.resolver)
        response = _open(target, addresses, {**headers, "Host": target.host_header}, policy, deadline, url)
        try:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise FetchError(f"HTTP {response.status} from {url} without a Location")
                url = urljoin(url, location.strip())
                continue
            if response.status == 304:
                return FetchResult(
                    url,
                    304,
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                )
            if not 200 <= response.status < 300:
                raise FetchError(f"HTTP {response.status} {response.reason or ''} from {url}".rstrip())
            body = _read_capped(response, policy, deadline, url)
            return FetchResult(
                url,
                200,
                body,
                response.headers.get("Content-Type", ""),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
        finally:
            response.close()
    raise FetchError(f"more than {policy.max_redirects} redirects, last to {url}")


def _open(
    target: Target, addresses: list[IPAddress], headers: dict, policy: FetchPolicy, deadline: float, url: str
) -> urllib3.BaseHTTPResponse:
    last: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = urllib3.Timeout(connect=min(policy.timeout, remaining), read=min(policy.timeout, remaining))
        pool = connection_pool(target, str(ip), timeout)
        try:
            return pool.urlopen(
                "GET",
                target.path,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
                assert_same_host=False,
                release_conn=False,
            )
        except NewConnectionError as exc:
            last = exc  # refused or unreachable: the next permitted address may answer
        except (Urllib3Timeout, TimeoutError):
            raise FetchError(f"timed out after {policy.timeout:g}s fetching {url}") from None
        except SSLError as exc:
            raise FetchError(f"TLS error fetching {url}: {exc}") from None
        except (ProtocolError, Urllib3Error, OSError) as exc:
            raise FetchError(f"connection to {target.host} failed fetching {url}: {exc}") from None
    if last is None:
        raise FetchError(f"timed out after {policy.timeout:g}s fetching {url}")
    raise FetchError(f"cannot connect to {target.host}:{target.port} for {url}: {last}")


def connection_pool(target: Target, ip: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    # The pool connects to the checked address; TLS still verifies the certificate for the URL's host.
    if target.scheme == "https":
        import certifi

        return urllib3.HTTPSConnectionPool(
            ip,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    return urllib3.HTTPConnectionPool(ip, target.port, timeout=timeout, retries=False, maxsize=1)


def _read_capped(response, policy: FetchPolicy, deadline: float, url: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"{url} is {declared} bytes, over the {policy.max_bytes}-byte limit")
    chunks, size = [], 0
    try:
        while True:
            # read1 returns after one socket read, so a server dribbling bytes still meets the deadline
            chunk = response.read1(_READ_SIZE)
            if not chunk:
                break
            size += len(chunk)  # decompressed size: a gzip bomb is capped like a plain body
            if size > policy.max_bytes:
                raise FetchError(f"{url} is over the {policy.max_bytes}-byte limit; download aborted")
            if time.monotonic() > deadline:
                raise FetchError(f"timed out after {policy.timeout:g}s fetching {url}")
            chunks.append(chunk)
    except (Urllib3Timeout, TimeoutError):
        raise FetchError(f"timed out after {policy.timeout:g}s fetching {url}") from None
    except (ProtocolError, Urllib3Error, OSError) as exc:
        raise FetchError(f"connection broken while reading {url}: {exc}") from None
    return b"".join(chunks)
