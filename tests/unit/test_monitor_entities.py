"""Entity tagging: cashtags, case rules for short and word-like tickers, names, word boundaries."""

import pytest

from pipeline.monitor.entities import EntityMatcher, english_words, normalise_ticker, strict_ticker

WATCH = [
    (1, "AAPL", ["Apple", "Apple Inc"]),
    (2, "IT", ["Gartner"]),
    (3, "ON", ["onsemi"]),
    (4, "MSFT", ["Microsoft"]),
    (5, "SNAP", []),
    (6, "BRK.B", ["Berkshire Hathaway"]),
]


@pytest.fixture(scope="module")
def matcher():
    return EntityMatcher(WATCH)


def found(matcher, text):
    return set(matcher.find(text))


@pytest.mark.parametrize(
    "text",
    [
        "$AAPL slides",
        "watching $aapl today",
        "($AAPL)",
        "$AAPL.",
        "AAPL up 2%",
        "aapl up",
        "Apple's results",
        "Apple-made chips",
        "APPLE SHARES FALL",
        "apple inc said",
        "Apple  Inc. reported",
    ],
)
def test_apple_is_found(matcher, text):
    assert 1 in found(matcher, text)


@pytest.mark.parametrize(
    "text",
    ["pineapple juice", "an apple a day", "Applebee's menu", "AAPLX fund", "XAAPL", "$AAPLX", "A$AAPL", "snapple"],
)
def test_apple_is_not_found(matcher, text):
    assert 1 not in found(matcher, text)


def test_short_tickers_need_upper_case_or_a_cashtag(matcher):
    assert found(matcher, "it rained and the lights went on") == set()
    assert found(matcher, "It is on") == set()
    assert found(matcher, "IT spending rose; ON beat estimates") == {2, 3}
    assert found(matcher, "buying $it and $on") == {2, 3}
    assert found(matcher, "ITALY and ONTARIO") == set()


def test_ticker_that_is_an_english_word_needs_upper_case(matcher):
    assert found(matcher, "a snap decision") == set()
    assert found(matcher, "SNAP fell after earnings") == {5}
    assert found(matcher, "$snap") == {5}


def test_long_non_word_tickers_and_names_match_in_any_case(matcher):
    assert found(matcher, "msft and microsoft") == {4}
    assert found(matcher, "MICROSOFT") == {4}
    assert found(matcher, "microsoftish") == set()


def test_class_share_tickers_and_multiword_names(matcher):
    assert found(matcher, "bought $BRK.B") == {6}
    assert found(matcher, "berkshire\nhathaway annual letter") == {6}
    assert found(matcher, "BRK.BX") == set()


def test_first_match_is_reported(matcher):
    assert matcher.find("Talk of $AAPL and Apple") == {1: "$AAPL"}


def test_ticker_rules():
    words = english_words()
    assert {"it", "on", "apple", "snap"} <= words and "aapl" not in words
    assert strict_ticker("IT", words) and strict_ticker("KEY", words) and strict_ticker("SNAP", words)
    assert not strict_ticker("AAPL", words) and not strict_ticker("MSFT", words)
    assert normalise_ticker(" $aapl ") == "AAPL" and normalise_ticker("brk.b") == "BRK.B"
    for bad in ["", "$", "A B", "AAPL!", "TOOLONGTICKER1"]:
        with pytest.raises(ValueError):
            normalise_ticker(bad)
