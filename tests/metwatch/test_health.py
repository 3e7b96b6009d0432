"""/healthz turns unhealthy when the scheduler stalls, the database is gone or polls fail."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from metwatch.health import HealthState, Metrics, serve_health
from metwatch.logs import configure_logging

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


def test_json_logs_are_one_object_per_line_with_the_token_redacted(
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = "555:json-log-secret"
    configure_logging("INFO", [token], json_format=True)
    try:
        logging.getLogger("metwatch.test").info(
            "GET https://api.example/bot%s/getMe", token, extra={"event": "poll", "source": "s"}
        )
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "GET https://api.example/bot<redacted>/getMe"
    assert (line["level"], line["event"], line["source"]) == ("INFO", "poll", "s")
