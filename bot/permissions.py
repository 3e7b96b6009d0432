"""Who may change what a chat follows: anyone in a private chat, admins elsewhere.

In groups and supergroups the sender must be the chat's creator or an
administrator (asked with getChatMember). A channel post can only come from
the channel's admins, and a message sent "as the group" comes from an
anonymous admin, so both are allowed without asking. A button press in a
channel or group is checked like a message from the person who pressed it.

Does not decide who the bot's own administrators are (``bot.admin`` does).
"""

from __future__ import annotations

import logging

from telegram import Bot, Chat, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

log = logging.getLogger(__name__)

_ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})
REFUSAL = "Sorry, only this chat's administrators can change what it follows."


async def may_change_follows(update: Update, bot: Bot) -> bool:
    """True when the sender of ``update`` may change the subscriptions of its chat."""
    chat = update.effective_chat
    if chat is None:
        return False
    if chat.type == ChatType.PRIVATE or update.channel_post is not None:
        return True
    message = update.message
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # an anonymous admin of this chat
    user = update.effective_user
    return user is not None and await is_chat_admin(bot, chat, user.id)


async def is_chat_admin(bot: Bot, chat: Chat, user_id: int) -> bool:
    try:
        member = await bot.get_chat_member(chat.id, user_id)
    except TelegramError as e:
        log.warning("cannot check member %s of chat %s: %s", user_id, chat.id, e.message)
        return False
    return member.status in _ADMIN_STATUSES
