"""The spike rule: negative share in the recent window against the entity's own baseline."""

from pipeline.monitor.alerts import SpikeRule, judge

RULE = SpikeRule(window_hours=6, baseline_hours=72, sigma=3.0, min_items=5, min_baseline_windows=4, std_floor=0.05)
NOW = 100_000


def steady(hours=80, items=2, negative_every=5):
    """Two items an hour; one in `negative_every` hours has one negative item."""
    return {NOW - h: (items, 1 if h % negative_every == 0 else 0) for h in range(hours)}


def test_steady_entity_does_not_spike():
    v = judge(steady(), NOW, RULE)
    assert v.baseline_windows == 12 and not v.starts and v.ends
    assert 0 < v.mean < 0.2


def test_negative_burst_spikes():
    hourly = steady()
    for h in range(4):
        hourly[NOW - h] = (5, 4)
    v = judge(hourly, NOW, RULE)
    assert v.starts and not v.ends
    assert v.items == 24 and v.negatives == 17 and v.deviations >= 3


def test_burst_needs_volume():
    hourly = steady()
    hourly.update({NOW - h: (0, 0) for h in range(6)})
    hourly[NOW] = (3, 3)
    v = judge(hourly, NOW, RULE)
    assert v.share == 1.0 and not v.starts and not v.ends  # too few to open, too negative to close


def test_short_history_is_not_judged():
    hourly = {NOW - h: (2, 2 if h < 6 else 0) for h in range(18)}  # two baseline windows only
    assert not judge(hourly, NOW, RULE).starts


def test_flat_baseline_uses_the_std_floor():
    hourly = {NOW - h: (2, 0) for h in range(80)}
    hourly[NOW] = (4, 1)  # share 1/14 over the window: above a flat zero, below 3 x the 0.05 floor
    v = judge(hourly, NOW, RULE)
    assert v.std == 0 and not v.starts
    hourly[NOW] = (4, 3)  # 3/14: more than three floors above
    assert judge(hourly, NOW, RULE).starts


def test_good_news_is_no_alarm_and_empty_window_ends_an_episode():
    hourly = steady()
    hourly.update({NOW - h: (6, 0) for h in range(6)})
    assert not judge(hourly, NOW, RULE).starts
    hourly.update({NOW - h: (0, 0) for h in range(6)})
    assert judge(hourly, NOW, RULE).ends
