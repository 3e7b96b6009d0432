"""A local Telegram Bot API emulator that real python-telegram-bot (PTB) talks to in tests.

`BotApiEmulator` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon
thread and answers ``{base_url}{token}/{method}`` the way api.telegram.org does: the same
result shapes (User, Chat, Message, MessageEntity, Update, CallbackQuery, ChatMember,
BotCommand) and the same error envelope ``{"ok": false, "error_code", "description",
"parameters"}``, so PTB raises the exception it would raise in production (BadRequest,
Forbidden, RetryAfter, ChatMigrated, InvalidToken, NetworkError, Conflict, TimedOut).
Point PTB at it with ``Bot(emu.token, base_url=emu.base_url)`` or
``ApplicationBuilder().token(emu.token).base_url(emu.base_url)``.

Tests drive the other side through thread-safe Python methods:

- incoming traffic: `add_message`, `add_channel_post`, `add_callback_query`,
  `add_my_chat_member`, `add_update` (long polls waiting in getUpdates return at once);
- what the bot did: `messages`, `wait_for_messages`, `callback_answers`, `commands`,
  `requests`, `calls`, `too_many_requests`;
- chat set-up: `add_chat`, `set_member_status`, `make_uneditable`, `reset`;
- faults: `fail_next`, `block_chat`, `kick_from_chat`, `migrate_chat`, `forget_chat`,
  `restore_chat`, `set_unavailable`, `delay`, and Telegram's sendMessage flood limits when
  built with ``enforce_limits=True`` (30/s overall, 1/s per private chat, 20/min per group).

Methods: getMe, logOut, close, deleteWebhook, getWebhookInfo, getUpdates (long poll, offset,
limit, allowed_updates, 409 when a newer poll supersedes it), sendMessage, editMessageText,
editMessageReplyMarkup, deleteMessage, answerCallbackQuery, setMyCommands, getMyCommands,
deleteMyCommands, getChat, getChatMember, getChatAdministrators, sendChatAction. Method names
are case-insensitive, as on Telegram. Any other method answers 404 "Not Found"; a wrong token
answers 401 "Unauthorized". `parse_html` is public: it is Telegram's HTML parse mode
(sendMessage then also trims surrounding whitespace, as Telegram does).

Note for assertions: PTB strips "Bad Request: " from descriptions and re-capitalises the rest
("Can't parse entities: unsupported start tag ..."), so match BadRequest texts with ``(?i)``.

It does not do: media or file uploads (multipart bodies are parsed, files are only recorded as
name and size), webhooks, inline mode, payments, forum-topic management, the Markdown parse
modes (they answer 400 naming the limitation), or the automatic url/mention/hashtag entities
Telegram adds to the bot's own texts. It does not persist anything, and it never logs or
prints the request line, so the bot token is never written anywhere.

Deliberate deviation: with ``strict_html=True`` (default) an unknown named entity such as
``&nbsp;``, an invalid numeric reference, and ``<a>`` without ``href`` are parse errors; real
Telegram keeps the first two as literal text and derives the link from the tag's text. Pass
``strict_html=False`` for Telegram's exact leniency.

Typical fixtures (a module-scoped server plus `reset` per test is the faster variant)::

    @pytest.fixture
    def emu() -> Iterator[BotApiEmulator]:
        with BotApiEmulator() as running:
            yield running
            assert running.errors == []
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotApiEmulator",
    "CallbackAnswer",
    "HtmlParseError",
    "SentMessage",
    "parse_html",
]

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "123456:TEST-secret-token-abcdef"
#: Telegram's limit for a message text after entity parsing.
MAX_TEXT_LENGTH = 4096
DEFAULT_GROUP_USER_ID = 1001
_HOST = "127.0.0.1"
_CLIENT_GONE = (ConnectionError, TimeoutError)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_MEMBER_STATUSES = frozenset(
    {"creator", "administrator", "member", "restricted", "left", "kicked"}
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_BOT_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_/<>])")
#: Parameters Telegram treats as plain strings; PTB sends them unquoted, so a text such as
#: ``123`` or ``true`` must not be JSON-decoded into a number or a boolean.
_STRING_PARAMS = frozenset(
    {
        "text",
        "parse_mode",
        "caption",
        "callback_query_id",
        "url",
        "language_code",
        "description",
        "short_description",
        "name",
        "title",
        "action",
        "inline_message_id",
        "emoji",
        "query",
        "custom_title",
        "business_connection_id",
        "message_effect_id",
    }
)


# -- errors -----------------------------------------------------------------------------


class ApiError(Exception):
    """A Bot API error answer; raised inside method handlers, turned into the JSON envelope."""

    def __init__(self, error_code: int, description: str, **parameters: int) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def fresh(self) -> ApiError:
        """A new instance to raise: one exception object must not be raised by two threads."""
        return ApiError(self.error_code, self.description, **self.parameters)

    def to_json(self) -> JSONDict:
        body: JSONDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def _bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def _default_description(error_code: int, retry_after: int | None) -> str:
    if error_code == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    try:
        return HTTPStatus(error_code).phrase
    except ValueError:
        return f"Error {error_code}"


# -- text helpers ------------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of ``text[index]``, the position Telegram's parse errors report."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip surrounding whitespace like Telegram does and clip entities to what is left."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    size = _utf16_len(stripped)
    kept: list[JSONDict] = []
    for entity in entities:
        start = max(int(entity["offset"]) - lead, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# -- HTML parse mode ---------------------------------------------------------------------


class HtmlParseError(ValueError):
    """Telegram's reason for rejecting an HTML text (the part after "can't parse entities:")."""


_ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
#: ``&...;`` sequences that look like a character reference; strict mode rejects the ones
#: Telegram cannot decode instead of letting them through as literal text.
_REFERENCE_LIKE = re.compile(r"&(?:#x?[0-9A-Za-z]*|[A-Za-z]+);")
#: tdlib's is_space; the end of the text (tdlib's NUL terminator) is handled separately.
_SPACES = frozenset(" \t\r\n\v")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DEC_DIGITS = frozenset("0123456789")
#: tdlib orders entities by offset, then longer first, then by this type priority.
_TYPE_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bot_command": 50,
    "url": 50,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/?#]+)(?P<rest>.*)")
_LINK_SCHEMES = frozenset({"http", "https", "tg", "ton", "tonsite", "ftp"})


def _decode_reference(src: str, pos: int) -> tuple[str, int] | None:
    """Decode the character reference at ``src[pos] == '&'`` like tdlib's decode_html_entity.

    Returns the character and the index after the reference (the ``;`` is optional), or None
    when Telegram would keep the ``&`` as a literal character.
    """
    end = pos + 1
    if src.startswith("#", end):
        end += 1
        digits, base = _DEC_DIGITS, 10
        if src.startswith("x", end):
            end, digits, base = end + 1, _HEX_DIGITS, 16
        start = end
        while end < len(src) and src[end] in digits:
            end += 1
        value = int(src[start:end], base) if end > start else 0
        if value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None
        char = chr(value)
    else:
        while end < len(src) and src[end].isascii() and src[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(src[pos + 1 : end])
        if named is None:
            return None
        char = named
    if src.startswith(";", end):
        end += 1
    return char, end


def _normalize_link(url: str) -> str | None:
    """The URL Telegram stores for a text_link, or None when it would drop the link."""
    if not url or any(char.isspace() for char in url):
        return None
    match = _URL_RE.fullmatch(url) or _URL_RE.fullmatch(f"http://{url}")
    if match is None:
        return None
    scheme = match["scheme"].lower()
    if scheme not in _LINK_SCHEMES:
        return None
    host, rest = match["host"], match["rest"]
    if scheme in ("http", "https"):
        if "." not in host:
            return None
        # Telegram's URL normaliser always gives http(s) links a path.
        host = host.lower()
        rest = rest if rest.startswith("/") else f"/{rest}"
    return f"{scheme}://{host}{rest}"


def _is_name_token_char(char: str) -> bool:
    """An unquoted attribute value: letters, digits, periods and hyphens."""
    return char != "" and (char.isascii() and char.isalnum() or char in ".-")


def _entity_sort_key(entity: JSONDict) -> tuple[int, int, int]:
    return entity["offset"], -entity["length"], _TYPE_PRIORITY.get(entity["type"], 50)


@dataclass
class _OpenTag:
    name: str
    argument: str
    offset: int  # UTF-16 offset in the output where the tag's content starts
    out_index: int  # index into the output pieces, to recover the content of <a>
    source_pos: int  # index of '<' in the source, for error offsets


class _HtmlParser:
    """A port of tdlib's HTML parse mode (do_parse_html): same grammar, same error texts."""

    def __init__(self, source: str, *, strict: bool) -> None:
        self._src = source
        self._strict = strict
        self._pos = 0
        self._out: list[str] = []
        self._utf16 = 0
        self._stack: list[_OpenTag] = []
        self._entities: list[JSONDict] = []

    def parse(self) -> tuple[str, list[JSONDict]]:
        while self._pos < len(self._src):
            char = self._src[self._pos]
            if char == "&" and self._reference():
                continue
            if char == "<":
                self._tag()
                continue
            self._emit(char)
            self._pos += 1
        if self._stack:
            name = self._stack[-1].name
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{name}"')
        return self._result()

    def _result(self) -> tuple[str, list[JSONDict]]:
        text = "".join(self._out)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise HtmlParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            ) from None
        pre_spans = {(e["offset"], e["length"]) for e in self._entities if e["type"] == "pre"}
        entities = []
        for entity in self._entities:
            if entity["type"] == "code":
                # Inline code has no language, and code exactly covering a pre is the pre.
                entity.pop("language", None)
                if (entity["offset"], entity["length"]) in pre_spans:
                    continue
            entities.append(entity)
        return text, sorted(entities, key=_entity_sort_key)

    # scanning helpers

    def _peek(self, index: int) -> str:
        return self._src[index] if index < len(self._src) else ""

    def _skip_spaces(self, index: int) -> int:
        while self._peek(index) in _SPACES:
            index += 1
        return index

    def _is_space_or_end(self, index: int) -> bool:
        char = self._peek(index)
        return char == "" or char in _SPACES

    def _error(self, reason: str, index: int) -> HtmlParseError:
        return HtmlParseError(f"{reason} at byte offset {_byte_offset(self._src, index)}")

    def _emit(self, text: str) -> None:
        self._out.append(text)
        self._utf16 += _utf16_len(text)

    # text

    def _reference(self) -> bool:
        decoded = _decode_reference(self._src, self._pos)
        if decoded is None:
            match = _REFERENCE_LIKE.match(self._src, self._pos)
            if self._strict and match:
                raise self._error(f'Unsupported HTML entity "{match.group()}"', self._pos)
            return False
        char, self._pos = decoded
        self._emit(char)
        return True

    def _tag(self) -> None:
        if self._peek(self._pos + 1) == "/":
            self._end_tag(self._pos)
        else:
            self._start_tag(self._pos)

    # start tags

    def _start_tag(self, begin: int) -> None:
        index = begin + 1
        while not self._is_space_or_end(index) and self._peek(index) != ">":
            index += 1
        if self._peek(index) == "":
            raise self._error("Unclosed start tag", begin)
        name = self._src[begin + 1 : index].lower()
        if name not in _ALLOWED_TAGS:
            raise self._error(f'Unsupported start tag "{name}"', begin)
        attributes, index = self._attributes(name, begin, index)
        argument = self._tag_argument(name, attributes, begin)
        self._pos = index + 1
        self._stack.append(_OpenTag(name, argument, self._utf16, len(self._out), begin))

    def _attributes(self, tag: str, begin: int, index: int) -> tuple[dict[str, str], int]:
        attributes: dict[str, str] = {}
        while self._peek(index) != ">":
            index = self._skip_spaces(index)
            if self._peek(index) == ">":
                break
            name_start = index
            while not self._is_space_or_end(index) and self._peek(index) not in ("=", ">"):
                index += 1
            name = self._src[name_start:index]
            if not name:
                raise self._error(f'Empty attribute name in the tag "{tag}"', begin)
            index = self._skip_spaces(index)
            if self._peek(index) != "=":
                if tag == "blockquote" and name == "expandable":
                    attributes[name] = ""
                    continue
                raise self._error(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}"', begin
                )
            index = self._skip_spaces(index + 1)
            if self._peek(index) == "":
                raise self._error(f'Unclosed start tag "{tag}"', begin)
            attributes[name], index = self._attribute_value(index)
            if self._peek(index) == "":
                raise self._error("Unclosed start tag", begin)
        return attributes, index

    def _attribute_value(self, index: int) -> tuple[str, int]:
        quote = self._peek(index)
        if quote not in ("'", '"'):
            # An unquoted name token, case-insensitive.
            start = index
            while _is_name_token_char(self._peek(index)):
                index += 1
            if not self._is_space_or_end(index) and self._peek(index) != ">":
                raise self._error("Unexpected end of name token", start)
            return self._src[start:index].lower(), index
        index += 1
        value: list[str] = []
        while (char := self._peek(index)) and char != quote:
            decoded = _decode_reference(self._src, index) if char == "&" else None
            if decoded is not None:
                value.append(decoded[0])
                index = decoded[1]
            else:
                value.append(char)
                index += 1
        if self._peek(index) == quote:
            index += 1
        return "".join(value), index

    def _tag_argument(self, tag: str, attributes: dict[str, str], begin: int) -> str:
        if tag == "a":
            href = attributes.get("href", "")
            if self._strict and not href:
                raise self._error('Tag "a" must have a non-empty attribute "href"', begin)
            return href
        css_class = attributes.get("class", "")
        if tag == "code" and css_class.startswith("language-"):
            return css_class.removeprefix("language-")
        if tag == "span":
            if css_class != "tg-spoiler":
                raise self._error('Tag "span" must have class "tg-spoiler"', begin)
            return "spoiler"
        if tag == "tg-emoji":
            return attributes.get("emoji-id", "")
        if tag == "blockquote" and "expandable" in attributes:
            return "1"
        return ""

    # end tags

    def _end_tag(self, begin: int) -> None:
        if not self._stack:
            raise self._error("Unexpected end tag", begin)
        index = begin + 2
        while not self._is_space_or_end(index) and self._peek(index) != ">":
            index += 1
        end_name = self._src[begin + 2 : index]
        index = self._skip_spaces(index)
        if self._peek(index) != ">":
            raise self._error("Unclosed end tag", begin)
        open_tag = self._stack.pop()
        if end_name and end_name != open_tag.name:
            offset = _byte_offset(self._src, begin)
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {offset}, expected "</{open_tag.name}>", '
                f'found "</{end_name}>"'
            )
        self._pos = index + 1
        if self._utf16 > open_tag.offset:
            self._close(open_tag)

    def _close(self, tag: _OpenTag) -> None:
        entity: JSONDict = {"offset": tag.offset, "length": self._utf16 - tag.offset}
        if tag.name in _SIMPLE_TAG_TYPES:
            self._entities.append({"type": _SIMPLE_TAG_TYPES[tag.name], **entity})
        elif tag.name == "a":
            url = _normalize_link(tag.argument or "".join(self._out[tag.out_index :]))
            if url is not None:
                self._entities.append({"type": "text_link", **entity, "url": url})
        elif tag.name in ("pre", "code"):
            self._close_code(tag, entity)
        elif tag.name == "blockquote":
            kind = "expandable_blockquote" if tag.argument else "blockquote"
            self._entities.append({"type": kind, **entity})
        else:  # tg-emoji
            if not tag.argument.isdigit() or int(tag.argument) == 0:
                raise HtmlParseError("Invalid custom emoji identifier specified")
            self._entities.append(
                {"type": "custom_emoji", **entity, "custom_emoji_id": tag.argument}
            )

    def _close_code(self, tag: _OpenTag, entity: JSONDict) -> None:
        # <pre><code class="language-x"> (either nesting order) is one pre with a language.
        last = self._entities[-1] if self._entities else None
        same_span = last is not None and (last["offset"], last["length"]) == (
            entity["offset"],
            entity["length"],
        )
        if tag.name == "pre":
            if last is not None and same_span and last["type"] == "code" and last.get("language"):
                last["type"] = "pre"
            else:
                self._entities.append({"type": "pre", **entity})
        elif last is not None and same_span and last["type"] == "pre" and tag.argument:
            last["language"] = tag.argument
        else:
            self._entities.append({"type": "code", **entity, "language": tag.argument})


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[JSONDict]]:
    """Parse a text in Telegram's HTML parse mode into (plain text, Bot API MessageEntity dicts).

    Offsets and lengths are UTF-16 code units. Raises `HtmlParseError` with Telegram's reason
    (e.g. 'Unsupported start tag "div" at byte offset 0'). See the module docstring for what
    ``strict`` changes.
    """
    return _HtmlParser(text, strict=strict).parse()


# -- request decoding --------------------------------------------------------------------


def _coerce(name: str, value: object) -> object:
    """One parameter as Telegram reads it: PTB JSON-encodes every non-string value."""
    if name in _STRING_PARAMS:
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(content_type: str, body: bytes) -> dict[str, object]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, object] = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        # Uploaded files are only recorded: the emulator implements no media methods.
        fields[name] = {"filename": filename, "size": len(data)} if filename else data.decode()
    return fields


def _decode_params(query: str, content_type: str, body: bytes) -> JSONDict:
    raw: dict[str, object] = dict(parse_qsl(query, keep_blank_values=True))
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" and body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            raise _bad_request("can't parse JSON encoded request body") from None
        if not isinstance(parsed, dict):
            raise _bad_request("request body must be a JSON object")
        raw.update(parsed)
    elif mime == "multipart/form-data":
        raw.update(_parse_multipart(content_type, body))
    elif body:
        raw.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return {name: _coerce(name, value) for name, value in raw.items()}


def _int_param(params: JSONDict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_request(f"wrong parameter {name} specified") from None


def _dict_param(params: JSONDict, name: str) -> JSONDict | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad_request(f"can't parse {name} JSON object")
    return value


def _as_dict(value: object) -> JSONDict:
    """A scope given to the test API as a dict or as a PTB object with ``to_dict``."""
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    raise TypeError(f"expected a mapping or a telegram object, got {value!r}")


# -- records and state -------------------------------------------------------------------


@dataclass
class SentMessage:
    """A message the bot sent, as the emulator stores it (copies are handed to tests)."""

    chat_id: int
    message_id: int
    #: Plain text after entity parsing and trimming, as Telegram stores it.
    text: str
    #: The ``text`` parameter exactly as sent (HTML source when parse_mode is HTML).
    html: str
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    disable_notification: bool
    reply_to_message_id: int | None
    #: Earlier plain texts, oldest first; the current one is ``text``.
    edits: list[str] = field(default_factory=list)
    editable: bool = True
    date: int = 0
    edit_date: int | None = None
    message_thread_id: int | None = None
    link_preview_options: JSONDict | None = None
    deleted: bool = False


@dataclass(frozen=True)
class CallbackAnswer:
    """One answerCallbackQuery call."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    bot_status: str = "member"
    members: dict[int, str] = field(default_factory=dict)
    next_message_id: int = 1
    #: When set, every request addressing this chat answers this error (blocked, kicked...).
    gone: ApiError | None = None

    def to_json(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.first_name or f"User{self.id}"
        else:
            data["title"] = self.title or f"Chat {self.id}"
        if self.username:
            data["username"] = self.username
        return data

    def allocate_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def kind(self) -> str:
        """The chat word Telegram uses in 403 texts."""
        return {"supergroup": "supergroup chat", "channel": "channel chat"}.get(
            self.type, "group chat"
        )


def _infer_chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


@dataclass
class _Fault:
    method: str  # lower-case
    error: ApiError
    times: int
    chat_id: int | str | None


@dataclass(frozen=True)
class _Delay:
    seconds: float
    after_processing: bool


class _Window:
    """Timestamps of accepted calls inside a rolling window (time.monotonic based)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.stamps: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more call fits; 0 when it fits now."""
        while self.stamps and now - self.stamps[0] >= self.seconds:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            return 0.0
        return self.stamps[0] + self.seconds - now


class _RateLimiter:
    """Telegram's broadcast limits: global per second, per private chat, per group minute."""

    def __init__(
        self, global_per_second: int, private_per_second: int, group_per_minute: int
    ) -> None:
        self._global = _Window(global_per_second, 1.0)
        self._private_limit = private_per_second
        self._group_limit = group_per_minute
        self._chats: dict[int, _Window] = {}

    def admit(self, chat_id: int) -> int | None:
        """Record the call and return None, or return the retry_after Telegram would send."""
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = (
                _Window(self._private_limit, 1.0)
                if chat_id > 0
                else _Window(self._group_limit, 60.0)
            )
            self._chats[chat_id] = chat
        now = time.monotonic()
        wait = max(self._global.wait(now), chat.wait(now))
        if wait > 0:
            return max(1, math.ceil(wait))
        self._global.stamps.append(now)
        chat.stamps.append(now)
        return None


# -- the emulator ------------------------------------------------------------------------


class BotApiEmulator:
    """A Telegram Bot API server for tests; see the module docstring."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "metwatch_test_bot",
        bot_first_name: str = "Metwatch Test Bot",
        enforce_limits: bool = False,
        global_per_second: int = 30,
        private_per_second: int = 1,
        group_per_minute: int = 20,
        auto_create_chats: bool = True,
        strict_html: bool = True,
    ) -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self._auto_create_chats = auto_create_chats
        self._strict_html = strict_html
        self._limiter = (
            _RateLimiter(global_per_second, private_per_second, group_per_minute)
            if enforce_limits
            else None
        )
        # One re-entrant lock guards all state; the condition wakes long polls and waiters.
        self._cond = threading.Condition(threading.RLock())
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_state()
        self._methods: dict[str, Callable[[JSONDict], object]] = {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
            "sendchataction": self._send_chat_action,
        }

    def _reset_state(self) -> None:
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, JSONDict] = {}
        self._sent: list[SentMessage] = []
        self._sent_index: dict[tuple[int, int], SentMessage] = {}
        self._incoming: dict[tuple[int, int], JSONDict] = {}
        self._updates: list[JSONDict] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._open_callbacks: set[str] = set()
        self._callback_answers: list[CallbackAnswer] = []
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._requests: list[tuple[str, JSONDict]] = []
        self._faults: list[_Fault] = []
        self._delays: dict[str, _Delay] = {}
        self._unavailable = False
        self._errors: list[str] = []
        self.too_many_requests = 0

    def reset(self) -> None:
        """Forget all chats, messages, updates, faults and records; the server keeps running.

        Update ids keep counting up and a waiting long poll carries on, so a PTB poller that
        survives the reset loses nothing.
        """
        with self._cond:
            next_update_id, generation = self._next_update_id, self._poll_generation
            self._reset_state()
            self._next_update_id, self._poll_generation = next_update_id, generation
            self._cond.notify_all()

    # lifecycle

    def start(self) -> Self:
        """Start serving on 127.0.0.1 at a free port; returns self."""
        if self._server is not None:
            raise RuntimeError("BotApiEmulator is already running")
        self._stop_event.clear()
        self._server = _Server((_HOST, 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bot-api-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wakes long polls and delays, closes open connections. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._cond:
            self._stop_event.set()
            self._cond.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("BotApiEmulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """PTB's ``base_url``: PTB appends the token, then ``/{method}``."""
        return f"http://{_HOST}:{self.port}/bot"

    # test control: incoming traffic

    def add_chat(
        self,
        chat_id: int,
        chat_type: str | None = None,
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> None:
        """Register (or update) a chat; its type defaults to what the id implies."""
        with self._cond:
            self._ensure_chat(
                chat_id, chat_type, title=title, username=username, first_name=first_name
            )

    def add_message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        title: str | None = None,
        username: str = "tester",
        first_name: str = "Test",
        reply_to_message_id: int | None = None,
    ) -> int:
        """Queue an Update with a user's Message; returns its update_id.

        In private chats the sender is the chat's user (user_id defaults to chat_id); in groups
        it is ``user_id`` (default DEFAULT_GROUP_USER_ID). A leading ``/command[@bot]`` gets a
        bot_command entity so PTB's CommandHandler fires.
        """
        with self._cond:
            if user_id is None:
                user_id = chat_id if chat_type == "private" else DEFAULT_GROUP_USER_ID
            user = self._register_user(user_id, username=username, first_name=first_name)
            # The sender's names describe the chat only when it is their private chat.
            private = (
                {"username": username, "first_name": first_name}
                if (chat_type == "private")
                else {}
            )
            chat = self._ensure_chat(chat_id, chat_type, title=title, **private)
            if chat.type != "private":
                chat.members.setdefault(user_id, "member")
            message = self._incoming_message(chat, text, {"from": user})
            if reply_to_message_id is not None:
                target = self._stored_message_json(chat.id, reply_to_message_id)
                if target is not None:
                    message["reply_to_message"] = target
            return self._queue_update({"message": message})

    def add_channel_post(
        self, chat_id: int, text: str, *, title: str | None = None, username: str | None = None
    ) -> int:
        """Queue an Update with a channel_post; returns its update_id."""
        with self._cond:
            chat = self._ensure_chat(chat_id, "channel", title=title, username=username)
            message = self._incoming_message(chat, text, {"sender_chat": chat.to_json()})
            return self._queue_update({"channel_post": message})

    def add_my_chat_member(
        self,
        chat_id: int,
        chat_type: str,
        new_status: str,
        user_id: int | None = None,
        *,
        title: str | None = None,
    ) -> int:
        """Queue a my_chat_member Update (the bot added to / removed from a chat).

        The bot's status in the chat follows: "kicked" blocks a private chat or kicks the bot
        from a group, "left" leaves a group, "member"/"administrator" make it usable again.
        """
        if new_status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {new_status!r}")
        with self._cond:
            existing = self._chats.get(chat_id)
            old_status = existing.bot_status if existing is not None else "left"
            chat = self._ensure_chat(chat_id, chat_type, title=title)
            chat.bot_status = new_status
            chat.gone = self._gone_for_status(chat, new_status)
            actor = (
                user_id
                if user_id is not None
                else (chat_id if chat.type == "private" else DEFAULT_GROUP_USER_ID)
            )
            update = {
                "chat": chat.to_json(),
                "from": self._user_json(actor),
                "date": int(time.time()),
                "old_chat_member": _member_json(self._bot_user(), old_status),
                "new_chat_member": _member_json(self._bot_user(), new_status),
            }
            return self._queue_update({"my_chat_member": update})

    def add_callback_query(
        self, chat_id: int, data: str, *, user_id: int | None = None, message_id: int | None = None
    ) -> str:
        """Queue a callback_query Update for a button on a bot message; returns the query id.

        The query's message is the stored bot message ``message_id`` (default: the latest one
        in the chat), or a minimal stub when there is none.
        """
        with self._cond:
            chat = self._ensure_chat(chat_id)
            user_id = (
                user_id
                if user_id is not None
                else (chat_id if chat.type == "private" else DEFAULT_GROUP_USER_ID)
            )
            query_id = str(4_000_000_000 + self._next_update_id)
            self._open_callbacks.add(query_id)
            query = {
                "id": query_id,
                "from": self._user_json(user_id),
                "message": self._callback_message(chat, message_id),
                "chat_instance": str(abs(chat.id) * 7919),
                "data": data,
            }
            self._queue_update({"callback_query": query})
            return query_id

    def add_update(self, update: Mapping[str, Any]) -> int:
        """Queue any raw Update body (without update_id); returns the update_id it got."""
        with self._cond:
            return self._queue_update(copy.deepcopy(dict(update)))

    # test control: state and faults

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """Set what getChatMember answers; ``user_id == emu.bot_id`` sets the bot's status."""
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        with self._cond:
            chat = self._ensure_chat(chat_id)
            if user_id == self.bot_id:
                chat.bot_status = status
            else:
                chat.members[user_id] = status

    def make_uneditable(self, chat_id: int, message_id: int) -> None:
        """Make editMessage* on this bot message answer "message can't be edited"."""
        with self._cond:
            sent = self._sent_index.get((chat_id, message_id))
            if sent is None:
                raise ValueError(f"the bot sent no message {message_id} to chat {chat_id}")
            sent.editable = False

    def block_chat(self, chat_id: int) -> None:
        """The user blocked the bot: every request to the chat answers 403."""
        with self._cond:
            self._ensure_chat(chat_id).gone = ApiError(
                403, "Forbidden: bot was blocked by the user"
            )

    def kick_from_chat(self, chat_id: int) -> None:
        """The bot was kicked from the group: every request to it answers 403."""
        with self._cond:
            chat = self._ensure_chat(chat_id)
            chat.bot_status = "kicked"
            chat.gone = self._gone_for_status(chat, "kicked")

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: requests to the old id answer 400 with the new id."""
        with self._cond:
            old = self._ensure_chat(old_chat_id, "group")
            old.gone = ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=new_chat_id,
            )
            self._ensure_chat(new_chat_id, "supergroup", title=old.title)

    def forget_chat(self, chat_id: int) -> None:
        """Requests to the chat answer 400 "chat not found"."""
        with self._cond:
            self._ensure_chat(chat_id).gone = _bad_request("chat not found")

    def restore_chat(self, chat_id: int) -> None:
        """Undo block/kick/migrate/forget for the chat."""
        with self._cond:
            chat = self._ensure_chat(chat_id)
            chat.gone = None
            if chat.bot_status in ("left", "kicked"):
                chat.bot_status = "member"

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (to ``chat_id``, if given) with an error.

        Without ``description`` Telegram's wording for the code is used.
        """
        parameters = {
            name: value
            for name, value in (
                ("retry_after", retry_after),
                ("migrate_to_chat_id", migrate_to_chat_id),
            )
            if value is not None
        }
        text = description or _default_description(error_code, retry_after)
        error = ApiError(error_code, text, **parameters)
        with self._cond:
            self._faults.append(_Fault(method.lower(), error, times, chat_id))

    def set_unavailable(self, unavailable: bool = True) -> None:
        """While set, every call answers HTTP 502 Bad Gateway."""
        with self._cond:
            self._unavailable = unavailable

    def delay(self, method: str, seconds: float, *, after_processing: bool = False) -> None:
        """Make ``method`` answer ``seconds`` late (0 removes the delay).

        With ``after_processing`` the call takes effect first (the message is sent) and only
        the answer is late: the "timed out but delivered" case.
        """
        with self._cond:
            if seconds <= 0:
                self._delays.pop(method.lower(), None)
            else:
                self._delays[method.lower()] = _Delay(seconds, after_processing)

    # test control: inspection

    def messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """Copies of the messages the bot sent (deleted ones included, flagged), in order."""
        with self._cond:
            wanted = [m for m in self._sent if chat_id is None or m.chat_id == chat_id]
            return copy.deepcopy(wanted)

    def wait_for_messages(
        self, n: int, chat_id: int | None = None, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until the bot has sent at least ``n`` messages (to ``chat_id``); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := self.messages(chat_id)) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    texts = [(m.chat_id, m.text) for m in found]
                    raise AssertionError(
                        f"expected {n} message(s) to chat {chat_id} within {timeout}s, "
                        f"got {len(found)}: {texts!r}"
                    )
                self._cond.wait(remaining)
            return found

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        with self._cond:
            return list(self._callback_answers)

    def commands(self, scope: object = None, language_code: str = "") -> list[JSONDict]:
        """The commands set for exactly this scope (dict or PTB BotCommandScope) and language."""
        key = _scope_key({"type": "default"} if scope is None else _as_dict(scope))
        with self._cond:
            return copy.deepcopy(self._commands.get((key, language_code), []))

    @property
    def requests(self) -> list[tuple[str, JSONDict]]:
        """Every call that carried the right token: (method as sent, decoded parameters)."""
        with self._cond:
            return copy.deepcopy(self._requests)

    def calls(self, method: str) -> list[JSONDict]:
        """The parameters of every call of ``method`` (case-insensitive)."""
        wanted = method.lower()
        return [params for name, params in self.requests if name.lower() == wanted]

    @property
    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._cond:
            return len(self._updates)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of emulator bugs (answered as HTTP 500); should stay empty."""
        with self._cond:
            return list(self._errors)

    # HTTP entry point (called from handler threads)

    def _handle_http(
        self, path: str, query: str, content_type: str, body: bytes
    ) -> tuple[int, JSONDict]:
        """Answer one HTTP request: (status, JSON body)."""
        try:
            result = self._process(path, query, content_type, body)
        except ApiError as exc:
            return exc.error_code, exc.to_json()
        except Exception:
            # An emulator bug must fail the test visibly, not hang or crash the server.
            self._record_error(traceback.format_exc())
            error = ApiError(500, "Internal Server Error: emulator bug, see BotApiEmulator.errors")
            return 500, error.to_json()
        return 200, {"ok": True, "result": result}

    def _record_error(self, text: str) -> None:
        with self._cond:
            self._errors.append(text)

    def _process(self, path: str, query: str, content_type: str, body: bytes) -> object:
        with self._cond:
            if self._unavailable:
                raise ApiError(502, "Bad Gateway")
        method = self._route(path)
        params = _decode_params(query, content_type, body)
        with self._cond:
            self._requests.append((method, copy.deepcopy(params)))
            delay = self._delays.get(method.lower())
        handler = self._methods.get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        if delay is not None and not delay.after_processing:
            self._stop_event.wait(delay.seconds)
        with self._cond:
            self._raise_fault(method, params)
            result = copy.deepcopy(handler(params))
        if delay is not None and delay.after_processing:
            self._stop_event.wait(delay.seconds)
        return result

    def _route(self, path: str) -> str:
        prefix, _, rest = path.partition("/bot")
        token, slash, method = rest.partition("/")
        if prefix or not slash or not method or "/" in method:
            raise ApiError(404, "Not Found")
        if not secrets.compare_digest(token.encode(), self.token.encode()):
            raise ApiError(401, "Unauthorized")
        return method

    def _raise_fault(self, method: str, params: JSONDict) -> None:
        for fault in self._faults:
            if fault.method != method.lower():
                continue
            if fault.chat_id is not None and str(params.get("chat_id")) != str(fault.chat_id):
                continue
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            raise fault.error.fresh()

    # chats and users

    def _ensure_chat(
        self,
        chat_id: int,
        chat_type: str | None = None,
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = _Chat(chat_id, chat_type or _infer_chat_type(chat_id))
            if chat.type == "channel":
                chat.bot_status = "administrator"
            self._chats[chat_id] = chat
        elif chat_type is not None:
            chat.type = chat_type
        if chat.type == "private":
            chat.first_name = first_name or chat.first_name
            chat.username = username or chat.username
        else:
            chat.title = title or chat.title
            if username and chat.type in ("supergroup", "channel"):
                chat.username = username
        return chat

    def _resolve_chat(self, raw: object) -> _Chat:
        """The chat a request addresses, or the error Telegram would answer."""
        if raw is None or raw == "":
            raise _bad_request("chat_id is empty")
        chat: _Chat | None
        if isinstance(raw, str) and raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (c for c in self._chats.values() if c.username and c.username.lower() == name),
                None,
            )
        else:
            try:
                chat_id = int(str(raw))
            except ValueError:
                raise _bad_request("chat not found") from None
            chat = self._chats.get(chat_id)
            if chat is None and self._auto_create_chats:
                chat = self._ensure_chat(chat_id)
        if chat is None:
            raise _bad_request("chat not found")
        if chat.gone is not None:
            raise chat.gone.fresh()
        return chat

    def _chat_param(self, params: JSONDict) -> _Chat:
        return self._resolve_chat(params.get("chat_id"))

    @staticmethod
    def _gone_for_status(chat: _Chat, status: str) -> ApiError | None:
        if status == "kicked":
            if chat.type == "private":
                return ApiError(403, "Forbidden: bot was blocked by the user")
            return ApiError(403, f"Forbidden: bot was kicked from the {chat.kind()}")
        if status == "left" and chat.type != "private":
            return ApiError(403, f"Forbidden: bot is not a member of the {chat.kind()}")
        return None

    def _register_user(
        self, user_id: int, *, username: str | None, first_name: str | None
    ) -> JSONDict:
        user: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
        }
        if username:
            user["username"] = username
        self._users[user_id] = user
        return dict(user)

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _user_json(self, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            return self._bot_user()
        user = self._users.get(user_id)
        if user is None:
            return {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        return dict(user)

    def _member_status(self, chat: _Chat, user_id: int) -> str:
        if user_id == self.bot_id:
            return chat.bot_status
        if chat.type == "private":
            return "member" if user_id == chat.id else "left"
        return chat.members.get(user_id, "left")

    # updates

    def _queue_update(self, body: JSONDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": update_id, **body})
        self._cond.notify_all()
        return update_id

    def _incoming_message(self, chat: _Chat, text: str, sender: JSONDict) -> JSONDict:
        message: JSONDict = {
            "message_id": chat.allocate_message_id(),
            "date": int(time.time()),
            "chat": chat.to_json(),
            **sender,
            "text": text,
        }
        command = _BOT_COMMAND_RE.match(text)
        if command:
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}
            ]
        self._incoming[(chat.id, message["message_id"])] = message
        return copy.deepcopy(message)

    def _callback_message(self, chat: _Chat, message_id: int | None) -> JSONDict:
        if message_id is None:
            candidates = [m for m in self._sent if m.chat_id == chat.id and not m.deleted]
            message_id = candidates[-1].message_id if candidates else None
        stored = self._sent_index.get((chat.id, message_id)) if message_id is not None else None
        if stored is not None:
            return self._sent_json(stored)
        return {
            "message_id": message_id or chat.allocate_message_id(),
            "date": int(time.time()),
            "chat": chat.to_json(),
            "from": self._bot_user(),
        }

    def _confirm_updates(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable_updates(self, limit: int) -> list[JSONDict]:
        if self._allowed_updates:
            # Telegram never delivers update types the bot opted out of.
            allowed = set(self._allowed_updates)
            self._updates = [u for u in self._updates if allowed & u.keys()]
        return self._updates[:limit]

    # messages

    def _stored_message_json(self, chat_id: int, message_id: int) -> JSONDict | None:
        sent = self._sent_index.get((chat_id, message_id))
        if sent is not None and not sent.deleted:
            return self._sent_json(sent, with_reply=False)
        incoming = self._incoming.get((chat_id, message_id))
        return copy.deepcopy(incoming) if incoming is not None else None

    def _sent_json(self, sent: SentMessage, *, with_reply: bool = True) -> JSONDict:
        chat = self._chats[sent.chat_id]
        message: JSONDict = {
            "message_id": sent.message_id,
            "date": sent.date,
            "chat": chat.to_json(),
        }
        if chat.type == "channel":
            message["sender_chat"] = chat.to_json()
        else:
            message["from"] = self._bot_user()
        if sent.message_thread_id is not None:
            message["message_thread_id"] = sent.message_thread_id
        if with_reply and sent.reply_to_message_id is not None:
            target = self._stored_message_json(sent.chat_id, sent.reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = target
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        message["text"] = sent.text
        if sent.entities:
            message["entities"] = sent.entities
        if sent.link_preview_options:
            message["link_preview_options"] = sent.link_preview_options
        # Telegram echoes only inline keyboards; reply keyboards are not part of a Message.
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message

    def _formatted_text(self, params: JSONDict) -> tuple[str, list[JSONDict]]:
        """Plain text and entities of the ``text`` parameter, with Telegram's checks."""
        raw = params.get("text")
        if raw is None or raw == "":
            raise _bad_request("message text is empty")
        mode = params.get("parse_mode") or ""
        if mode.lower() == "html":
            try:
                text, entities = parse_html(raw, strict=self._strict_html)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif mode.lower() in ("markdown", "markdownv2"):
            raise _bad_request(f"unsupported parse_mode {mode} (the emulator implements HTML)")
        elif mode:
            raise _bad_request("unsupported parse_mode")
        else:
            given = params.get("entities") or []
            text, entities = raw, [dict(e) for e in given if isinstance(e, dict)]
        text, entities = _trim(text, entities)
        if not text:
            raise _bad_request("message text is empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        return text, entities

    def _reply_target(self, chat: _Chat, params: JSONDict) -> int | None:
        reply = _dict_param(params, "reply_parameters")
        source = reply if reply is not None else params
        key = "message_id" if reply is not None else "reply_to_message_id"
        if source.get(key) is None:
            return None
        message_id = _int_param(source, key, 0)
        if self._stored_message_json(chat.id, message_id) is None:
            if source.get("allow_sending_without_reply"):
                return None
            raise _bad_request("message to be replied not found")
        return message_id

    @staticmethod
    def _link_preview(params: JSONDict) -> JSONDict | None:
        options = _dict_param(params, "link_preview_options")
        if options is None and params.get("disable_web_page_preview"):
            options = {"is_disabled": True}
        return options

    def _editable_message(self, params: JSONDict) -> SentMessage:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID")
        chat = self._chat_param(params)
        if params.get("message_id") is None:
            raise _bad_request("message identifier is not specified")
        message_id = _int_param(params, "message_id", 0)
        sent = self._sent_index.get((chat.id, message_id))
        if sent is None or sent.deleted:
            if (chat.id, message_id) in self._incoming:
                raise _bad_request("message can't be edited")
            raise _bad_request("message to edit not found")
        if not sent.editable:
            raise _bad_request("message can't be edited")
        return sent

    # method handlers (called with the lock held)

    def _true(self, params: JSONDict) -> bool:
        return True

    def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        timeout = float(max(_int_param(params, "timeout", 0), 0))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()  # lets an older long poll see it was superseded
        self._confirm_updates(offset)
        deadline = time.monotonic() + timeout
        while not self._deliverable_updates(limit) and not self._stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
            if self._poll_generation != generation:
                # Like Telegram: a newer getUpdates terminates the older long poll.
                raise ApiError(409, _CONFLICT)
        return self._deliverable_updates(limit)

    def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._chat_param(params)
        if self._limiter is not None:
            retry_after = self._limiter.admit(chat.id)
            if retry_after is not None:
                self.too_many_requests += 1
                raise ApiError(
                    429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
                )
        text, entities = self._formatted_text(params)
        sent = SentMessage(
            chat_id=chat.id,
            message_id=0,
            text=text,
            html=params["text"],
            parse_mode=params.get("parse_mode") or None,
            entities=entities,
            reply_markup=_dict_param(params, "reply_markup"),
            disable_notification=bool(params.get("disable_notification")),
            reply_to_message_id=self._reply_target(chat, params),
            date=int(time.time()),
            message_thread_id=params.get("message_thread_id"),
            link_preview_options=self._link_preview(params),
        )
        sent.message_id = chat.allocate_message_id()
        self._sent.append(sent)
        self._sent_index[(chat.id, sent.message_id)] = sent
        self._cond.notify_all()
        return self._sent_json(sent)

    def _edit_message_text(self, params: JSONDict) -> JSONDict:
        text, entities = self._formatted_text(params)
        sent = self._editable_message(params)
        markup = _dict_param(params, "reply_markup")
        if (text, entities, markup) == (sent.text, sent.entities, sent.reply_markup):
            raise _bad_request(_NOT_MODIFIED)
        sent.edits.append(sent.text)
        sent.text, sent.entities, sent.html = text, entities, params["text"]
        sent.parse_mode = params.get("parse_mode") or None
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        self._cond.notify_all()
        return self._sent_json(sent)

    def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        sent = self._editable_message(params)
        markup = _dict_param(params, "reply_markup")
        if markup == sent.reply_markup:
            raise _bad_request(_NOT_MODIFIED)
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        return self._sent_json(sent)

    def _delete_message(self, params: JSONDict) -> bool:
        chat = self._chat_param(params)
        message_id = _int_param(params, "message_id", 0)
        sent = self._sent_index.get((chat.id, message_id))
        if sent is not None and not sent.deleted:
            sent.deleted = True
            return True
        if self._incoming.pop((chat.id, message_id), None) is not None:
            return True
        raise _bad_request("message to delete not found")

    def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_callbacks:
            raise ApiError(400, _QUERY_TOO_OLD)
        self._open_callbacks.discard(query_id)
        self._callback_answers.append(
            CallbackAnswer(
                callback_query_id=query_id,
                text=params.get("text"),
                show_alert=bool(params.get("show_alert")),
                url=params.get("url"),
                cache_time=params.get("cache_time"),
            )
        )
        return True

    def _scope_param(self, params: JSONDict) -> str:
        scope = _dict_param(params, "scope") or {"type": "default"}
        kind = scope.get("type")
        if kind not in _SCOPE_TYPES:
            raise _bad_request("unsupported bot command scope type")
        if kind in ("chat", "chat_administrators", "chat_member"):
            scope = {**scope, "chat_id": self._resolve_chat(scope.get("chat_id")).id}
        if kind == "chat_member" and scope.get("user_id") is None:
            raise _bad_request("user_id is empty")
        return _scope_key(scope)

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands") or []
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        stored = [_checked_command(command) for command in commands]
        key = (self._scope_param(params), str(params.get("language_code") or ""))
        self._commands[key] = stored
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        key = (self._scope_param(params), str(params.get("language_code") or ""))
        return self._commands.get(key, [])

    def _delete_my_commands(self, params: JSONDict) -> bool:
        key = (self._scope_param(params), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._chat_param(params)
        gift_types = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **chat.to_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gift_types,
        }

    def _get_chat_member(self, params: JSONDict) -> JSONDict:
        chat = self._chat_param(params)
        if params.get("user_id") is None:
            raise _bad_request("user_id is empty")
        user_id = _int_param(params, "user_id", 0)
        return _member_json(self._user_json(user_id), self._member_status(chat, user_id))

    def _get_chat_administrators(self, params: JSONDict) -> list[JSONDict]:
        chat = self._chat_param(params)
        if chat.type == "private":
            raise _bad_request("there are no administrators in the private chat")
        admins = {
            user_id: status
            for user_id, status in chat.members.items()
            if status in ("creator", "administrator")
        }
        if chat.bot_status in ("creator", "administrator"):
            admins[self.bot_id] = chat.bot_status
        ordered = sorted(admins.items(), key=lambda item: item[1] != "creator")
        return [_member_json(self._user_json(uid), status) for uid, status in ordered]

    def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat_param(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True


def _scope_key(scope: JSONDict) -> str:
    normalized = dict(scope)
    for name in ("chat_id", "user_id"):
        value = normalized.get(name)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            normalized[name] = int(value)
    return json.dumps(normalized, sort_keys=True)


def _checked_command(command: object) -> JSONDict:
    if not isinstance(command, dict):
        raise _bad_request("can't parse BotCommand: expected an object")
    for name in ("command", "description"):
        if not isinstance(command.get(name), str):
            raise _bad_request(f"can't parse BotCommand: Can't find field \"{name}\"")
    if not _COMMAND_RE.fullmatch(command["command"]):
        raise _bad_request("BOT_COMMAND_INVALID")
    description = command["description"].strip()
    if not description:
        raise _bad_request("command description must be non-empty")
    if len(description) > 256:
        raise _bad_request("command description is too long")
    return {"command": command["command"], "description": description}


_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
)
_RESTRICTED_RIGHTS = (
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_send_messages",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_manage_topics",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_edit_tag",
    "can_react_to_messages",
)


def _member_json(user: JSONDict, status: str) -> JSONDict:
    """A ChatMember of the given status with every field the Bot API marks as required."""
    member: JSONDict = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(
            dict.fromkeys(_ADMIN_RIGHTS, True),
            can_be_edited=False,
            is_anonymous=False,
            can_promote_members=False,
        )
    elif status == "restricted":
        member.update(dict.fromkeys(_RESTRICTED_RIGHTS, False), is_member=True, until_date=0)
    elif status == "kicked":
        member["until_date"] = 0
    return member


# -- HTTP plumbing -----------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when a client opens dozens of
    # connections at once, and each dropped SYN is retried only after 1 s.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: BotApiEmulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up keep-alive connections so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is not an error.
        if not isinstance(sys.exc_info()[1], _CLIENT_GONE):
            self.emulator._record_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer would wait ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True
    # Idle keep-alive connections must not pin a handler thread forever.
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with contextlib.suppress(*_CLIENT_GONE):
            super().finish()

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the request line contains the bot token."""

    def _answer(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        status, payload = self.server.emulator._handle_http(
            url.path, url.query, self.headers.get("Content-Type", ""), body
        )
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except _CLIENT_GONE:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._read_chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunks(self) -> Iterable[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()
