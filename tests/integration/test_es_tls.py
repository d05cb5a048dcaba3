"""docpipe against an Elasticsearch that serves HTTPS with its own CA, as a default self-managed Elasticsearch 8 does.

A TLS-terminating proxy made here (a CA and a server certificate generated with `cryptography`) stands in front of
the embedded noida-db server: docpipe works with the CA or the CA's fingerprint set, and without either refuses in
one clear line, in the client factory, in `docpipe search` and as the API's 503.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
import threading
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from elastic_transport import SecurityWarning
from typer.testing import CliRunner

from pipeline.config import ElasticsearchSettings, Settings
from pipeline.errors import ConfigError
from pipeline.index import IndexLayout, bm25, chunk_action, refresh, write_chunks
from pipeline.services import elasticsearch_client
from pipeline.types import document_id
from tests.conftest import migrated_database, settings_environment

DIMS = 4
UNTRUSTED = "certificate not trusted — set DOCPIPE_ELASTICSEARCH_CA_CERTS to the cluster's CA or "
UNTRUSTED += "DOCPIPE_ELASTICSEARCH_SSL_FINGERPRINT"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificates(folder: Path) -> dict[str, Path | str]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and the CA's SHA-256 fingerprint."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("docpipe test CA"))
        .issuer_name(_name("docpipe test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {"ca": folder / "ca.pem", "chain": folder / "server-chain.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(pem))
    # the server sends its CA after its own certificate, as Elasticsearch does: a CA fingerprint can then match
    paths["chain"].write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {**paths, "fingerprint": hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()}


class TlsProxy:
    """HTTPS on a free local port, plain HTTP to `upstream`: an asyncio loop in a thread, one pair of pumps a
    connection. A client that refuses the certificate just ends its connection."""

    def __init__(self, upstream: str, chain: Path, key: Path):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(chain, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _serve(self):
        return await asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self.context)

    async def _connection(self, client_reader, client_writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pump(client_reader, up_writer), self._pump(up_reader, client_writer), return_exceptions=True
        )

    @staticmethod
    async def _pump(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return _certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_url(noida, certs):
    with TlsProxy(noida.elasticsearch_url, certs["chain"], certs["key"]) as url:
        yield url


def _settings(url: str, **tls) -> Settings:
    return Settings(elasticsearch_url=url, elasticsearch=ElasticsearchSettings(**tls))


def _index_and_search(es) -> list[str]:
    """Bootstrap a fresh index layout, bulk-write one chunk and find it with BM25: the calls docpipe makes."""
    layout = IndexLayout(es, f"tls-{uuid.uuid4().hex[:8]}")
    layout.ensure_live(DIMS)
    doc = document_id("acme", "harbour.txt")
    fields = {
        "tenant": "acme",
        "doc_id": doc,
        "ordinal": 0,
        "source": "harbour.txt",
        "text": "dock workers agree a wage deal",
        "embedding": [0.1, 0.2, 0.3, 0.4],
    }
    assert write_chunks(es, [chunk_action(layout.write_alias, fields)]).ok == 1
    refresh(es, layout.write_alias)
    return [hit.source for hit in bm25(es, layout.read_alias, "acme", "wage deal", 5)]


def test_with_the_ca_set_docpipe_indexes_and_searches_over_https(https_url, certs):
    with elasticsearch_client(_settings(https_url, ca_certs=str(certs["ca"]))) as es:
        assert _index_and_search(es) == ["harbour.txt"]


def test_with_the_ca_fingerprint_set_docpipe_works_without_the_ca_file(https_url, certs):
    colons = ":".join(certs["fingerprint"][i : i + 2] for i in range(0, 64, 2)).upper()  # as Elasticsearch prints it
    for fingerprint in (certs["fingerprint"], colons):
        with elasticsearch_client(_settings(https_url, ssl_fingerprint=fingerprint)) as es:
            assert _index_and_search(es) == ["harbour.txt"]


def test_without_ca_or_fingerprint_docpipe_refuses_in_one_clear_line(https_url):
    with elasticsearch_client(_settings(https_url)) as es, pytest.raises(ConfigError) as refused:
        _index_and_search(es)
    assert str(refused.value) == f"Elasticsearch at {https_url}: {UNTRUSTED}"


def test_a_wrong_fingerprint_is_named(https_url):
    with elasticsearch_client(_settings(https_url, ssl_fingerprint="ab" * 32)) as es, pytest.raises(ConfigError) as e:
        es.info()
    assert str(e.value) == f"Elasticsearch at {https_url}: certificate fingerprint does not match " + (
        "DOCPIPE_ELASTICSEARCH_SSL_FINGERPRINT"
    )


def test_verify_certs_false_works_with_a_warning(https_url):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        es = elasticsearch_client(_settings(https_url, verify_certs=False))
    assert any(issubclass(w.category, SecurityWarning) for w in seen)
    with es:
        assert _index_and_search(es) == ["harbour.txt"]


@pytest.fixture
def own_sql_url(tmp_path):
    """A database of this test's own: the index version it records must not join the shared stack's."""
    with migrated_database(tmp_path) as url:
        yield url


def test_docpipe_search_and_the_api_over_https(https_url, certs, own_sql_url, tmp_path):
    from cli.main import app

    sql_url = own_sql_url
    with elasticsearch_client(_settings(https_url, ca_certs=str(certs["ca"]))) as es:
        prefix = f"tls-{uuid.uuid4().hex[:8]}"
        IndexLayout(es, prefix).ensure_live(DIMS)
    env = {
        "DOCPIPE_DATA_DIR": str(tmp_path),
        "DOCPIPE_DATABASE_URL": sql_url,
        "DOCPIPE_ELASTICSEARCH_URL": https_url,
        "DOCPIPE_INDEX_PREFIX": prefix,
    }
    with settings_environment({**env, "DOCPIPE_ELASTICSEARCH_CA_CERTS": str(certs["ca"])}):
        trusted = CliRunner().invoke(app, ["search", "anything", "--mode", "bm25", "--json"], prog_name="docpipe")
    assert (trusted.exit_code, trusted.output.strip()) == (0, "[]")
    with settings_environment({**env, "DOCPIPE_ELASTICSEARCH_CA_CERTS": ""}):
        refused = CliRunner().invoke(app, ["search", "anything", "--mode", "bm25"], prog_name="docpipe")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [f"error: Elasticsearch at {https_url}: {UNTRUSTED}"]

    from tests.unit.api_support import Api

    api = Api(tmp_path / "api", elasticsearch_url=https_url, index_prefix=prefix)
    r = api.client.get("/v1/search", params={"q": "wage", "mode": "bm25"}, headers=api.key("acme"))
    assert r.status_code == 503
    assert r.json()["message"] == f"docpipe is misconfigured: Elasticsearch at {https_url}: {UNTRUSTED}"
