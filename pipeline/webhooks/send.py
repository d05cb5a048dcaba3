"""One POST of a webhook, guarded like feed downloads: only http(s), only addresses that pass the
netguard (pipeline/sources/netguard.py), connected to the very address that was checked, no redirects.

An endpoint URL is a tenant's input and the sender sits inside the network, so the same SSRF rules as for
feeds hold; DOCPIPE_WEBHOOK_ALLOW_NETWORKS opens chosen private ranges (a receiver on this machine).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from pipeline.sources.errors import FetchError, FetchRefused, InvalidSource
from pipeline.sources.fetch import check_url, connection_pool
from pipeline.sources.netguard import IPNetwork, Resolver, permitted_addresses

USER_AGENT = "docpipe-webhooks/0.1"
_ANSWER_BYTES = 4096  # what is read of a receiver's answer: only its status matters


@dataclass(frozen=True)
class Answer:
    status: int | None  # the HTTP status, None when no answer came
    error: str | None = None
    refused: bool = False  # the URL or its addresses are not allowed: asking again will not help

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allow: tuple[IPNetwork, ...] = (),
    resolver: Resolver = socket.getaddrinfo,
) -> Answer:
    try:
        target = check_url(url)
        addresses = permitted_addresses(target.host, target.port, allow, resolver)
    except (FetchRefused, InvalidSource) as exc:
        return Answer(None, str(exc).replace("DOCPIPE_FETCH_ALLOW", "DOCPIPE_WEBHOOK_ALLOW"), refused=True)
    except FetchError as exc:
        return Answer(None, str(exc))
    sent = {**headers, "Host": target.host_header, "User-Agent": USER_AGENT}
    last = "no address answered"
    for ip in addresses:
        pool = connection_pool(target, str(ip), urllib3.Timeout(connect=timeout, read=timeout))
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:
            last = f"cannot connect to {target.host}:{target.port}: {exc}"
            continue  # the next permitted address may answer
        except (Urllib3Error, OSError) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")
        try:
            response.read(_ANSWER_BYTES)
        except (Urllib3Error, OSError):
            pass  # the status is in; a receiver that hangs up after it still answered
        finally:
            response.release_conn()
            pool.close()
        status = response.status
        if 300 <= status < 400:
            return Answer(status, f"HTTP {status}: webhook redirects are not followed; register the final URL")
        return Answer(status, None if 200 <= status < 300 else f"HTTP {status}")
    return Answer(None, last)
