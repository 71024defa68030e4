"""The turn lifecycle's timings and steps, without a server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from indexchat.services.turns import TIMINGS, TurnTimings


def test_the_default_timings_let_a_turn_miss_two_heartbeats() -> None:
    assert TIMINGS.stale.total_seconds() >= 3 * TIMINGS.heartbeat_seconds
    assert TIMINGS.heartbeat_seconds >= TIMINGS.cancel_poll_seconds


def test_timings_where_a_live_turn_could_go_stale_are_refused() -> None:
    with pytest.raises(ValueError, match="three missed heartbeats"):
        TurnTimings(stale=timedelta(seconds=5), heartbeat_seconds=3.0)
    with pytest.raises(ValueError, match="cancel poll"):
        TurnTimings(heartbeat_seconds=0.5, cancel_poll_seconds=1.0)
