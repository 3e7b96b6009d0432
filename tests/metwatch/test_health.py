"""/healthz turns unhealthy when the scheduler stalls, the database is gone or polls fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from metwatch.health import HealthState, Metrics, serve_health

START = datetime(2024, 8, 15, 12, 0, tzinfo=UTC)


def test_checks() -> None:
    state = HealthState(started=START, max_poll_age=timedelta(hours=1), tick_seconds=5)
    assert state.checks(START, None, True)["scheduler"] is False  # never ticked
    state.last_tick = START
    assert all(state.checks(START + timedelta(seconds=10), None, True).values())  # grace
    later = START + timedelta(hours=2)
    state.last_tick = later
    assert state.checks(later, None, True)["recent_poll"] is False
    assert state.checks(later, later - timedelta(minutes=5), True)["recent_poll"] is True
    assert state.checks(later, later, False)["database"] is False
    assert state.checks(later + timedelta(minutes=5), later, True)["scheduler"] is False


def test_endpoint_answers_503_with_the_failing_check() -> None:
    server = serve_health(
        "127.0.0.1", 0, Metrics(), lambda: {"scheduler": True, "database": False}
    )
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/healthz")
        assert answer.status_code == 503
        assert answer.json() == {"status": "unhealthy", "scheduler": True, "database": False}
        missing = httpx.get(f"http://127.0.0.1:{server.server_port}/nope")
        assert missing.status_code == 404
    finally:
        server.shutdown()
        server.server_close()
