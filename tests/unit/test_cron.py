"""Cron schedules: parsing at the edge, time zones and DST, and the next-run rule that keeps a restarted beat from
firing a slot twice or forgetting one (pipeline/schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import InvalidSchedule
from pipeline.schedule import Cron, claim_slot, parse_cron
from pipeline.sources import catalog
from pipeline.sources.errors import InvalidSource
from pipeline.store.db import session_scope
from pipeline.store.models_sources import Source

LEASE = 900


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "expr, tz, problem",
    [
        ("0 6 * *", "UTC", "five fields"),
        ("0 0 6 * * *", "UTC", "five fields"),  # croniter's seconds field is not classic cron
        ("61 * * * *", "UTC", "bad cron expression"),
        ("@fortnightly", "UTC", "aliases"),
        ("", "UTC", "five fields"),
        ("0 6 * * *", "Mars/Olympus", "unknown time zone"),
        ("0 6 * * *", "../etc/passwd", "unknown time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused_with_a_hint(expr, tz, problem):
    with pytest.raises(InvalidSchedule, match=problem):
        parse_cron(expr, tz)


def test_a_berlin_morning_follows_daylight_saving_time():
    cron = parse_cron("0 6 * * *", "Europe/Berlin")
    assert cron.upcoming(utc(2024, 3, 30, 12), 2) == [utc(2024, 3, 31, 4), utc(2024, 4, 1, 4)]  # CEST: UTC+2
    assert cron.next_after(utc(2024, 12, 1)) == utc(2024, 12, 1, 5)  # CET: UTC+1
    assert parse_cron("@daily").next_after(utc(2024, 1, 1, 0, 0, 1)) == utc(2024, 1, 2)


def test_dst_gaps_run_at_the_gap_end_and_repeated_hours_run_a_fixed_slot_once():
    at_0230 = parse_cron("30 2 * * *", "Europe/Berlin")
    # 2024-03-31 02:30 does not exist in Berlin: it runs when the clocks jump, 03:00 CEST
    assert at_0230.next_after(utc(2024, 3, 30, 12)) == utc(2024, 3, 31, 1)
    # 2024-10-27 02:30 happens twice: once, at the first (CEST), then the next day
    assert at_0230.upcoming(utc(2024, 10, 26, 12), 2) == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]
    # a wildcard-hour expression keeps its spacing in real time through the repeated hour
    half_hourly = parse_cron("*/30 * * * *", "Europe/Berlin")
    slots = half_hourly.upcoming(utc(2024, 10, 27, 0, 10), 4)
    assert [b - a for a, b in zip(slots, slots[1:])] == [timedelta(minutes=30)] * 3


def _cron_source(url, cron="0 6 * * *", tz="Europe/Berlin") -> str:
    with session_scope(url) as s:
        return catalog.add_source(s, "feed", "https://feeds.example/a.xml", 0, "t1", cron=cron, tz=tz).id


def _claim(url, source_id, now):
    with session_scope(url) as s:
        return catalog.claim(s, source_id, now, LEASE)


def _finish(url, source_id, now, error=None) -> datetime:
    with session_scope(url) as s:
        source = s.get(Source, source_id)
        if error:
            catalog.finish_failure(source, now, error, 24 * 3600)
        else:
            catalog.finish_success(source, now, "ok")
        return catalog.aware(source.next_run_at)


def test_a_cron_source_waits_for_its_first_slot_and_lists_its_schedule(url):
    before = datetime.now(UTC)
    source_id = _cron_source(url)
    with session_scope(url) as s:
        rec = catalog.source_record(s.get(Source, source_id))
    assert (rec["cron"], rec["timezone"], rec["every"]) == ("0 6 * * *", "Europe/Berlin", None)
    first = datetime.fromisoformat(rec["next_run_at"])
    assert first == Cron("0 6 * * *", "Europe/Berlin").next_after(before)
    assert _claim(url, source_id, first - timedelta(seconds=1)) is None


def test_each_slot_runs_once_and_slots_missed_while_beat_was_down_run_once(url):
    source_id = _cron_source(url, "0 * * * *", "UTC")
    with session_scope(url) as s:
        s.get(Source, source_id).next_run_at = utc(2030, 1, 1, 6)
    assert _claim(url, source_id, utc(2030, 1, 1, 6, 0, 5))
    assert _finish(url, source_id, utc(2030, 1, 1, 6, 1)) == utc(2030, 1, 1, 7)
    # a restarted beat ticks again within the same hour: the slot is spent
    assert _claim(url, source_id, utc(2030, 1, 1, 6, 30)) is None
    # beat down from 06:30 to 09:40: three missed slots coalesce into one late run, then the next slot
    assert _claim(url, source_id, utc(2030, 1, 1, 9, 40))
    assert _finish(url, source_id, utc(2030, 1, 1, 9, 41)) == utc(2030, 1, 1, 10)
    assert _claim(url, source_id, utc(2030, 1, 1, 9, 59)) is None


def test_a_failing_cron_source_backs_off_but_never_past_its_next_slot(url):
    source_id = _cron_source(url, "0 6 * * *", "UTC")
    with session_scope(url) as s:
        s.get(Source, source_id).next_run_at = utc(2030, 1, 1, 6)
    assert _claim(url, source_id, utc(2030, 1, 1, 6))
    assert _finish(url, source_id, utc(2030, 1, 1, 6), "HTTP 503") == utc(2030, 1, 1, 6, 2)  # 60 s doubled once
    with session_scope(url) as s:
        source = s.get(Source, source_id)
        source.failures, source.next_run_at = 20, utc(2030, 1, 1, 23)
    assert _claim(url, source_id, utc(2030, 1, 1, 23))
    assert _finish(url, source_id, utc(2030, 1, 1, 23), "HTTP 503") == utc(2030, 1, 2, 6)


def test_sources_refuse_bad_cron_input(url):
    with session_scope(url) as s:
        with pytest.raises(InvalidSource, match="unknown time zone"):
            catalog.add_source(s, "feed", "https://feeds.example/b.xml", 0, "t1", cron="0 6 * * *", tz="Nowhere/X")
        with pytest.raises(InvalidSource, match="needs a cron"):
            catalog.add_source(s, "feed", "https://feeds.example/b.xml", 60, "t1", tz="Europe/Berlin")
        with pytest.raises(InvalidSource, match="five fields"):
            catalog.add_source(s, "feed", "https://feeds.example/b.xml", 0, "t1", cron="every day")


def test_a_named_schedule_fires_once_per_slot_across_restarts_and_restarts_on_a_new_expression(url):
    daily = parse_cron("0 3 * * *", "UTC")

    def take(cron, now):
        with session_scope(url) as s:  # each call a new transaction, as each beat tick is
            return claim_slot(s, "reindex", cron, now)

    assert not take(daily, utc(2030, 1, 1, 12))  # first sight: due at the next slot, not at once
    assert not take(daily, utc(2030, 1, 2, 2, 59))
    assert take(daily, utc(2030, 1, 2, 3, 0, 10))
    assert not take(daily, utc(2030, 1, 2, 3, 0, 30))  # a second beat, or a restarted one, finds it spent
    assert take(daily, utc(2030, 1, 5, 8))  # three days without beat: one late run
    assert not take(daily, utc(2030, 1, 5, 9))
    hourly = parse_cron("0 * * * *", "UTC")
    assert not take(hourly, utc(2030, 1, 5, 9, 30))  # a changed setting starts from its next slot
    assert take(hourly, utc(2030, 1, 5, 10))
