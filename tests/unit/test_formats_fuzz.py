"""Every reader, fed random and adversarial bytes through read_path: records or rejections, never an exception.

A reader that raises fails its whole job (no dead letter, the job's other files unread), so the property is
checked for every supported suffix: random bytes, and bytes built to trip parsers (nesting past the recursion
limit, integers past Python's digit limit, NULs, invalid UTF-8, byte-order marks, truncation, giant lines).
"""

from __future__ import annotations

import codecs
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, read_path
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats import make_pdf

SUFFIXES = sorted(SUPPORTED_SUFFIXES)
MAX_BYTES = 2_000_000
REASONS = {r.value for r in Reason}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def _fragments() -> list[bytes]:
    pdf = make_pdf(["Quarterly results beat estimates", "Second page"], title="Report")
    deep_object = '{"a":' * 3000 + "1" + "}" * 3000
    return [
        _deep(3000).encode(),
        deep_object.encode(),
        ('{"text": "ok", "n": ' + "9" * 5000 + "}").encode(),
        ('[{"text": "ok"}, ' + "7" * 4400 + "]").encode(),
        ('{"text": ' + _deep(1200) + "}").encode(),
        b'{"text": "nul \x00 inside"}',
        b'{"text": "bad \xff\xfe utf8"}',
        b'{"text": "a lone surrogate \\ud800", "published": "Mon, 01 Jan 99999999999 00:00:00"}',
        b"text,id\nhello,1\n" + b'"unterminated,2\n',
        b"text,id\n" + b"x" * 300_000 + b",1\n",
        b"text\n" + b"a," * 20_000 + b"\n",
        codecs.BOM_UTF8 + b'{"text": "bom"}',
        codecs.BOM_UTF16_LE + b"\xff",
        codecs.BOM_UTF32_BE + b"\x00\x00\x00",
        pdf,
        pdf[: len(pdf) // 2],
        pdf.replace(b"/Length", b"/Length 999999999 /Foo"),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages " + b"[" * 3000 + b"\n%%EOF",
        b"<html>" + b"<div>" * 3000 + b"deep" + b"</div>" * 3000 + b"</html>",
        b"<?xml version='1.0' encoding='bogus'?><html><body><p>x</p></body></html>",
        b"\n".join([b'{"text": "line"}', _deep(2000).encode(), b'{"n": ' + b"1" * 5000 + b"}", b"\xc3\x28"]),
        b"x" * 500_000,
        b"\r" * 10_000,
    ]


FRAGMENTS = _fragments()

adversarial = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=300), min_size=1, max_size=3).map(b"".join)
mutated = st.tuples(st.sampled_from(FRAGMENTS), st.integers(0, 10**6), st.binary(max_size=8)).map(
    lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2]
)


def _check(path) -> list[RawDocument | Rejected]:
    items = list(read_path(path, MAX_BYTES))  # raising here is the failure this test is for
    assert items, "a file yields at least one record or rejection"
    for item in items:
        assert isinstance(item, (RawDocument, Rejected))
        if isinstance(item, Rejected):
            assert item.reason in REASONS and item.detail and item.stage == "read"
        else:
            assert isinstance(item.body, str) and item.body.strip()
    return items


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.binary(max_size=4096) | adversarial | mutated)
def test_any_bytes_become_records_or_rejections(tmp_path, suffix, data):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _check(path)


@pytest.mark.parametrize(
    ("suffix", "body", "reason"),
    [
        (".json", _deep(3000), Reason.TOO_DEEP),
        (".json", _deep(1000, '{"a":', "}"), Reason.TOO_DEEP),
        (".json", '{"text": "x", "n": ' + "1" * 4400 + "}", Reason.NUMBER_TOO_LONG),
        (".jsonl", _deep(3000), Reason.TOO_DEEP),
        (".jsonl", '{"text": "x", "n": ' + "1" * 4400 + "}", Reason.NUMBER_TOO_LONG),
    ],
)
def test_deep_nesting_and_long_numbers_have_their_own_reasons(tmp_path, suffix, body, reason):
    path = tmp_path / f"bad{suffix}"
    path.write_text(body)
    (item,) = _check(path)
    assert isinstance(item, Rejected) and item.reason == reason, item


def test_a_bad_line_of_a_jsonl_file_loses_that_line_only(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"id": "a", "text": "first"}), _deep(3000), '{"n": ' + "1" * 5000 + "}", '{"text": "last"}']
    path.write_text("\n".join(lines))
    items = _check(path)
    assert [type(i).__name__ for i in items] == ["RawDocument", "Rejected", "Rejected", "RawDocument"]
    assert [i.reason for i in items if isinstance(i, Rejected)] == [Reason.TOO_DEEP, Reason.NUMBER_TOO_LONG]
    assert items[1].source.endswith("#2") and items[2].source.endswith("#3")
