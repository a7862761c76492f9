"""Queue order with visitors arriving through two Lykta processes on one Redis.

Each process is a real `lykta serve`; one of them has a clock that runs at half speed (as a
badly synchronised machine's may drift), so its own estimate of Redis's clock is off by up to
half a second between two measurements. The queue time comes from Redis as a chat is queued,
so that estimate must not matter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.clients import VisitorClient, open_chat, open_staff, open_visitor
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VISITORS = 10


def positions(visitor: VisitorClient) -> list[int]:
    return [int(f["position"]) for f in visitor.seen("queue.position")]


async def test_visitors_on_two_processes_are_queued_and_offered_in_arrival_order(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, max_queue_length=50)
        await add_counsellor(rt, "anna", capacity=1)
    # The second process's clock runs at half speed.
    async with processes(settings, tmp_path, rates=(1.0, 0.5)) as (a, b):
        anna = await open_staff(a, "anna", PASSWORD)
        # Anna is busy with a first chat: everyone after it waits.
        first = await open_chat(a, anna)
        await first.expect("counsellor.joined")
        arrivals = [await open_visitor((a, b)[index % 2]) for index in range(VISITORS)]
        # One after another, alternately on each process: each arrives once the one before
        # was shown its place.
        for place, visitor in enumerate(arrivals, start=1):
            await visitor.start()
            shown = await visitor.expect("queue.position", chat_id=visitor.chat_id)
            assert shown["position"] == place

        # Anna takes them one at a time: in the order they came.
        current = first.chat_id
        for index, visitor in enumerate(arrivals):
            await anna.send({"type": "end", "chat_id": current})
            offer = await anna.expect("offer")
            assert offer["chat_id"] == visitor.chat_id, f"arrival {index + 1} was overtaken"
            await anna.accept(offer["chat_id"])
            await visitor.expect("counsellor.joined")
            current = visitor.chat_id

        # Nobody's place went back while they waited (what each was shown until answered).
        for visitor in arrivals:
            seen = positions(visitor)
            assert seen == sorted(seen, reverse=True), f"a place shown was taken: {seen}"
