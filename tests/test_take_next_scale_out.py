"""Twenty counsellors on two `lykta serve` processes on one Redis take chats at once: no chat
is taken twice, nobody goes over capacity (the claim is the broker's compare-and-set)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.clients import StaffClient, open_staff, open_visitor
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_twenty_counsellors_on_two_processes_never_take_one_chat_twice(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    names = [f"c{i:02d}" for i in range(20)]
    async with seeding(settings) as rt:
        await add_line(rt, assignment="taken", max_queue_length=100)
        for name in names:
            await add_counsellor(rt, name, capacity=2)
    async with processes(settings, tmp_path) as (a, b):
        staff = [
            await open_staff(a if index % 2 else b, name, PASSWORD)
            for index, name in enumerate(names)
        ]
        visitors = []
        for index in range(30):
            visitor = await open_visitor(b if index % 2 else a)
            await visitor.start()
            visitors.append(visitor)
        await visitors[-1].expect("queue.position", position=30)

        async def press(counsellor: StaffClient) -> list[str]:
            # Each presses three times at once: the third always finds them full.
            for _ in range(3):
                await counsellor.send({"type": "take", "line": "support"})
            got = []
            for _ in range(3):
                frame = await counsellor.expect(frozenset({"taken", "error"}))
                if frame["type"] == "taken":
                    got.append(str(frame["chat_id"]))
                else:
                    assert frame["code"] in {"over_capacity", "nothing_to_take"}
            return got

        taken = await asyncio.gather(*(press(c) for c in staff))
        everyone = [chat for got in taken for chat in got]
        assert len(everyone) == len(set(everyone))
        assert sorted(everyone) == sorted(v.chat_id for v in visitors)
        assert all(len(got) <= 2 for got in taken)
        for visitor in visitors:
            await visitor.expect("counsellor.joined")
        for visitor in visitors:
            await visitor.expect_none("counsellor.joined", within=0.2)
