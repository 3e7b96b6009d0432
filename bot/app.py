"""Build the python-telegram-bot Application: token, Bot API base URL, rate limiter."""

from __future__ import annotations

from telegram.ext import Application, ApplicationBuilder

from bot.ratelimit import RollingWindowLimiter


def build_application(token: str, base_url: str) -> Application:  # type: ignore[type-arg]
    """An Application for ``token`` talking to ``base_url`` (default api.telegram.org).

    RollingWindowLimiter keeps sends within Telegram's broadcast limits (30
    messages/s overall, 20/min per group, as rolling windows; see bot.ratelimit
    for why not AIORateLimiter). A RetryAfter still reaches the deliverer, which
    reschedules that one chat instead of stalling the batch.
    """
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .rate_limiter(RollingWindowLimiter())
        .concurrent_updates(False)
        .build()
    )
