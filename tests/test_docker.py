"""The container image, built and run for real.

Builds docker/Dockerfile (tag ``metwatch:test``) and runs it with ``--network host`` against
the local feed server and the local Bot API emulator of tests/support: a chat subscribes
with /start, a served feed item states a tracked finding, the alert reaches the chat, the
image's HEALTHCHECK (``metwatch healthcheck``) reports healthy, and ``docker stop`` (SIGTERM)
ends it with exit code 0 within Docker's 10 s grace period.

Needs a Docker engine. ``../shared/tools/docker-engine.sh start`` is run (it starts dockerd and
builds a python:3.11-slim stand-in, as no registry is reachable here) when
``METWATCH_DOCKER_TESTS=1`` is set (CI sets it) or when ``docker info`` works but the base image
is missing; without either, or when the engine still cannot be had, every test here is skipped
with the reason. Everything the container reaches is on loopback (host networking).

Figures are printed (run with ``-s``): image size, build time, start-up time (container
start -> first feed request) and stop time. ``METWATCH_DOCKER_NO_CACHE=1`` builds without
the layer cache, for a cold build time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.rules_for_tests import write_rules
from tests.support.bot_api import BotApiEmulator
from tests.support.feed_server import FeedServer
from tests.support.feeds import FeedItem, rss

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
ENGINE_SCRIPT = SHARED / "tools" / "docker-engine.sh"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
BASE_IMAGE = "python:3.11-slim"
TAG = "metwatch:test"
USER_ID = 10001
#: The image budget is 250 MB on python:3.11-slim (about 130 MB): 120 MB for what metwatch adds.
#: Checked on the added layers, since the local stand-in base is larger than the real one.
MAX_ADDED_BYTES = 120 * 1000 * 1000
#: Docker's default grace period between SIGTERM and SIGKILL.
STOP_GRACE = 10
#: Build arguments the Dockerfile declares, forwarded from the environment when set.
PIP_BUILD_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

CHAT = 4242
PUBLISHED = datetime(2024, 8, 15, 7, 0, tzinfo=UTC)
REPORT_TEXT = (
    "The Metropolitan Police is failing to manage sex offenders, the police inspectorate has "
    "found. Too many visits to registered sex offenders were announced in advance, inspectors "
    "said."
)
#: The article page behind the flagged item: metwatch fetches it for the full text.
REPORT_PAGE = (
    "<!doctype html><html><head><title>Met Police failing to manage sex offenders</title>"
    "</head><body><article><h1>Met Police failing to manage sex offenders, inspectorate finds"
    f"</h1><p>{REPORT_TEXT}</p>"
    + "<p>The report was published on Thursday.</p>" * 5
    + "</article></body></html>"
)


def _items(feed_server: FeedServer) -> tuple[FeedItem, FeedItem]:
    """An off-topic item and a flagged one (as in test_end_to_end), linking to local pages."""
    weather = FeedItem(
        title="Heatwave expected in London",
        link=feed_server.url("/weather"),
        guid="weather-1",
        description="The Met Office says temperatures will rise this weekend.",
        published=datetime(2024, 8, 14, 9, 0, tzinfo=UTC),
    )
    report = FeedItem(
        title="Met Police failing to manage sex offenders, inspectorate finds",
        link=feed_server.url("/met-report?utm_source=rss"),
        guid="report-1",
        description=f"<p>{REPORT_TEXT}</p>",
        published=PUBLISHED,
    )
    return weather, report


def _docker(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _engine_up() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return _docker("info", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _base_image_present() -> bool:
    return _docker("image", "inspect", BASE_IMAGE).returncode == 0


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="module")
def docker_engine() -> None:
    """A working engine with the base image, or a skip that says why there is none."""
    wanted = os.environ.get("METWATCH_DOCKER_TESTS") == "1"
    running = _engine_up()
    if not (wanted or running):
        pytest.skip(
            "no Docker engine running (docker info failed); set METWATCH_DOCKER_TESTS=1 to "
            f"start one with {ENGINE_SCRIPT} start"
        )
    if running and _base_image_present():
        return
    if not ENGINE_SCRIPT.exists():
        pytest.skip(f"no Docker engine or no {BASE_IMAGE} image, and {ENGINE_SCRIPT} is missing")
    try:
        started = subprocess.run(
            ["bash", str(ENGINE_SCRIPT), "start"], capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{ENGINE_SCRIPT} start did not finish within 900 s")
    if started.returncode != 0 or not _engine_up() or not _base_image_present():
        pytest.skip(
            f"Docker engine could not be started by {ENGINE_SCRIPT} "
            f"(exit {started.returncode}): {_tail(started.stdout + started.stderr, 10)}"
        )


@dataclass(frozen=True)
class Image:
    tag: str
    size_bytes: int
    base_bytes: int
    build_seconds: float


@pytest.fixture(scope="module")
def image(docker_engine: None) -> Image:
    build_args = [
        f"--build-arg={name}={os.environ[name]}"
        for name in PIP_BUILD_ARGS
        if os.environ.get(name) and not os.environ[name].startswith("file:")
    ]
    if os.environ.get("METWATCH_DOCKER_NO_CACHE") == "1":
        build_args.append("--no-cache")
    previous = _docker("image", "inspect", "-f", "{{.Id}}", TAG).stdout.strip()
    started = time.monotonic()
    built = _docker(
        "build", "--network", "host", "--force-rm", "-f", str(DOCKERFILE), "-t", TAG,
        *build_args, str(ROOT),
        timeout=1800,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert built.returncode == 0, f"docker build failed:\n{_tail(built.stdout + built.stderr)}"
    current, size_text = _docker("image", "inspect", "-f", "{{.Id}} {{.Size}}", TAG).stdout.split()
    if previous and previous != current:
        _docker("rmi", previous)  # the superseded image's venv layer; fails harmlessly if in use
    size = int(size_text)
    base = int(_docker("image", "inspect", "-f", "{{.Size}}", BASE_IMAGE).stdout.strip() or 0)
    cached = "Using cache" in built.stdout or " CACHED" in built.stderr
    print(
        f"\n[docker] image {TAG}: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB), of which "
        f"{(size - base) / 1e6:.1f} MB on top of {BASE_IMAGE}; "
        f"build {seconds:.1f} s ({'some layers cached' if cached else 'no cache used'})"
    )
    return Image(TAG, size, base, seconds)


def test_image_is_small_non_root_and_runtime_only(image: Image) -> None:
    added = image.size_bytes - image.base_bytes
    assert 0 < added <= MAX_ADDED_BYTES, f"metwatch adds {added / 1e6:.1f} MB to the base image"

    uid = _docker("run", "--rm", image.tag, "id", "-u")
    assert uid.returncode == 0, uid.stderr
    assert int(uid.stdout) == USER_ID != 0

    # No compiler, no pip in the venv, no tests, no sources; psycopg for the postgres profile.
    probe = _docker(
        "run", "--rm", image.tag, "sh", "-c",
        "for tool in gcc cc c++ make; do command -v $tool; done; "
        "ls /app; test ! -e /src && echo no-src; test ! -e /opt/venv/bin/pip && echo no-pip; "
        "python -c \"import importlib.util as u, psycopg; print(u.find_spec('tests'))\"",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["watch-rules.yaml", "no-src", "no-pip", "None"]

    # The default rules in the image are valid and are what METWATCH_RULES_PATH names.
    check = _docker("run", "--rm", image.tag, "metwatch", "rules", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("/app/watch-rules.yaml: ok")


def _postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.postgres
def test_image_reaches_postgres(image: Image) -> None:
    """The image has the postgres extra: SQLAlchemy connects with psycopg (nothing is written)."""
    if not _postgres_listening():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    probe = (
        "import sqlalchemy as sa; engine = sa.create_engine(" + repr(POSTGRES_URL) + "); "
        "connection = engine.connect(); print(connection.execute(sa.text('select 1')).scalar())"
    )
    connected = _docker("run", "--rm", "--network", "host", image.tag, "python", "-c", probe)
    assert connected.returncode == 0, connected.stdout + connected.stderr
    assert connected.stdout.strip() == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _started_at(name: str) -> float:
    """The container's start as a POSIX timestamp (Docker gives RFC 3339 with nanoseconds)."""
    raw = _docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip()
    seconds, _, fraction = raw.rstrip("Z").partition(".")
    start = datetime.fromisoformat(seconds).replace(tzinfo=UTC).timestamp()
    return start + float(f"0.{fraction or 0}")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _health(name: str) -> str:
    return _docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"metwatch-test-{uuid.uuid4().hex[:10]}"
    yield name
    _docker("rm", "--force", "--volumes", name)


def test_container_alerts_is_healthy_and_stops_cleanly(
    image: Image,
    tmp_path: Path,
    feed_server: FeedServer,
    bot_api: BotApiEmulator,
    container_name: str,
) -> None:
    weather, report = _items(feed_server)
    feed_server.serve(
        "/weather", "<html><body><p>Hot.</p></body></html>", content_type="text/html"
    )
    feed_server.serve("/met-report", REPORT_PAGE, content_type="text/html; charset=utf-8")
    feed_server.serve("/london.xml", rss([weather]))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(mode=0o755)
    rules_dir.chmod(0o755)  # readable by the container's uid, whatever the umask
    rules_file = write_rules(
        rules_dir,
        [{"id": "local-news", "name": "Local News", "url": feed_server.url("/london.xml"),
          "interval": 5}],
    )  # fmt: skip
    rules_file.chmod(0o644)
    # The token goes through the CLI's environment (-e NAME), never on a command line.
    env = {**os.environ, "METWATCH_TELEGRAM_TOKEN": bot_api.token}
    # Host networking: /healthz on loopback only, on a port free now (the image's HEALTHCHECK
    # runs in the container's environment, so it asks the same port).
    health_port = _free_port()
    run = _docker(
        "run", "--detach", "--name", container_name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp",
        "--health-interval", "1s",
        "--volume", f"{rules_dir}:/rules:ro",
        "--env", "METWATCH_TELEGRAM_TOKEN",
        "--env", f"METWATCH_TELEGRAM_BASE_URL={bot_api.base_url}",
        "--env", "METWATCH_RULES_PATH=/rules/watch-rules.yaml",
        "--env", "METWATCH_TICK_SECONDS=0.5",
        "--env", "METWATCH_DELIVER_SECONDS=0.5",
        # Article pages are on the local feed server: let full-text fetches reach loopback.
        "--env", "METWATCH_ALLOW_PRIVATE_ADDRESSES=true",
        "--env", "METWATCH_HEALTH_HOST=127.0.0.1",
        "--env", f"METWATCH_HEALTH_PORT={health_port}",
        image.tag,
        env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        _check_running_container(container_name, feed_server, bot_api, report, weather)
    except BaseException:
        logs = _docker("logs", container_name)
        print(f"\n[docker] logs of {container_name}:\n{_tail(logs.stdout + logs.stderr, 80)}")
        raise


def _check_running_container(
    name: str,
    feed_server: FeedServer,
    bot_api: BotApiEmulator,
    report: FeedItem,
    weather: FeedItem,
) -> None:
    # Start-up: container start -> the first request for the feed.
    _wait(lambda: feed_server.hits("/london.xml") > 0, 60, "first feed poll")
    first = feed_server.requests("/london.xml")[0].time
    first_wall = time.time() - (time.monotonic() - first)
    startup = first_wall - _started_at(name)

    bot_api.add_message(CHAT, "/start")
    welcome = bot_api.wait_for_messages(1, CHAT, timeout=30)
    assert "Subscribed" in welcome[0].text

    feed_server.serve("/london.xml", rss([report, weather]))
    served = time.monotonic()
    messages = bot_api.wait_for_messages(2, CHAT, timeout=30)
    alert_seconds = time.monotonic() - served
    alert = messages[1]
    assert "Sex-offender visits announced in advance" in alert.text
    assert "Too many visits to registered sex offenders were announced in advance" in alert.text
    assert f'href="{feed_server.url("/met-report")}"' in alert.html
    assert feed_server.hits("/met-report") > 0  # full text fetched and extracted in the image
    assert "Heatwave" not in "".join(m.text for m in messages)

    # The image's HEALTHCHECK runs `metwatch healthcheck` (every 1 s here).
    _wait(lambda: _health(name) == "healthy", 60, "health status 'healthy'")

    started = time.monotonic()
    stopped = _docker("stop", "--time", str(STOP_GRACE), name, timeout=STOP_GRACE + 30)
    stop_seconds = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    state = _docker("inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", name)
    assert state.stdout.split() == ["0", "false"], f"exit code, OOM: {state.stdout.strip()}"
    assert stop_seconds < STOP_GRACE, f"docker stop took {stop_seconds:.1f} s"

    logs = _docker("logs", name)
    output = logs.stdout + logs.stderr
    assert "Traceback" not in output, _tail(output)
    assert bot_api.token not in output
    assert len(bot_api.messages(CHAT)) == 2
    print(
        f"\n[docker] start-up (container start -> first feed request) {startup:.2f} s; "
        f"alert {alert_seconds:.2f} s after the item was served; "
        f"docker stop {stop_seconds:.2f} s, exit code 0"
    )
