"""Telegram command handlers: what subscribers and admins can say to the bot.

Subscriber commands: /start (follow every topic), /stop, /help, /findings.
Admin commands (chat ids from settings only): /status. Handlers only read and
write subscriptions through the store; delivery is ``bot.deliver``'s job.
Every piece of text from the rules file or feeds is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.ext import Application, CommandHandler, ContextTypes

from classifiers.rules import RuleSet
from metwatch.models import SourceHealth
from metwatch.ports import Clock
from metwatch.store import SqlStore

HELP = (
    "<b>metwatch</b> tells you when news coverage reports the inspectorate's findings "
    "on the Metropolitan Police.\n\n"
    "/start – follow all tracked findings\n"
    "/findings – list the tracked findings\n"
    "/stop – stop all messages\n"
    "/help – this message"
)
SUBSCRIBER_COMMANDS = [
    BotCommand("start", "Follow all tracked findings"),
    BotCommand("findings", "List the tracked findings"),
    BotCommand("stop", "Stop all messages"),
    BotCommand("help", "What this bot does"),
]
ADMIN_COMMANDS = [*SUBSCRIBER_COMMANDS, BotCommand("status", "Sources, outbox and rules (admin)")]


class BotCommands:
    """The handlers, bound to the store and the current rules."""

    def __init__(
        self,
        store: SqlStore,
        rules: Callable[[], RuleSet],
        *,
        admin_ids: Sequence[int],
        clock: Clock,
    ) -> None:
        self.store = store
        self.rules = rules
        self.admin_ids = frozenset(admin_ids)
        self.clock = clock

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        for name, callback in (
            ("start", self.start),
            ("stop", self.stop),
            ("help", self.help),
            ("findings", self.findings),
            ("status", self.status),
        ):
            application.add_handler(CommandHandler(name, callback))

    async def register_commands(self, application: Application) -> None:  # type: ignore[type-arg]
        """Show subscribers their commands; admins (in their own chats) also see /status."""
        await application.bot.set_my_commands(SUBSCRIBER_COMMANDS)
        for chat_id in self.admin_ids:
            await application.bot.set_my_commands(
                ADMIN_COMMANDS, scope=BotCommandScopeChat(chat_id)
            )

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Subscribe the chat to every topic (and so every finding)."""
        chat = update.effective_chat
        if chat is None or update.effective_message is None:
            return
        topics = [t.id for t in self.rules().topics]
        self.store.subscribe(chat.id, topics, self.clock(), chat_type=chat.type)
        n = len(self.rules().findings)
        await update.effective_message.reply_html(
            f"Subscribed. You will get one message per new story that reports any of the "
            f"{n} tracked findings.\nSend /findings to see them, /stop to stop."
        )

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None or update.effective_message is None:
            return
        self.store.unsubscribe(chat.id)
        await update.effective_message.reply_text("Unsubscribed. Send /start to subscribe again.")

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_html(HELP)

    async def findings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None:
            return
        rules = self.rules()
        lines = ["<b>Tracked findings</b>"]
        for f in rules.findings:
            lines.append(
                f"• <b>{html.escape(f.title)}</b> (<code>{html.escape(f.id)}</code>)\n"
                f"  {html.escape(f.description)}"
            )
        await update.effective_message.reply_html("\n".join(lines))

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Admin only: source health, outbox and rules version."""
        chat = update.effective_chat
        message = update.effective_message
        if chat is None or message is None:
            return
        if chat.id not in self.admin_ids:
            await message.reply_text("Sorry, /status is for the bot's administrators.")
            return
        await message.reply_html(
            render_status(self.store.source_health(), self.store.outbox_counts(),
                          self.rules().version, self.clock())
        )  # fmt: skip


def render_status(
    health: Sequence[SourceHealth], outbox: dict[str, int], rules_version: str, now: datetime
) -> str:
    lines = [f"<b>Rules</b> {html.escape(rules_version)}"]
    lines.append(
        "<b>Outbox</b> " + (", ".join(f"{k}: {v}" for k, v in sorted(outbox.items())) or "empty")
    )
    lines.append("<b>Sources</b>")
    for h in health:
        state = "FAILING" if h.failing else ("ok" if h.error_count == 0 else "retrying")
        last = f"{h.last_success:%d %b %H:%M}" if h.last_success else "never"
        line = f"• {html.escape(h.name)} ({html.escape(h.id)}): {state}, last success {last}"
        if h.last_error:
            line += f", last error: {html.escape(h.last_error)}"
        lines.append(line)
    return "\n".join(lines)
