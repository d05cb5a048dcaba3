"""Where the services are: configured URLs, else the embedded stack recorded by `docpipe up`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from elastic_transport import TlsError, Urllib3HttpNode

from pipeline.config import Settings
from pipeline.errors import ConfigError

CA_CERTS_VAR = "DOCPIPE_ELASTICSEARCH_CA_CERTS"
FINGERPRINT_VAR = "DOCPIPE_ELASTICSEARCH_SSL_FINGERPRINT"


@dataclass(frozen=True)
class Endpoints:
    sql_url: str
    redis_url: str | None
    elasticsearch_url: str | None


def read_stack(settings: Settings) -> dict:
    try:
        return json.loads(settings.stack_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def endpoints(settings: Settings) -> Endpoints:
    stack = read_stack(settings)
    return Endpoints(
        sql_url=settings.sql_url,
        redis_url=settings.redis_url or stack.get("redis_url"),
        elasticsearch_url=settings.elasticsearch_url or stack.get("elasticsearch_url"),
    )


def without_credentials(url: str) -> str:
    """The URL as it may be printed: no user or password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def tls_failure_message(url: str, detail: str) -> str:
    """One line that says why a TLS handshake with Elasticsearch failed and which setting fixes it."""
    where = f"Elasticsearch at {without_credentials(url)}"
    if "Fingerprints did not match" in detail:
        return f"{where}: certificate fingerprint does not match {FINGERPRINT_VAR}"
    if "Hostname mismatch" in detail or "doesn't match" in detail:
        return f"{where}: its certificate is not valid for this host name — connect by a name the certificate names"
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        return f"{where}: certificate not trusted — set {CA_CERTS_VAR} to the cluster's CA or {FINGERPRINT_VAR}"
    return f"{where}: TLS handshake failed ({detail.splitlines()[0] if detail else 'no detail'})"


class _ExplainedTlsNode(Urllib3HttpNode):
    """A TLS failure is configuration, not an outage: it surfaces at once (no retries) as one clear ConfigError."""

    def perform_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().perform_request(*args, **kwargs)
        except TlsError as exc:
            raise ConfigError(tls_failure_message(self.base_url, str(exc))) from exc


def elasticsearch_options(settings: Settings, url: str) -> dict:
    """The client's connection options (TLS trust, auth) from the settings; refuses contradictory ones."""
    conf = settings.elasticsearch
    options: dict = {"verify_certs": conf.verify_certs}
    if conf.ca_certs:
        if not Path(conf.ca_certs).is_file():
            raise ConfigError(f"{CA_CERTS_VAR}: no such file {conf.ca_certs}")
        options["ca_certs"] = conf.ca_certs
    if conf.ssl_fingerprint:
        fingerprint = conf.ssl_fingerprint.replace(":", "").strip().lower()
        if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise ConfigError(f"{FINGERPRINT_VAR}: expected a SHA-256 fingerprint (64 hex digits)")
        options["ssl_assert_fingerprint"] = fingerprint
    if conf.username:
        if settings.elasticsearch_api_key:
            raise ConfigError("set DOCPIPE_ELASTICSEARCH_API_KEY or DOCPIPE_ELASTICSEARCH_USERNAME, not both")
        password = conf.password.get_secret_value() if conf.password else ""
        options["basic_auth"] = (conf.username, password)
    if settings.elasticsearch_api_key:
        options["api_key"] = settings.elasticsearch_api_key
    return options


def elasticsearch_client(settings: Settings, url: str | None = None):
    """The one way docpipe makes an Elasticsearch client: endpoint, TLS trust and credentials from the settings."""
    from elasticsearch import Elasticsearch

    url = url or endpoints(settings).elasticsearch_url
    if not url:
        raise ConfigError(
            "no Elasticsearch configured: start the stack with `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL"
        )
    options = elasticsearch_options(settings, url)
    if "basic_auth" in options or "api_key" in options:
        url = without_credentials(url)  # explicit credentials win over any in the URL
    # Retries on timeouts cover short stalls; the bulk helper handles 429s itself.
    return Elasticsearch(
        url,
        node_class=_ExplainedTlsNode,
        request_timeout=60,
        retry_on_timeout=True,
        max_retries=3,
        **options,
    )
