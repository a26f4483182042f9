"""The trend: decayed evidence mass, saturating level, slope; checked as properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tactful.state.trend import Trend, TrendConfig

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DIM = "frustration"  # half-life 2 days
HL = timedelta(days=2)

strengths = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
offsets = st.integers(min_value=0, max_value=3 * 24 * 3600)  # seconds after T0
observations = st.lists(st.tuples(offsets, strengths), min_size=1, max_size=12)


def build(obs: list[tuple[int, float]]) -> Trend:
    t = Trend()
    for seconds, s in obs:
        t = t.add(s, T0 + timedelta(seconds=seconds), DIM)
    return t


def test_the_level_halves_its_mass_every_half_life():
    t = Trend().add(0.8, T0, DIM)
    assert t.mass_at(T0 + HL, HL.total_seconds()) == pytest.approx(0.4)
    assert t.level(T0 + HL, DIM) == pytest.approx(1 - math.exp(-1.5 * 0.4))


def test_three_frustrated_messages_outweigh_one_furious_outlier():
    three = build([(0, 0.6), (600, 0.6), (1200, 0.6)])
    outlier = build([(1200, 0.95)])
    at = T0 + timedelta(seconds=1200)
    assert three.level(at, DIM) > outlier.level(at, DIM) + 0.1


def test_strength_is_clamped_to_the_unit_interval():
    assert Trend().add(7.0, T0, DIM).mass == 1.0
    assert Trend().add(-1.0, T0, DIM).mass == 0.0


def test_an_empty_trend_reads_zero_and_steady():
    assert Trend().level(T0, DIM) == 0.0
    assert Trend().slope(T0, DIM) == "steady"


@given(observations, st.integers(min_value=0, max_value=30 * 24 * 3600))
def test_without_new_evidence_the_level_never_rises(obs, later):
    t = build(obs)
    assert t.at is not None
    a, b = t.at + timedelta(seconds=later), t.at + timedelta(seconds=later + 3600)
    assert t.level(b, DIM) <= t.level(a, DIM)
    assert 0.0 <= t.level(b, DIM) < 1.0


@given(observations, offsets, strengths)
def test_evidence_never_lowers_the_level(obs, seconds, s):
    t = build(obs)
    assert t.at is not None
    when = T0 + timedelta(seconds=seconds)
    now = max(t.at, when)
    assert t.add(s, when, DIM).level(now, DIM) >= t.level(now, DIM) - 1e-12


@settings(max_examples=200)
@given(observations, st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(obs, rnd):
    """Late events (within lateness) land exactly where in-order arrival would put them."""
    in_order = build(sorted(obs))
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    any_order = build(shuffled)
    now = T0 + timedelta(days=4)
    assert any_order.at == in_order.at
    assert any_order.level(now, DIM) == pytest.approx(in_order.level(now, DIM), abs=1e-9)
    assert any_order.rate_gap(now, DIM) == pytest.approx(in_order.rate_gap(now, DIM), abs=1e-9)
    assert any_order.last == in_order.last
    assert any_order.n == in_order.n == len(obs)


def test_new_evidence_is_rising_and_quiet_is_falling():
    t = build([(0, 0.5), (3600, 0.5)])
    at = T0 + timedelta(seconds=3600)
    assert t.slope(at, DIM) == "rising"
    assert t.direction(at, DIM) == "deteriorating"
    assert t.slope(at + 2 * HL, DIM) == "falling"
    assert t.direction(at + 2 * HL, DIM) == "improving"


def test_a_rising_good_dimension_is_improving():
    t = Trend().add(0.6, T0, "gratitude")
    assert t.direction(T0, "gratitude") == "improving"


def test_only_the_last_few_observations_are_kept_verbatim():
    t = build([(i * 60, 0.1 * i) for i in range(10)])
    assert len(t.last) == 3
    assert [s for _, s in t.last] == [0.7, 0.8, 0.9]
    assert t.n == 10


def test_half_lives_and_gain_are_configurable_and_checked():
    quick = TrendConfig(half_lives={DIM: timedelta(hours=1)}, gain=1.0)
    t = Trend().add(1.0, T0, DIM, quick)
    assert t.level(T0 + timedelta(hours=1), DIM, quick) == pytest.approx(1 - math.exp(-0.5))
    with pytest.raises(ValueError, match=r"half_lives\.frustration"):
        TrendConfig(half_lives={DIM: timedelta(0)})
    with pytest.raises(ValueError, match="gain"):
        TrendConfig(gain=0)


def test_the_level_before_the_latest_evidence_is_kept():
    t = build([(0, 0.5), (60, 0.5)])
    assert t.level_before(DIM) == pytest.approx(1 - math.exp(-1.5 * t.before))
    assert t.before == pytest.approx(0.5 * 0.5 ** (60 / HL.total_seconds()))
