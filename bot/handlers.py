"""Telegram command handlers: what subscribers can say to the bot, and the follow buttons.

Subscriber commands: /start (follow every topic, show the follow buttons), /findings,
/follow ID, /unfollow ID, /latest, /search WORDS, /stop, /help, and the delivery
preferences /pause, /resume, /quiet and /mode (``bot.preferences``). Commands
also work as channel posts (a channel's admins post them). In groups and channels
only the chat's administrators may change what it follows (``bot.permissions``).
A button press acts on the chat it was pressed in. When the bot is removed from
a chat or blocked, the chat is unsubscribed. Admin
commands are ``bot.admin``'s; this class installs them too.

Handlers only read and write subscriptions through the store; delivery is
``bot.deliver``'s job. Every piece of text from the rules file, feeds or users is
escaped (``bot.views``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from telegram import BotCommand, BotCommandScopeChat, Chat, Message, Update
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    filters,
)

from bot import admin, preferences, views
from bot.keyboards import follow_keyboard, parse_follow
from bot.permissions import REFUSAL, may_change_follows
from classifiers.rules import RuleSet
from metwatch.ports import Clock
from metwatch.store import SqlStore
from metwatch.store.subscribers import search_items, unfollow

log = logging.getLogger(__name__)
UTC_ZONE = ZoneInfo("UTC")

LATEST = 5
SEARCH_LIMIT = 10
#: (command, how to call it, what it does): the menu and /help are built from this.
SUBSCRIBER_USAGE = (
    ("start", "/start", "Follow every tracked finding"),
    ("findings", "/findings", "Pick the findings to follow"),
    ("follow", "/follow ID", "Follow one finding or topic by its id"),
    ("unfollow", "/unfollow ID", "Stop following a finding or topic"),
    ("latest", "/latest", "The five latest stories"),
    ("search", "/search WORDS", "Search the stored news"),
    *preferences.USAGE,
    ("stop", "/stop", "Stop all messages"),
    ("help", "/help", "What this bot does"),
)
SUBSCRIBER_COMMANDS = [BotCommand(name, text) for name, _, text in SUBSCRIBER_USAGE]
ADMIN_COMMANDS = [*SUBSCRIBER_COMMANDS, *admin.COMMANDS]
INTRO = (
    "<b>metwatch</b> tells you when news coverage reports the inspectorate's findings "
    "on the Metropolitan Police."
)
BAD_BUTTON = "That button is not valid any more. Send /findings for a fresh list."
_REMOVED = frozenset({ChatMemberStatus.LEFT, ChatMemberStatus.BANNED})


def help_text(*, for_admin: bool) -> str:
    lines = [INTRO, ""] + [f"{usage} – {text}" for _, usage, text in SUBSCRIBER_USAGE]
    if for_admin:
        lines += ["", "<b>Admin</b>"] + [f"/{c.command} – {c.description}" for c in admin.COMMANDS]
    return "\n".join(lines)


class BotCommands:
    """The handlers, bound to the store and the current rules."""

    def __init__(
        self,
        store: SqlStore,
        rules: Callable[[], RuleSet],
        *,
        admin_ids: Sequence[int],
        clock: Clock,
        reload: admin.Reload | None = None,
        tz: ZoneInfo = UTC_ZONE,
    ) -> None:
        self.store = store
        self.rules = rules
        self.admin_ids = frozenset(admin_ids)
        self.clock = clock
        self.preferences = preferences.PreferenceCommands(
            store, clock=clock, tz=tz, gate=self._changeable
        )
        self.admin = admin.AdminCommands(
            store, rules, admin_ids=admin_ids, clock=clock, reload=reload
        )

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        # Messages and channel posts; an edited old command is not run again.
        fresh = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
        for name, callback in (
            ("start", self.start), ("stop", self.stop), ("help", self.help),
            ("findings", self.findings), ("follow", self.follow),
            ("unfollow", self.unfollow), ("latest", self.latest), ("search", self.search),
            *self.preferences.handlers(),
        ):  # fmt: skip
            application.add_handler(CommandHandler(name, callback, fresh))
        # Every button press comes here, so a forged one of any shape is answered.
        application.add_handler(CallbackQueryHandler(self.button))
        application.add_handler(
            ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        self.admin.install(application)

    async def register_commands(self, application: Application) -> None:  # type: ignore[type-arg]
        """Everyone sees the subscriber commands; admins, in their own chats, also admin ones."""
        await application.bot.set_my_commands(SUBSCRIBER_COMMANDS)
        for chat_id in self.admin_ids:
            try:
                await application.bot.set_my_commands(
                    ADMIN_COMMANDS, scope=BotCommandScopeChat(chat_id)
                )
            except TelegramError as e:  # e.g. an admin who never talked to the bot
                log.warning("cannot set admin commands for chat %s: %s", chat_id, e.message)

    # -- subscribing ---------------------------------------------------------------------

    async def _changeable(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> Chat | None:
        """The chat, when the sender may change what it follows; else refuse politely."""
        chat, message = update.effective_chat, update.effective_message
        if chat is None or message is None:
            return None
        if await may_change_follows(update, context.bot):
            return chat
        await message.reply_text(REFUSAL)
        return None

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Subscribe the chat to every topic and show the follow buttons."""
        chat = await self._changeable(update, context)
        if chat is None:
            return
        rules = self.rules()
        self.store.subscribe(
            chat.id, [t.id for t in rules.topics], self.clock(), chat_type=chat.type
        )
        keyboard = follow_keyboard(rules, self.store.follows(chat.id))
        await _message(update).reply_html(views.welcome(rules), reply_markup=keyboard)

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self._changeable(update, context)
        if chat is None:
            return
        self.store.unsubscribe(chat.id)
        await _message(update).reply_text("Unsubscribed. Send /start to subscribe again.")

    async def findings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every topic and finding with a follow button (anyone may look)."""
        chat = update.effective_chat
        if chat is None or update.effective_message is None:
            return
        rules = self.rules()
        keyboard = follow_keyboard(rules, self.store.follows(chat.id))
        await _message(update).reply_html(views.findings_list(rules), reply_markup=keyboard)

    async def follow(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self._changeable(update, context)
        target = await self._target(update, context, "follow") if chat else None
        if chat is None or target is None:
            return
        self.store.subscribe(chat.id, [target], self.clock(), chat_type=chat.type)
        title = views.target_title(self.rules(), target)
        await _message(update).reply_html(f"Following <b>{views.esc(title)}</b>.")

    async def unfollow(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = await self._changeable(update, context)
        target = await self._target(update, context, "unfollow") if chat else None
        if chat is None or target is None:
            return
        rules = self.rules()
        was = unfollow(self.store, chat.id, target)
        title = views.esc(views.target_title(rules, target))
        text = (
            f"No longer following <b>{title}</b>."
            if was
            else f"You were not following <b>{title}</b>."
        )
        via = self._covering_topic(rules, chat.id, target)
        if via:
            text += f"\nYou still get its stories through <b>{views.esc(via)}</b>."
        await _message(update).reply_html(text)

    async def _target(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE, command: str
    ) -> str | None:
        """The one id argument, when the rules know it; else explain what to send."""
        rules = self.rules()
        args = context.args or []
        if len(args) == 1 and args[0].lower() in rules.follow_targets:
            return args[0].lower()
        given = f"I don't know <code>{views.esc(args[0][:60])}</code>. " if args else ""
        await _message(update).reply_html(
            f"Sorry, {given}Send <code>/{command} ID</code> with one of: {views.valid_ids(rules)}"
        )
        return None

    def _covering_topic(self, rules: RuleSet, chat_id: int, target: str) -> str | None:
        """The title of a followed topic that still brings ``target``'s stories, if any."""
        finding = rules.finding(target)
        if finding is None or finding.topic_id not in self.store.follows(chat_id):
            return None
        topic = rules.topic(finding.topic_id)
        return topic.title if topic else None

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A follow button: toggle the follow for the chat it was pressed in."""
        query = update.callback_query
        if query is None:
            return
        rules = self.rules()
        target = parse_follow(query.data, rules)
        if target is None or query.message is None:
            log.info("refused callback data %r", (query.data or "")[:64])
            await query.answer(BAD_BUTTON, show_alert=True)
            return
        if not await may_change_follows(update, context.bot):
            await query.answer(REFUSAL, show_alert=True)
            return
        chat = query.message.chat
        answer = self._toggle(rules, chat, target)
        keyboard = follow_keyboard(rules, self.store.follows(chat.id))
        try:
            await query.edit_message_reply_markup(keyboard)
        except BadRequest as e:
            if "not modified" not in e.message.lower():
                log.warning("cannot update the buttons in chat %s: %s", chat.id, e.message)
        await query.answer(answer)

    def _toggle(self, rules: RuleSet, chat: Chat, target: str) -> str:
        """Flip the follow; returns the short plain-text answer for the button press."""
        title = views.shorten(views.target_title(rules, target), 100)
        if target not in self.store.follows(chat.id):
            self.store.subscribe(chat.id, [target], self.clock(), chat_type=chat.type)
            return f"Following: {title}"
        unfollow(self.store, chat.id, target)
        via = self._covering_topic(rules, chat.id, target)
        return f"Unfollowed: {title}" + (f" (still sent through {via})" if via else "")

    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot was removed from a chat, or blocked: stop sending there."""
        change = update.my_chat_member
        if change is None or change.new_chat_member.status not in _REMOVED:
            return
        status = change.new_chat_member.status
        log.info("bot %s in chat %s: unsubscribing", status, change.chat.id)
        self.store.unsubscribe(change.chat.id, reason=f"bot {status} in chat")

    # -- reading -------------------------------------------------------------------------

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is not None and update.effective_message is not None:
            await _message(update).reply_html(help_text(for_admin=chat.id in self.admin_ids))

    async def latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            stories = self.store.recent_stories(LATEST)
            await _message(update).reply_html(views.latest(stories))

    async def search(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None:
            return
        words = [w for w in (context.args or []) if w]
        if not words:
            await _message(update).reply_html("Send <code>/search words to look for</code>.")
            return
        found = search_items(self.store, words, SEARCH_LIMIT)
        await _message(update).reply_html(views.search_results(words, found))


def _message(update: Update) -> Message:
    message = update.effective_message
    assert message is not None  # handlers check before calling
    return message
