from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tactful.state.trend import Trend

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_trend_halves_every_half_life():
    t = Trend().update(0.8, T0, DAY)
    assert t.value_at(T0, DAY) == 0.8
    assert abs(t.value_at(T0 + DAY, DAY) - 0.4) < 1e-9
    assert abs(t.value_at(T0 + 2 * DAY, DAY) - 0.2) < 1e-9


def test_evidence_accumulates_but_stays_below_one():
    t = Trend()
    for _ in range(50):
        t = t.update(0.5, T0, DAY)
    assert 0.99 < t.value <= 1.0
    assert Trend().update(0.5, T0, DAY).update(0.5, T0, DAY).value == 0.75


def test_update_decays_first_and_remembers_the_previous_level():
    t = Trend().update(0.8, T0, DAY).update(0.0, T0 + DAY, DAY)
    assert abs(t.value - 0.4) < 1e-9
    assert abs(t.previous - 0.4) < 1e-9


def test_a_late_event_does_not_move_the_clock_backwards():
    t = Trend().update(0.5, T0 + DAY, DAY).update(0.5, T0, DAY)
    assert t.at == T0 + DAY


def test_strength_is_clamped():
    assert Trend().update(7.0, T0, DAY).value == 1.0
    assert Trend().update(-1.0, T0, DAY).value == 0.0
