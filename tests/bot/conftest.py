"""Fixtures shared by the bot tests."""

from tests.bot.test_commands import bot  # noqa: F401 (the running bot, shared)
