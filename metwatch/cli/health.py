"""``metwatch healthcheck``: kept light, because the container runs it every 30 s."""

from __future__ import annotations

import sys

import click
import httpx

from metwatch.cli.common import echo, settings_from_env


@click.command()
def healthcheck() -> None:
    """Exit 0 when the running service's /healthz is healthy (container HEALTHCHECK)."""
    settings = settings_from_env()
    host = "127.0.0.1" if settings.health_host in ("0.0.0.0", "::") else settings.health_host  # noqa: S104
    url = f"http://{host}:{settings.health_port}/healthz"
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.HTTPError as e:
        echo(f"unhealthy: cannot reach {url}: {e}", err=True)
        sys.exit(1)
    echo(answer.text)
    if answer.status_code != 200:
        sys.exit(1)
