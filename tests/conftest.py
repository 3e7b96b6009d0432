"""Shared fixtures: a real feed server, a real Bot API emulator, a real SQLite file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifiers.rules import RuleSet, load_rules
from tests.support.bot_api import BotApiEmulator
from tests.support.feed_server import FeedServer

ROOT = Path(__file__).resolve().parent.parent
RULES_PATH = ROOT / "watch-rules.yaml"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection that leaves this machine: tests serve everything locally."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1", "::1", "localhost",
        ):  # fmt: skip
            pytest.fail(f"network access outside loopback attempted: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _no_full_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test feeds link to example.com: fetching those pages would leave loopback.
    Tests of the full-text step turn it on explicitly."""
    monkeypatch.setenv("METWATCH_FULLTEXT_MIN_CHARS", "0")


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(RULES_PATH)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def bot_api() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emulator:
        yield emulator


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'metwatch.db'}"
