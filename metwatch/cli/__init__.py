"""The ``metwatch`` command.

    run (default) | poll --once | sources | preview | stories | config | export | import
    db upgrade | classify | replay | backtest | rules check | healthcheck

Subcommands are loaded on first use (click's lazy-group recipe), so a light
command such as ``healthcheck``, which the container runs every 30 s, does not
import the whole pipeline. Errors from metwatch become one line on stderr, exit 2.
"""

from __future__ import annotations

import importlib

import click

#: Command name -> "module:attribute" under metwatch.cli.
COMMANDS = {
    "run": "service:run",
    "poll": "service:poll",
    "sources": "service:sources",
    "preview": "preview:preview",
    "stories": "service:stories",
    "config": "service:config",
    "export": "service:export_state",
    "import": "service:import_state",
    "db": "service:db",
    "classify": "articles:classify",
    "replay": "articles:replay",
    "backtest": "articles:backtest",
    "rules": "rules:rules",
    "healthcheck": "health:healthcheck",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(f"metwatch.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, invoke_without_command=True)
@click.version_option(package_name="metwatch")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Watch news sources for coverage of tracked findings; tell Telegram subscribers."""
    if ctx.invoked_subcommand is None:
        run = cli.get_command(ctx, "run")
        assert run is not None
        ctx.invoke(run)


def main() -> None:
    cli()
