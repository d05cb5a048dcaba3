"""Address checks: only public addresses unless allowed, checked on what the name resolves to."""

import socket

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.errors import FetchError, FetchRefused, InvalidSource
from pipeline.sources.fetch import check_url
from pipeline.sources.netguard import parse_networks, permitted_addresses, refusal


@pytest.mark.parametrize(
    "ip,why",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("0.0.0.0", "private"),
        ("100.64.0.1", "not a public"),
        ("224.0.0.1", "not a public"),
    ],
)
def test_non_public_addresses_are_refused(ip, why):
    assert why in refusal(ip)


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(ip):
    assert refusal(ip) is None


def test_allow_list_lets_named_networks_through_and_nothing_else():
    allowed = parse_networks("127.0.0.0/8, 10.1.0.0/16")
    assert refusal("127.0.0.1", allowed) is None
    assert refusal("::ffff:127.0.0.1", allowed) is None  # the same address, IPv4-mapped
    assert refusal("10.1.200.3", allowed) is None
    assert "private" in refusal("10.2.0.1", allowed)
    assert "link-local" in refusal("169.254.169.254", allowed)
    assert "loopback" in refusal("::1", allowed)


def test_bad_allow_list_is_a_config_error():
    with pytest.raises(ConfigError, match="not a CIDR"):
        parse_networks("127.0.0.0/8,localhost")
    assert parse_networks("") == ()


def _resolver(*answers):
    def resolve(host, port, type=0):  # getaddrinfo's keyword names
        if not answers:
            raise socket.gaierror(-2, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers
        ]

    return resolve


def test_names_are_checked_on_their_resolved_addresses():
    with pytest.raises(FetchRefused, match="169.254.169.254 is a link-local address"):
        permitted_addresses("metadata.example", 80, (), _resolver("169.254.169.254"))
    # a name with a public and a private answer is used only through the public one
    ok = permitted_addresses("mixed.example", 80, (), _resolver("10.0.0.5", "93.184.216.34", "10.0.0.5"))
    assert [str(a) for a in ok] == ["93.184.216.34"]
    with pytest.raises(FetchError, match="cannot resolve host nowhere.example"):
        permitted_addresses("nowhere.example", 80, (), _resolver())


def test_ip_literals_need_no_dns():
    with pytest.raises(FetchRefused, match="private"):
        permitted_addresses("10.0.0.1", 80, (), _resolver())


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/feed", "gopher://example.org/", "javascript:alert(1)"]
)
def test_only_http_and_https(url):
    with pytest.raises(FetchRefused, match="only http and https"):
        check_url(url)


def test_url_shapes():
    t = check_url("https://news.example:8443/feed.xml?x=1")
    assert (t.scheme, t.host, t.port, t.path, t.host_header) == (
        "https",
        "news.example",
        8443,
        "/feed.xml?x=1",
        "news.example:8443",
    )
    assert check_url("http://[::1]/").host_header == "[::1]"
    with pytest.raises(InvalidSource, match="credentials"):
        check_url("http://user:pw@example.org/feed")
    with pytest.raises(InvalidSource, match="no host"):
        check_url("http:///feed")
