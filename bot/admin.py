"""Admin commands: /status, /sources, /broadcast and /reload, for admin chat ids only.

Admins are the chat ids given at start-up (``METWATCH_ADMIN_CHAT_IDS``); anyone
else gets a polite refusal and never sees these commands in the menu.
/broadcast sends the admin's text, as plain text, to every active subscriber
that is not paused, and reports how many got it; a chat that has blocked or
removed the bot is unsubscribed on the way. /reload calls the injected reload
function and shows its summary line.

Does not decide subscriber permissions (``bot.permissions``) and does not
reload anything itself.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from telegram import Bot, BotCommand, Update
from telegram.ext import Application, CommandHandler, ContextTypes, filters

from bot import views
from bot.notifier import TelegramNotifier
from classifiers.rules import RuleSet
from metwatch.errors import DeliveryError, RecipientGone
from metwatch.ports import Clock
from metwatch.store import SqlStore
from metwatch.store.subscribers import active_chats, is_paused

log = logging.getLogger(__name__)

Reload = Callable[[], Awaitable[str]]
#: Telegram's limit for one message's text.
MAX_BROADCAST = 4096

COMMANDS = [
    BotCommand("status", "Sources, outbox and rules (admin)"),
    BotCommand("sources", "Each source's health (admin)"),
    BotCommand("broadcast", "Send a text to every subscriber (admin)"),
    BotCommand("reload", "Reload the watch rules (admin)"),
]


@dataclass
class BroadcastReport:
    sent: int = 0
    paused: int = 0
    gone: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"Broadcast sent to {self.sent} chat(s); skipped {self.paused} paused; "
            f"{self.gone} had removed the bot (unsubscribed); {self.failed} failed."
        )


class AdminCommands:
    """The admin handlers, bound to the store, the rules and the admin chat ids."""

    def __init__(
        self,
        store: SqlStore,
        rules: Callable[[], RuleSet],
        *,
        admin_ids: Sequence[int],
        clock: Clock,
        reload: Reload | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.admin_ids = frozenset(admin_ids)
        self.clock = clock
        self.reload_rules = reload

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        only_messages = filters.UpdateType.MESSAGE
        application.add_handler(CommandHandler("status", self.status, only_messages))
        application.add_handler(CommandHandler("sources", self.sources, only_messages))
        # A broadcast can take minutes: it must not hold up other chats' commands.
        application.add_handler(
            CommandHandler("broadcast", self.broadcast, only_messages, block=False)
        )
        application.add_handler(CommandHandler("reload", self.reload, only_messages))

    async def _allowed(self, update: Update, command: str) -> bool:
        chat, message = update.effective_chat, update.effective_message
        if chat is None or message is None:
            return False
        if chat.id in self.admin_ids:
            return True
        await message.reply_text(f"Sorry, /{command} is for the bot's administrators.")
        return False

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Source health, outbox counts and the rules version."""
        if not await self._allowed(update, "status"):
            return
        text = views.status(
            self.store.source_health(), self.store.outbox_counts(), self.rules().version,
            self.clock(),
        )  # fmt: skip
        for part in views.messages(text):
            await _reply(update, part)

    async def sources(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Each enabled source: state, last success, errors, items seen, next poll."""
        if not await self._allowed(update, "sources"):
            return
        for part in views.messages(views.sources(self.store.source_health(), self.clock())):
            await _reply(update, part)

    async def broadcast(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Send the text after /broadcast to every active, unpaused subscriber."""
        if not await self._allowed(update, "broadcast"):
            return
        text = _text_after_command(update)
        if not text:
            await _reply(update, "Send <code>/broadcast your text</code>.")
            return
        if len(text) > MAX_BROADCAST:
            await _reply(
                update, f"That is {len(text)} characters; Telegram takes {MAX_BROADCAST}."
            )
            return
        report = await self.send_to_all(context.bot, text)
        await _reply(update, html.escape(report.summary()))

    async def send_to_all(self, bot: Bot, text: str) -> BroadcastReport:
        """Send ``text`` (shown exactly as written) to every active, unpaused chat."""
        notifier, report = TelegramNotifier(bot), BroadcastReport()
        for chat_id in active_chats(self.store):
            if is_paused(self.store, chat_id, self.clock()):
                report.paused += 1
                continue
            try:
                await notifier.send(chat_id, html.escape(text))
            except RecipientGone as e:
                self.store.unsubscribe(chat_id, reason=str(e))
                report.gone += 1
            except DeliveryError as e:
                log.warning("broadcast to chat %s failed: %s", chat_id, e)
                report.failed += 1
            else:
                report.sent += 1
        log.info("broadcast: %s", report.summary())
        return report

    async def reload(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Reload the rules through the injected function and show its summary."""
        if not await self._allowed(update, "reload"):
            return
        if self.reload_rules is None:
            await _reply(update, "Hot reload is not configured; restart metwatch instead.")
            return
        try:
            summary = await self.reload_rules()
        except Exception as e:  # the admin must hear about it; metwatch keeps running
            log.exception("reload failed")
            await _reply(update, f"Reload failed: {html.escape(str(e))}")
            return
        await _reply(update, html.escape(summary))


def _text_after_command(update: Update) -> str:
    """The message text after ``/command`` (line breaks kept), or ""."""
    message = update.effective_message
    if message is None or not message.text:
        return ""
    parts = message.text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


async def _reply(update: Update, text: str) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_html(text)
