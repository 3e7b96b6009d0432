"""Settings: one declarative, validated object built once at start-up.

Every field is read from an environment variable ``METWATCH_<NAME>`` (or a
``.env`` file in the working directory). Secrets also accept
``METWATCH_<NAME>_FILE`` (a path, as Docker secrets provide). A wrong value
stops start-up with a ``SettingsError`` naming the variable. The README's
settings table is checked against this class by ``tests/test_docs.py``.

Nothing reads settings globally: the composition root passes values down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from metwatch import __version__
from metwatch.errors import SettingsError

ENV_PREFIX = "METWATCH_"
_SECRET_FIELDS = ("telegram_token",)


class Settings(BaseSettings):
    """metwatch configuration (see README "Settings")."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    telegram_token: SecretStr | None = Field(
        default=None, description="Bot token from @BotFather; without it alerts go to the console."
    )
    telegram_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base URL (a local Bot API server, or a test emulator).",
    )
    database_url: str = Field(
        default="sqlite:///metwatch.db",
        description="SQLAlchemy URL: a SQLite file by default, postgresql+psycopg://... "
        "when several instances share the work.",
    )
    rules_path: Path = Field(default=Path("watch-rules.yaml"), description="The watch rules file.")
    admin_chat_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Telegram chat ids allowed admin commands.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging level."
    )
    tick_seconds: float = Field(
        default=1.0, gt=0, description="How often the scheduler looks for due sources."
    )
    deliver_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the outbox is drained (also woken by new alerts).",
    )
    http_timeout: float = Field(
        default=20.0, gt=0, description="Seconds before a fetch times out."
    )
    max_response_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="A response larger than this is aborted."
    )
    max_concurrent_fetches: int = Field(
        default=8, ge=1, description="Fetches in flight at once, over all hosts."
    )
    max_fetches_per_host: int = Field(
        default=2, ge=1, description="Fetches in flight at once to one host."
    )
    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures before a source is marked failing."
    )
    max_backoff_seconds: int = Field(
        default=6 * 3600, ge=60, description="Longest wait between retries of a failing source."
    )
    allow_private_addresses: bool = Field(
        default=False,
        description="Let article fetches reach loopback/private addresses (tests only).",
    )
    obey_robots_txt: bool = Field(
        default=True,
        description="Fetch article pages (for full text) only where the site's robots.txt "
        "allows metwatch, no faster than its Crawl-delay.",
    )
    fulltext_min_chars: int = Field(
        default=400,
        ge=0,
        description="A new item with less text than this (and a link) gets its article "
        "page fetched once for the full text; 0 turns this off.",
    )
    worker_processes: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Worker processes for parsing and normalising feeds, classifying new "
        "items, fingerprints and summaries: another core for that work, and a hostile "
        "feed kills a worker, not metwatch; 0 runs it all in the main process.",
    )
    worker_call_timeout: float = Field(
        default=60,
        gt=0,
        le=3600,
        description="Seconds one call may run in a worker process (parsing a body, "
        "classifying a poll's new items); one that runs longer has its worker stopped "
        "and fails that poll, so a giant or hostile feed cannot hold up the others.",
    )
    cluster_window_days: float = Field(
        default=3.0,
        gt=0,
        description="Coverage within this many days of a story's first can join it.",
    )
    cluster_min_similarity: float = Field(
        default=0.3, ge=0, le=1, description="Text cosine needed when findings are shared."
    )
    cluster_min_shared_findings: int = Field(
        default=2, ge=1, description="Shared findings that, with similar text, join a story."
    )
    cluster_min_similarity_alone: float = Field(
        default=0.7, ge=0, le=1, description="Text cosine that joins a story on its own."
    )
    cluster_syndication_jaccard: float = Field(
        default=0.8, ge=0, le=1, description="Shingle resemblance above which text is a copy."
    )
    timezone: str = Field(
        default="Europe/London",
        description="Local time zone for quiet hours, digests and times shown to subscribers.",
    )
    health_host: str = Field(
        default="127.0.0.1", description="Address of the /healthz and /metrics endpoint."
    )
    health_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of /healthz and /metrics (0: any free)."
    )
    health_max_poll_age: int = Field(
        default=3600, ge=60, description="/healthz fails when no poll succeeded for this long."
    )
    user_agent: str = Field(
        default=f"metwatch/{__version__} (+https://github.com/metwatch/metwatch)",
        description="User-Agent sent to news sites.",
    )

    @field_validator("admin_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/London)"
            ) from e
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def token(self) -> str | None:
        return self.telegram_token.get_secret_value() if self.telegram_token else None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; raise ``SettingsError`` naming the variable.

    Raises:
        SettingsError: a variable has a value of the wrong kind, or a ``*_FILE``
            secret cannot be read.
    """
    for name in _SECRET_FIELDS:
        file_var = f"{ENV_PREFIX}{name.upper()}_FILE"
        if name not in overrides and os.environ.get(file_var):
            try:
                overrides[name] = Path(os.environ[file_var]).read_text().strip()
            except OSError as e:
                raise SettingsError(f"{file_var}: cannot read {e.filename}: {e.strerror}") from e
    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            var = ENV_PREFIX + str(err["loc"][0]).upper() if err["loc"] else "settings"
            problems.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


def describe(settings: Settings) -> dict[str, str]:
    """Effective settings for ``metwatch config``, secrets masked."""
    shown: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        elif value is None:
            value = ""
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value)
        shown[ENV_PREFIX + name.upper()] = str(value)
    return shown
