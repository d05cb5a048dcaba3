"""Fetching over real sockets from a loopback server: conditional requests, redirects re-checked,
timeouts, the size cap, and connecting to the checked address."""

import gzip
import socket
import time

import pytest

from pipeline.sources.errors import FetchError, FetchRefused
from pipeline.sources.fetch import FetchPolicy, fetch
from pipeline.sources.netguard import parse_networks
from tests.feedserver import FeedServer, rss

LOOPBACK = parse_networks("127.0.0.0/8")
FEED = rss([{"title": "One", "link": "https://n.example/1", "description": "Body one."}])


@pytest.fixture
def server():
    with FeedServer() as srv:
        yield srv


def policy(**kw):
    return FetchPolicy(**{"timeout": 5.0, "allow": LOOPBACK, **kw})


def test_loopback_is_refused_without_the_allow_list(server):
    url = server.route("/feed", body=FEED)
    with pytest.raises(FetchRefused, match="loopback"):
        fetch(url, FetchPolicy(timeout=5.0))
    assert server.requests == []  # refused before connecting


def test_conditional_get_answers_304(server):
    url = server.route(
        "/feed",
        body=FEED,
        etag='"v1"',
        last_modified="Tue, 05 Mar 2024 10:00:00 GMT",
        headers={"Content-Type": "application/rss+xml"},
    )
    first = fetch(url, policy())
    assert (first.status, first.body, first.etag) == (200, FEED, '"v1"')
    assert first.content_type == "application/rss+xml"
    again = fetch(url, policy(), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.body == b"" and again.etag == '"v1"'
    sent = server.hits("/feed")[-1]
    assert sent["if-none-match"] == '"v1"' and sent["if-modified-since"] == first.last_modified


def test_http_errors(server):
    url = server.route("/broken", status=500, body=b"oops")
    with pytest.raises(FetchError, match="HTTP 500"):
        fetch(url, policy())
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(server.url("/nothing-here"), policy())


def test_redirects_are_followed_and_each_hop_is_checked(server):
    final = server.route("/final", body=FEED)
    hop = server.route("/hop", status=302, headers={"Location": "/final"})
    result = fetch(hop, policy())
    assert result.url == final and result.body == FEED
    evil = server.route("/evil", status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(FetchRefused, match="169.254.169.254 is a link-local address"):
        fetch(evil, policy())
    private = server.route("/private", status=307, headers={"Location": "http://10.0.0.1/feed"})
    with pytest.raises(FetchRefused, match="private"):
        fetch(private, policy())
    scheme = server.route("/scheme", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchRefused, match="only http and https"):
        fetch(scheme, policy())


def test_redirect_loops_stop(server):
    loop = server.route("/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(loop, policy(max_redirects=3))
    assert len(server.hits("/loop")) == 4


def test_slow_server_times_out(server):
    url = server.route("/slow", body=FEED, delay=3.0)
    with pytest.raises(FetchError, match="timed out after 0.5s"):
        fetch(url, policy(timeout=0.5))


def test_dribbling_server_meets_the_overall_deadline(server):
    def dribble(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        try:
            for _ in range(40):  # each byte well inside the read timeout, the whole far past it
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    url = server.route("/dribble", handler=dribble)
    with pytest.raises(FetchError, match="timed out"):
        fetch(url, policy(timeout=1.0))


def test_size_cap_streams_and_aborts(server):
    big = server.route("/big", body=b"x" * 50_000)
    with pytest.raises(FetchError, match="over the 10000-byte limit"):
        fetch(big, policy(max_bytes=10_000))

    def chunked(h):  # no Content-Length: only the streamed count can stop it
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            for _ in range(100):
                h.wfile.write(b"y" * 4096)
        except OSError:
            pass

    url = server.route("/unsized", handler=chunked)
    with pytest.raises(FetchError, match="over the 10000-byte limit; download aborted"):
        fetch(url, policy(max_bytes=10_000))


def test_gzip_bomb_is_capped_on_decompressed_size(server):
    bomb = gzip.compress(b"\0" * 5_000_000)
    url = server.route("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    assert len(bomb) < 10_000
    with pytest.raises(FetchError, match="limit"):
        fetch(url, policy(max_bytes=100_000))


def test_connects_to_the_checked_address_and_keeps_the_host_name(server):
    url = server.route("/feed", body=FEED)
    calls = []

    def resolver(host, port, type=0):  # getaddrinfo's keyword names
        calls.append(host)
        # answers 127.0.0.1 once; a rebinding attacker's second answer would be private
        answer = "127.0.0.1" if len(calls) == 1 else "10.9.9.9"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]

    named = url.replace("127.0.0.1", "feeds.example")
    result = fetch(named, policy(resolver=resolver))
    assert result.body == FEED and calls == ["feeds.example"]  # resolved once, used once
    assert server.hits("/feed")[-1]["host"] == f"feeds.example:{server.port}"
