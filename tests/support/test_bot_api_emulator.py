"""Tests of the Bot API emulator, driven by the real python-telegram-bot over HTTP.

They check the support code only (tests/support/bot_api.py); metwatch's bot is tested
elsewhere. A few tests post raw HTTP to cover request encodings PTB does not produce.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from .bot_api import BotApiEmulator, HtmlParseError, parse_html

PRIVATE = 4242
GROUP = -100777


@pytest.fixture
def emu() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as running:
        yield running
        assert running.errors == []


@pytest_asyncio.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url) as running:
        yield running


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data=data)]])


def post_raw(
    emu: BotApiEmulator,
    method: str,
    body: bytes,
    content_type: str,
    query: str = "",
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST an arbitrary body; returns (HTTP status, decoded JSON answer)."""
    url = f"{emu.base_url}{token or emu.token}/{method}{'?' + query if query else ''}"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# -- identity and plumbing -----------------------------------------------------------


@pytest.mark.asyncio
async def test_get_me_describes_the_bot(bot: Bot, emu: BotApiEmulator) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456, True, "metwatch_test_bot")
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/bot"
    assert emu.calls("getMe")


@pytest.mark.asyncio
async def test_wrong_token_is_invalid_token(emu: BotApiEmulator) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("123456:wrong", base_url=emu.base_url):
            pass
    assert emu.requests == []


@pytest.mark.asyncio
async def test_unknown_method_is_not_found(bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendPhotoAlbumOfCats", api_kwargs={"chat_id": 1})


@pytest.mark.asyncio
async def test_unavailable_server_is_a_network_error_until_restored(
    bot: Bot, emu: BotApiEmulator
) -> None:
    emu.set_unavailable(True)
    with pytest.raises(NetworkError) as caught:
        await bot.send_message(PRIVATE, "hello")
    assert type(caught.value) is NetworkError
    assert "Bad Gateway" in str(caught.value)

    emu.set_unavailable(False)
    assert (await bot.send_message(PRIVATE, "hello")).text == "hello"


def test_token_never_reaches_stdout_or_stderr(
    emu: BotApiEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    assert post_raw(emu, "getMe", b"", "application/json")[0] == 200
    assert post_raw(emu, "noSuchMethod", b"", "application/json")[0] == 404
    assert post_raw(emu, "getMe", b"", "application/json", token="1:bad")[0] == 401

    out, err = capfd.readouterr()
    assert "TEST-secret" not in out + err


# -- sendMessage and HTML ------------------------------------------------------------


@pytest.mark.asyncio
async def test_send_message_html_gives_plain_text_and_utf16_entities(
    bot: Bot, emu: BotApiEmulator
) -> None:
    html = '<b>Alert</b> 😀 <i>MET</i> &amp; <a href="https://example.com">link</a>'

    message = await bot.send_message(PRIVATE, html, parse_mode="HTML")

    assert message.text == "Alert 😀 MET & link"
    # The emoji is two UTF-16 code units, so everything after it shifts by 2, not 1.
    assert [(e.type, e.offset, e.length, e.url) for e in message.entities] == [
        ("bold", 0, 5, None),
        ("italic", 9, 3, None),
        ("text_link", 15, 4, "https://example.com/"),
    ]
    assert message.from_user is not None
    assert message.from_user.id == emu.bot_id
    [stored] = emu.messages(PRIVATE)
    assert (stored.message_id, stored.text, stored.html, stored.parse_mode) == (
        message.message_id,
        message.text,
        html,
        "HTML",
    )


@pytest.mark.asyncio
async def test_send_message_records_options_and_replies(bot: Bot, emu: BotApiEmulator) -> None:
    emu.add_message(PRIVATE, "what's new?")
    first = await bot.send_message(
        PRIVATE,
        "plain",
        disable_notification=True,
        reply_markup=keyboard("more"),
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_parameters=ReplyParameters(message_id=1),
    )

    assert first.message_id == 2  # ids are shared with the user's message in the chat
    assert first.reply_to_message is not None
    assert first.reply_to_message.text == "what's new?"
    assert first.reply_markup == keyboard("more")
    stored = emu.messages()[0]
    assert stored.disable_notification is True
    assert stored.reply_to_message_id == 1
    assert stored.link_preview_options == {"is_disabled": True}
    assert stored.reply_markup == keyboard("more").to_dict()

    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(PRIVATE, "x", reply_parameters=ReplyParameters(message_id=99))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("héllo a < b", 'Unsupported start tag "" at byte offset 9'),
        ("5&nbsp;km", 'Unsupported HTML entity "&nbsp;" at byte offset 1'),
        ("<a>no href</a>", 'Tag "a" must have a non-empty attribute "href" at byte offset 0'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler"'),
    ],
)
async def test_malformed_html_is_rejected_like_telegram(
    bot: Bot, emu: BotApiEmulator, html: str, reason: str
) -> None:
    with pytest.raises(BadRequest, match="(?i)can't parse entities") as caught:
        await bot.send_message(PRIVATE, html, parse_mode="HTML")

    # PTB drops "Bad Request: " and re-capitalises the rest, so compare case-insensitively.
    assert reason.lower() in caught.value.message.lower()
    with pytest.raises(HtmlParseError) as direct:
        parse_html(html)
    assert reason in str(direct.value)
    assert emu.messages() == []


@pytest.mark.asyncio
async def test_length_limit_counts_text_after_entity_parsing(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(PRIVATE, "a" * 4097)

    exact = await bot.send_message(PRIVATE, "a" * 4096)
    escaped = await bot.send_message(PRIVATE, "&lt;" * 4096, parse_mode="HTML")
    assert len(exact.text or "") == 4096
    assert escaped.text == "<" * 4096


@pytest.mark.asyncio
async def test_blank_text_is_empty_and_outer_whitespace_is_trimmed(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(PRIVATE, "  \n ")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(PRIVATE, "<b> </b>", parse_mode="HTML")

    trimmed = await bot.send_message(PRIVATE, "\n <b>hi</b> \n", parse_mode="HTML")
    assert trimmed.text == "hi"
    assert [(e.offset, e.length) for e in trimmed.entities] == [(0, 2)]


@pytest.mark.asyncio
async def test_lenient_mode_keeps_unknown_entities_like_telegram() -> None:
    with BotApiEmulator(strict_html=False) as emu:
        async with Bot(emu.token, base_url=emu.base_url) as bot:
            message = await bot.send_message(
                PRIVATE, "5&nbsp;km <a>example.org</a>", parse_mode="HTML"
            )
    assert message.text == "5&nbsp;km example.org"
    assert message.entities[0].url == "http://example.org/"


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        (
            '<pre><code class="language-python">x = 1</code></pre>',
            "x = 1",
            [{"type": "pre", "offset": 0, "length": 5, "language": "python"}],
        ),
        ("<code>a</code>", "a", [{"type": "code", "offset": 0, "length": 1}]),
        (
            "<blockquote expandable>q</blockquote><blockquote>r</blockquote>",
            "qr",
            [
                {"type": "expandable_blockquote", "offset": 0, "length": 1},
                {"type": "blockquote", "offset": 1, "length": 1},
            ],
        ),
        (
            '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
            "st",
            [
                {"type": "spoiler", "offset": 0, "length": 1},
                {"type": "spoiler", "offset": 1, "length": 1},
            ],
        ),
        (
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
            "👍",
            [
                {
                    "type": "custom_emoji",
                    "offset": 0,
                    "length": 2,
                    "custom_emoji_id": "5368324170671202286",
                }
            ],
        ),
        (
            "<strong><em>x</em></strong><ins>u</ins><del>d</del>",
            "xud",
            [
                {"type": "bold", "offset": 0, "length": 1},
                {"type": "italic", "offset": 0, "length": 1},
                {"type": "underline", "offset": 1, "length": 1},
                {"type": "strikethrough", "offset": 2, "length": 1},
            ],
        ),
        ("&#128512;&#x41;&quot;&gt;", '😀A">', []),
        ("<b></b>x", "x", []),
    ],
)
def test_parse_html_covers_telegram_tags(
    html: str, text: str, entities: list[dict[str, Any]]
) -> None:
    assert parse_html(html) == (text, entities)


def test_parse_html_rejects_lone_surrogates() -> None:
    with pytest.raises(HtmlParseError, match="invalid Unicode"):
        parse_html("&#xD83D;")


# -- editing and deleting ------------------------------------------------------------


@pytest.mark.asyncio
async def test_edit_message_text_and_its_errors(bot: Bot, emu: BotApiEmulator) -> None:
    sent = await bot.send_message(
        PRIVATE, "<b>v1</b>", parse_mode="HTML", reply_markup=keyboard("a")
    )

    edited = await bot.edit_message_text(
        "<b>v2</b>", PRIVATE, sent.message_id, parse_mode="HTML", reply_markup=keyboard("a")
    )

    assert isinstance(edited, Message)
    assert edited.text == "v2"
    assert edited.edit_date is not None
    [stored] = emu.messages(PRIVATE)
    assert (stored.text, stored.edits, stored.html) == ("v2", ["v1"], "<b>v2</b>")

    with pytest.raises(BadRequest, match="(?i)message is not modified: specified new message"):
        await bot.edit_message_text(
            "<b>v2</b>", PRIVATE, sent.message_id, parse_mode="HTML", reply_markup=keyboard("a")
        )
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", PRIVATE, 999)
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.edit_message_text("<b>x", PRIVATE, sent.message_id, parse_mode="HTML")
    emu.make_uneditable(PRIVATE, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message can't be edited"):
        await bot.edit_message_text("v3", PRIVATE, sent.message_id)


@pytest.mark.asyncio
async def test_reply_markup_edits_and_deletion(bot: Bot, emu: BotApiEmulator) -> None:
    sent = await bot.send_message(PRIVATE, "pick", reply_markup=keyboard("a"))

    edited = await bot.edit_message_reply_markup(
        PRIVATE, sent.message_id, reply_markup=keyboard("b")
    )
    assert isinstance(edited, Message)
    assert edited.reply_markup == keyboard("b")
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(PRIVATE, sent.message_id, reply_markup=keyboard("b"))

    assert await bot.delete_message(PRIVATE, sent.message_id) is True
    assert emu.messages()[0].deleted
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(PRIVATE, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("again", PRIVATE, sent.message_id)


# -- fault injection -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_injected_429_surfaces_as_retry_after(
    bot: Bot, emu: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # opt in to PTB's non-deprecated timedelta
    emu.fail_next("sendMessage", error_code=429, retry_after=7)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(PRIVATE, "hi")

    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.message == "Flood control exceeded. Retry in 0:00:07"
    assert (await bot.send_message(PRIVATE, "hi")).text == "hi"  # only the next call fails


@pytest.mark.asyncio
async def test_injected_faults_match_chat_and_count(bot: Bot, emu: BotApiEmulator) -> None:
    emu.fail_next(
        "sendmessage", error_code=400, description="Bad Request: boom", chat_id=PRIVATE, times=2
    )

    await bot.send_message(PRIVATE + 1, "other chat is fine")
    for _ in range(2):
        with pytest.raises(BadRequest, match="(?i)boom"):
            await bot.send_message(PRIVATE, "x")
    await bot.send_message(PRIVATE, "third call is fine")
    assert len(emu.calls("sendMessage")) == 4  # failed attempts are recorded too


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("chat_id", "wording"),
    [
        (PRIVATE, "bot was blocked by the user"),
        (-5, "bot was kicked from the group chat"),
        (GROUP, "bot was kicked from the supergroup chat"),
    ],
)
async def test_blocked_and_kicked_chats_are_forbidden(
    bot: Bot, emu: BotApiEmulator, chat_id: int, wording: str
) -> None:
    if chat_id == PRIVATE:
        emu.block_chat(chat_id)
    else:
        emu.kick_from_chat(chat_id)

    with pytest.raises(Forbidden, match=wording):
        await bot.send_message(chat_id, "hello")

    emu.restore_chat(chat_id)
    await bot.send_message(chat_id, "hello again")


@pytest.mark.asyncio
async def test_my_chat_member_updates_drive_the_bots_access(bot: Bot, emu: BotApiEmulator) -> None:
    emu.add_my_chat_member(GROUP, "supergroup", "member", user_id=7, title="Ops")
    emu.add_my_chat_member(GROUP, "supergroup", "left", user_id=7)

    updates = await bot.get_updates()
    statuses = [
        (u.my_chat_member.old_chat_member.status, u.my_chat_member.new_chat_member.status)
        for u in updates
        if u.my_chat_member
    ]
    assert statuses == [("left", "member"), ("member", "left")]
    with pytest.raises(Forbidden, match="bot is not a member of the supergroup chat"):
        await bot.send_message(GROUP, "still here?")


@pytest.mark.asyncio
async def test_migrated_group_raises_chat_migrated(bot: Bot, emu: BotApiEmulator) -> None:
    emu.migrate_chat(-12345, -1009876543210)

    with pytest.raises(ChatMigrated) as caught:
        await bot.send_message(-12345, "hi")

    assert caught.value.new_chat_id == -1009876543210
    sent = await bot.send_message(caught.value.new_chat_id, "hi")
    assert sent.chat.type == "supergroup"


@pytest.mark.asyncio
async def test_forgotten_and_unknown_chats_are_not_found(bot: Bot, emu: BotApiEmulator) -> None:
    emu.forget_chat(PRIVATE)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(PRIVATE, "hi")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message("@nobody_here", "hi")

    with BotApiEmulator(auto_create_chats=False) as strict:
        async with Bot(strict.token, base_url=strict.base_url) as strict_bot:
            with pytest.raises(BadRequest, match="(?i)chat not found"):
                await strict_bot.send_message(PRIVATE, "hi")
            strict.add_chat(PRIVATE)
            await strict_bot.send_message(PRIVATE, "hi")


@pytest.mark.asyncio
async def test_delay_makes_ptb_time_out(bot: Bot, emu: BotApiEmulator) -> None:
    emu.delay("sendMessage", 1.0)
    with pytest.raises(TimedOut):
        await bot.send_message(PRIVATE, "slow", read_timeout=0.2)
    assert emu.messages() == []

    emu.delay("sendMessage", 1.0, after_processing=True)
    with pytest.raises(TimedOut):
        await bot.send_message(PRIVATE, "sent but unanswered", read_timeout=0.2)
    assert [m.text for m in emu.messages()] == ["sent but unanswered"]


# -- rate limits ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rate_limits_answer_429_when_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with BotApiEmulator(enforce_limits=True, global_per_second=3, group_per_minute=2) as emu:
        async with Bot(emu.token, base_url=emu.base_url) as bot:
            await bot.send_message(1, "a")
            with pytest.raises(RetryAfter) as per_chat:  # 1 per second per private chat
                await bot.send_message(1, "b")
            await bot.send_message(2, "c")
            await bot.send_message(3, "d")
            with pytest.raises(RetryAfter):  # 3 per second overall
                await bot.send_message(4, "e")

    assert per_chat.value.retry_after == timedelta(seconds=1)
    assert emu.too_many_requests == 2
    assert [m.text for m in emu.messages()] == ["a", "c", "d"]


@pytest.mark.asyncio
async def test_group_limit_is_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with BotApiEmulator(enforce_limits=True, group_per_minute=2) as emu:
        async with Bot(emu.token, base_url=emu.base_url) as bot:
            await bot.send_message(GROUP, "1")
            await bot.send_message(GROUP, "2")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(GROUP, "3")
            await bot.send_message(GROUP - 1, "another group is independent")

    retry_after = caught.value.retry_after
    assert isinstance(retry_after, timedelta)
    assert timedelta(seconds=59) <= retry_after <= timedelta(seconds=60)


# -- updates -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_long_poll_returns_as_soon_as_an_update_arrives(
    bot: Bot, emu: BotApiEmulator
) -> None:
    timer = threading.Timer(0.2, emu.add_message, args=(PRIVATE, "ping"))
    started = time.monotonic()
    timer.start()

    updates = await bot.get_updates(timeout=5)

    assert time.monotonic() - started < 2
    assert [u.message.text for u in updates if u.message] == ["ping"]
    sender = updates[0].message.from_user if updates[0].message else None
    assert sender is not None
    assert sender.id == PRIVATE


@pytest.mark.asyncio
async def test_offset_confirms_updates_and_limit_caps_them(bot: Bot, emu: BotApiEmulator) -> None:
    ids = [emu.add_message(PRIVATE, f"m{i}") for i in range(3)]

    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1)] == ids[2:]
    assert emu.pending_updates == 1
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == ()
    assert emu.pending_updates == 0


@pytest.mark.asyncio
async def test_newer_poll_terminates_the_older_one(emu: BotApiEmulator) -> None:
    async with (
        Bot(emu.token, base_url=emu.base_url) as first,
        Bot(emu.token, base_url=emu.base_url) as second,
    ):
        older = asyncio.create_task(first.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        await second.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older


@pytest.mark.asyncio
async def test_group_messages_and_channel_posts(bot: Bot, emu: BotApiEmulator) -> None:
    emu.add_message(
        GROUP, "/status@metwatch_test_bot now", user_id=77, chat_type="supergroup", title="Ops"
    )
    emu.add_channel_post(-100555, "bulletin", title="Feed")

    message_update, post_update = await bot.get_updates()

    message = message_update.message
    assert message is not None
    assert message.from_user is not None
    assert (message.chat.id, message.chat.title, message.from_user.id) == (GROUP, "Ops", 77)
    assert message.parse_entities(["bot_command"]) == {
        message.entities[0]: "/status@metwatch_test_bot"
    }
    assert post_update.channel_post is not None
    assert post_update.channel_post.sender_chat is not None
    assert post_update.channel_post.sender_chat.title == "Feed"


@pytest.mark.asyncio
async def test_callback_query_round_trip(bot: Bot, emu: BotApiEmulator) -> None:
    sent = await bot.send_message(PRIVATE, "choose", reply_markup=keyboard("sub:1"))
    query_id = emu.add_callback_query(PRIVATE, "sub:1")

    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None
    assert (query.id, query.data) == (query_id, "sub:1")
    assert query.message is not None
    assert query.message.message_id == sent.message_id

    assert await query.answer("Subscribed", show_alert=True) is True
    assert [(a.text, a.show_alert) for a in emu.callback_answers] == [("Subscribed", True)]
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await query.answer("twice")


@pytest.mark.asyncio
async def test_command_handler_in_a_real_application(emu: BotApiEmulator) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_html("<b>Welcome</b> to metwatch")

    app = ApplicationBuilder().token(emu.token).base_url(emu.base_url).build()
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        emu.add_message(PRIVATE, "/start")
        replies = await asyncio.to_thread(emu.wait_for_messages, 1, PRIVATE, 5.0)
        await app.updater.stop()
        await app.stop()

    assert replies[0].text == "Welcome to metwatch"
    assert replies[0].entities == [{"type": "bold", "offset": 0, "length": 7}]
    assert emu.pending_updates == 0  # PTB confirmed the update on shutdown


@pytest.mark.asyncio
async def test_reset_forgets_state_but_keeps_update_ids_rising(
    bot: Bot, emu: BotApiEmulator
) -> None:
    first = emu.add_message(PRIVATE, "before")
    await bot.send_message(PRIVATE, "sent")
    emu.block_chat(PRIVATE)

    emu.reset()

    assert (emu.messages(), emu.requests, emu.pending_updates) == ([], [], 0)
    assert emu.add_message(PRIVATE, "after") == first + 1
    assert (await bot.send_message(PRIVATE, "unblocked")).message_id == 2


def test_wait_for_messages_times_out_with_what_arrived(emu: BotApiEmulator) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 message\(s\) to chat 9.*got 0"):
        emu.wait_for_messages(1, chat_id=9, timeout=0.05)


# -- commands and chat info ----------------------------------------------------------


@pytest.mark.asyncio
async def test_commands_are_stored_per_scope_and_language(bot: Bot, emu: BotApiEmulator) -> None:
    await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("help", "Help")])
    await bot.set_my_commands(
        [BotCommand("admin", "Admin tools")], scope=BotCommandScopeChat(GROUP)
    )
    await bot.set_my_commands([BotCommand("start", "Démarrer")], language_code="fr")

    assert emu.commands(scope=BotCommandScopeChat(GROUP)) == [
        {"command": "admin", "description": "Admin tools"}
    ]
    assert emu.commands({"type": "chat", "chat_id": GROUP}) == emu.commands(
        BotCommandScopeChat(GROUP)
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    assert [c.description for c in await bot.get_my_commands(language_code="fr")] == ["Démarrer"]

    assert await bot.delete_my_commands(scope=BotCommandScopeChat(GROUP)) is True
    assert await bot.get_my_commands(scope=BotCommandScopeChat(GROUP)) == ()
    assert emu.commands(BotCommandScopeDefault()) == emu.commands()
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Capitals are not allowed")])


@pytest.mark.asyncio
async def test_chat_and_member_queries(bot: Bot, emu: BotApiEmulator) -> None:
    emu.add_chat(GROUP, "supergroup", title="Ops", username="ops_room")
    emu.set_member_status(GROUP, 1, "creator")
    emu.set_member_status(GROUP, 2, "administrator")
    emu.set_member_status(GROUP, emu.bot_id, "administrator")

    chat = await bot.get_chat("@ops_room")
    assert (chat.id, chat.type, chat.title) == (GROUP, "supergroup", "Ops")
    assert (await bot.get_chat_member(GROUP, 1)).status == "creator"
    assert (await bot.get_chat_member(GROUP, 3)).status == "left"
    admins = await bot.get_chat_administrators(GROUP)
    assert [(a.user.id, a.status) for a in admins] == [
        (1, "creator"),
        (2, "administrator"),
        (emu.bot_id, "administrator"),
    ]
    with pytest.raises(BadRequest, match="(?i)no administrators in the private chat"):
        await bot.get_chat_administrators(PRIVATE)
    assert await bot.send_chat_action(GROUP, "typing") is True


# -- request encodings ---------------------------------------------------------------


def test_json_multipart_and_query_string_bodies(emu: BotApiEmulator) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    status, answer = post_raw(
        emu,
        "sendMessage",
        json.dumps({"chat_id": PRIVATE, "text": "json", "reply_markup": markup}).encode(),
        "application/json",
    )
    assert (status, answer["result"]["reply_markup"]) == (200, markup)

    boundary = "XyZ"
    parts = [("chat_id", str(PRIVATE)), ("text", "123")]
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in parts
        )
        + f"--{boundary}--\r\n"
    )
    status, answer = post_raw(
        emu, "sendMessage", body.encode(), f"multipart/form-data; boundary={boundary}"
    )
    assert (status, answer["result"]["text"]) == (200, "123")  # numeric text stays a string

    status, answer = post_raw(
        emu,
        "sendMessage",
        b"",
        "application/x-www-form-urlencoded",
        query=f"chat_id={PRIVATE}&text=%3Cb%3Eq%3C%2Fb%3E&parse_mode=HTML",
    )
    assert (status, answer["result"]["entities"][0]["type"]) == (200, "bold")

    status, answer = post_raw(emu, "sendMessage", b"{", "application/json")
    assert (status, answer["ok"]) == (400, False)
    status, answer = post_raw(emu, "nope", b"", "application/json")
    assert (status, answer) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
