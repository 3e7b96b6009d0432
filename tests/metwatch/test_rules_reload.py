"""Hot reload: valid changes apply at once, invalid ones are rejected and admins told."""

from __future__ import annotations

from pathlib import Path

from metwatch.app import Service
from metwatch.settings import load_settings
from tests.rules_for_tests import write_rules
from tests.support.bot_api import BotApiEmulator

ADMIN = 99


async def test_reload_applies_valid_and_rejects_invalid_changes(
    tmp_path: Path, bot_api: BotApiEmulator, db_url: str
) -> None:
    path = write_rules(tmp_path, [{"id": "a", "name": "A", "url": "http://127.0.0.1:9/a.xml"}])
    settings = load_settings(
        telegram_token=bot_api.token, telegram_base_url=bot_api.base_url,
        database_url=db_url, rules_path=path, admin_chat_ids=[ADMIN],
    )  # fmt: skip
    service = Service(settings)
    assert service.application is not None
    async with service.application:
        assert await service.reloader.check() is None  # unchanged

        write_rules(tmp_path, [{"id": "b", "name": "B", "url": "http://127.0.0.1:9/b.xml"}])
        summary = await service.reloader.check()
        assert summary == "sources added: b; sources removed: a"
        assert [h.id for h in service.store.source_health()] == ["b"]
        assert service.pipeline.rules.version == service.store.get_meta("rules_version")

        good_version = service.pipeline.rules.version
        path.write_text(path.read_text().replace("    title: Met inspections", "    titel: x"))
        assert await service.reloader.check() is None
        assert await service.reloader.check() is None  # told once, not every tick
        assert service.pipeline.rules.version == good_version
    alerts = bot_api.messages(ADMIN)
    assert len(alerts) == 1
    assert (
        "rules change rejected" in alerts[0].text
        and "unknown key 'topics.0.titel'" in alerts[0].text
    )
    await service.close()
