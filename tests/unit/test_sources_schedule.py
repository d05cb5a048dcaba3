"""Schedule intervals and the failure backoff."""

import pytest

from pipeline.sources import InvalidSource, backoff_delay, format_every, parse_every


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), (" 2D ", 172800), ("1d2h3m4s", 93784)],
)
def test_parse_every(text, seconds):
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "-5m", "5 minutes", "1.5h", "0s", "400d", "5m-"])
def test_parse_every_refuses_what_it_cannot_read(text):
    with pytest.raises(InvalidSource, match="bad interval"):
        parse_every(text)


def test_format_every_round_trips():
    for text in ("30s", "5m", "1h", "1d", "1h30m", "1d2h3m4s"):
        assert format_every(parse_every(text)) == text


def test_backoff_doubles_per_failure_up_to_the_cap():
    assert [backoff_delay(300, n, cap=3600) for n in range(6)] == [300, 600, 1200, 2400, 3600, 3600]


def test_backoff_never_polls_faster_than_the_schedule():
    # a cap below the interval does not shorten the interval
    assert backoff_delay(86400, 3, cap=3600) == 86400
    assert backoff_delay(60, 10_000, cap=7200) == 7200  # months of failures stay bounded
