"""The Elasticsearch connection settings reach the one client factory as elasticsearch-py's options."""

from __future__ import annotations

import pytest

from pipeline.config import ElasticsearchSettings, Settings
from pipeline.errors import ConfigError
from pipeline.services import elasticsearch_client, elasticsearch_options, without_credentials

FINGERPRINT = "AB:" * 31 + "AB"


def test_each_variable_reaches_its_field(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for name, value in {
        "DOCPIPE_ELASTICSEARCH_URL": "https://es:9200",
        "DOCPIPE_ELASTICSEARCH_CA_CERTS": str(ca),
        "DOCPIPE_ELASTICSEARCH_SSL_FINGERPRINT": FINGERPRINT,
        "DOCPIPE_ELASTICSEARCH_VERIFY_CERTS": "false",
        "DOCPIPE_ELASTICSEARCH_USERNAME": "elastic",
        "DOCPIPE_ELASTICSEARCH_PASSWORD": "pw",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.elasticsearch_url == "https://es:9200"
    assert (s.elasticsearch.ca_certs, s.elasticsearch.verify_certs, s.elasticsearch.username) == (
        str(ca),
        False,
        "elastic",
    )
    assert "pw" not in repr(s.elasticsearch)  # the password is a secret
    assert elasticsearch_options(s, s.elasticsearch_url) == {
        "verify_certs": False,
        "ca_certs": str(ca),
        "ssl_assert_fingerprint": "ab" * 32,
        "basic_auth": ("elastic", "pw"),
    }


def test_defaults_verify_certificates_and_keep_the_api_key():
    s = Settings(elasticsearch_api_key="k", elasticsearch=ElasticsearchSettings())
    assert elasticsearch_options(s, "https://es:9200") == {"verify_certs": True, "api_key": "k"}


@pytest.mark.parametrize(
    ("tls", "api_key", "says"),
    [
        ({"ca_certs": "/nowhere/ca.pem"}, None, "DOCPIPE_ELASTICSEARCH_CA_CERTS: no such file /nowhere/ca.pem"),
        ({"ssl_fingerprint": "abc"}, None, "DOCPIPE_ELASTICSEARCH_SSL_FINGERPRINT: expected a SHA-256"),
        ({"username": "elastic"}, "k", "set DOCPIPE_ELASTICSEARCH_API_KEY or DOCPIPE_ELASTICSEARCH_USERNAME, not both"),
    ],
)
def test_unusable_settings_are_refused_with_the_variable_named(tls, api_key, says):
    s = Settings(elasticsearch_api_key=api_key, elasticsearch=ElasticsearchSettings(**tls))
    with pytest.raises(ConfigError, match=says):
        elasticsearch_client(s, "https://es:9200")


def test_credentials_never_appear_in_what_is_printed_and_explicit_ones_win():
    assert without_credentials("https://elastic:s3cret@es:9200/x") == "https://es:9200/x"
    assert without_credentials("http://es:9200") == "http://es:9200"
    s = Settings(elasticsearch=ElasticsearchSettings(username="docpipe", password="pw"))
    with elasticsearch_client(s, "https://elastic:old@es:9200") as es:
        node = es.transport.node_pool.get()
        assert "authorization" not in {k.lower() for k in node.config.headers}  # the URL's credentials dropped
        assert es.transport.node_pool.get().base_url == "https://es:9200"


def test_no_url_at_all_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match="start the stack with `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL"):
        elasticsearch_client(Settings(data_dir=tmp_path, elasticsearch_url=None))
