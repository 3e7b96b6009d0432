"""Operator endpoints: ``/healthz`` and ``/metrics`` (Prometheus text format).

A small threaded HTTP server beside the asyncio loop. ``/metrics`` renders the
service's own registry (one per Service, so tests can run several);
``/healthz`` answers 200 when the scheduler is ticking, the database answers
and a source was polled successfully recently (or the service only just
started), else 503 with the failing checks in the JSON body.

Metrics are recorded from what the stages return (poll results, drain
reports), so the stages themselves know nothing of Prometheus.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class Metrics:
    """The metwatch metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("metwatch_polls", "Source polls", ["source", "outcome"], registry=r)
        self.items = Counter("metwatch_items", "New items stored", ["source"], registry=r)
        self.matches = Counter("metwatch_matches", "Matches per finding", ["finding"], registry=r)
        self.deliveries = Counter(
            "metwatch_deliveries", "Deliveries by outcome", ["outcome"], registry=r
        )
        self.telegram_429 = Counter(
            "metwatch_telegram_rate_limited", "Telegram 429 answers", registry=r
        )
        self.outbox = Gauge("metwatch_outbox", "Outbox rows by status", ["status"], registry=r)
        self.poll_seconds = Histogram(
            "metwatch_tick_seconds", "Time to poll the due sources", registry=r
        )
        self.delivery_seconds = Histogram(
            "metwatch_drain_seconds", "Time to drain the outbox", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class HealthState:
    """What /healthz judges; the Service keeps it up to date."""

    started: datetime
    max_poll_age: timedelta
    last_tick: datetime | None = None
    tick_seconds: float = 5.0
    #: Whether the last batch of polls to end failed (the database, not a source):
    #: ticks go on starting polls, but none gets recorded.
    polls_failing: bool = False

    def checks(
        self, now: datetime, last_success: datetime | None, database_ok: bool
    ) -> dict[str, bool]:
        tick_limit = timedelta(seconds=max(self.tick_seconds * 3, 30))
        ticking = self.last_tick is not None and now - self.last_tick <= tick_limit
        ticking = ticking and not self.polls_failing
        fresh = (last_success is not None and now - last_success <= self.max_poll_age) or (
            now - self.started <= self.max_poll_age
        )
        return {"scheduler": ticking, "database": database_ok, "recent_poll": fresh}


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] == "/metrics":
            self._send(200, self.server.metrics.render(), CONTENT_TYPE_LATEST)
        elif self.path.split("?")[0] == "/healthz":
            checks = self.server.checks()
            status = 200 if all(checks.values()) else 503
            body = json.dumps({"status": "ok" if status == 200 else "unhealthy", **checks})
            self._send(status, body.encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # one line per scrape would drown the useful logs


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], metrics: Metrics, checks: Callable[[], dict[str, bool]]
    ) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.checks = checks


def serve_health(
    host: str, port: int, metrics: Metrics, checks: Callable[[], dict[str, bool]]
) -> HealthServer:
    """Start the endpoint server in a daemon thread; call ``shutdown()`` to stop it."""
    server = HealthServer((host, port), metrics, checks)
    threading.Thread(target=server.serve_forever, name="metwatch-health", daemon=True).start()
    log.info("health and metrics on http://%s:%d/healthz and /metrics", host, server.server_port)
    return server
