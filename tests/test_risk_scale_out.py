"""Risk and care across two `lykta serve` processes on one Redis (docs/risk.md): an acute
alert reaches a supervisor connected to the other process, and the pause after an acute chat
holds for the routing of both, until "Ready" on either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_alerts_and_the_pause_are_shared_by_processes(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "bo", alias="Bo", supervisor=True)
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(a, "anna", PASSWORD)
        bo = await open_staff(b, "bo", PASSWORD, available=False)
        visitor = await open_chat(b, anna)
        await visitor.expect("counsellor.joined")
        await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
        assert (await anna.expect("risk.set"))["supervisors"] == 1
        alert = await bo.expect("risk.alert")
        assert alert["chat_id"] == visitor.chat_id and alert["counsellor"]["alias"] == "Anna"

        await anna.send({"type": "end", "chat_id": visitor.chat_id})
        paused = await anna.expect("care.paused")
        # A visitor arrives through the other process: its routing sees the pause too.
        waiting = await open_visitor(b)
        await waiting.start()
        await anna.expect_none("offer", within=2.0)
        # A second console of Anna's on the other process knows she is pausing.
        again = await open_staff(b, "anna", PASSWORD, cookie=anna.cookie)
        assert again.hello["paused_until"] == paused["until"]
        await again.send({"type": "ready"})
        await again.expect("care.ready")
        assert (await anna.expect("care.ready"))["reason"] == "ready"
        assert (await anna.expect("offer"))["chat_id"] == waiting.chat_id
