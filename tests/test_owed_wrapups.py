"""Wrap-ups still owed survive a reload or a dropped connection (issue 8's console).

The staff `hello` lists them; saving one (or its window lapsing) takes it off the list.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from app.broker.redis import RedisBroker
from app.chats.channels import Deadline, deadline_key
from tests.support.clients import StaffClient, open_chat, open_staff
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers

SAVE = {"topics": ["violence"], "outcome": "support given"}


async def chat_with(server: RunningServer, anna: StaffClient) -> str:
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")
    return visitor.chat_id


async def test_an_owed_wrapup_is_listed_on_every_reconnect_until_it_is_saved(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    assert anna.hello["wrapups"] == []
    chat_id = await chat_with(server, anna)
    required = await anna.expect("wrapup.required", chat_id=chat_id)

    # A reload: the old socket goes, a new one says hello with the wrap-up still to do.
    await anna.close()
    again = await open_staff(server, "anna", PASSWORD, available=False)
    assert again.hello["chats"] == []
    owed = again.hello["wrapups"]
    assert owed == [{k: v for k, v in required.items() if k != "type"}]
    assert owed[0]["chat_id"] == chat_id and owed[0]["line"] == "support"
    assert "violence" in owed[0]["topics"] and "support given" in owed[0]["outcomes"]
    if isinstance(rt.broker, RedisBroker):
        # The index outlives no process forever: it expires with the wrap-up window.
        assert await rt.broker.keys_without_ttl() == []

    await again.send({"type": "wrapup", "chat_id": chat_id, **SAVE})
    await again.expect("wrapup.saved", chat_id=chat_id)
    await again.close()
    third = await open_staff(server, "anna", PASSWORD, available=False)
    assert third.hello["wrapups"] == []


async def test_a_chat_that_ends_while_the_console_is_away_is_owed_on_return(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    await anna.close()
    # Within the counsellor's grace the chat is still theirs; the visitor ends it now.
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")

    back = await open_staff(server, "anna", PASSWORD, available=False)
    assert back.hello["chats"] == []
    assert [w["chat_id"] for w in back.hello["wrapups"]] == [visitor.chat_id]
    await back.send({"type": "wrapup", "chat_id": visitor.chat_id, **SAVE})
    await back.expect("wrapup.saved", chat_id=visitor.chat_id)
    await back.close()
    assert (await open_staff(server, "anna", PASSWORD, available=False)).hello["wrapups"] == []


async def test_a_lapsed_window_takes_the_wrapup_off_the_list(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    chat_id = await chat_with(server, anna)
    await anna.expect("wrapup.required", chat_id=chat_id)
    # The forget deadline is what falls due when the wrap-up window ends.
    await rt.chats.deadlines.handle(deadline_key(Deadline.forget, chat_id))
    await anna.close()
    again = await open_staff(server, "anna", PASSWORD, available=False)
    assert again.hello["wrapups"] == []
    await again.send({"type": "wrapup", "chat_id": chat_id, **SAVE})
    assert (await again.expect("error"))["code"] == "not_in_chat"


async def test_bad_wrapups_of_an_owed_chat_lose_nothing_and_tell_no_one_else(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    await add_counsellor(rt, "bo")
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    chat_id = await chat_with(server, anna)
    await anna.expect("wrapup.required", chat_id=chat_id)
    await anna.close()

    # A colleague is not told of it and cannot save it.
    bo_again = await open_staff(server, "bo", PASSWORD, available=False)
    assert bo_again.hello["wrapups"] == []
    await bo.send({"type": "wrapup", "chat_id": chat_id, **SAVE})
    assert (await bo.expect("error"))["code"] == "not_in_chat"

    back = await open_staff(server, "anna", PASSWORD, available=False)
    bad: list[dict[str, object]] = [
        {"type": "wrapup", "chat_id": chat_id},
        {"type": "wrapup", "chat_id": chat_id, "topics": "violence", "outcome": "x"},
        {"type": "wrapup", "chat_id": chat_id, "topics": ["x" * 5_000], "outcome": "y"},
        {"type": "wrapup", "chat_id": chat_id, "topics": ["astrology"], "outcome": "referred"},
        {"type": "wrapup", "chat_id": "", **SAVE},
        {"type": "wrapup", "chat_id": "no-such-chat", **SAVE},
    ]
    for frame in bad:
        await back.send(frame)
        assert (await back.expect("error"))["code"]
    # A burst of them: refused, and the wrap-up is still owed afterwards.
    for _ in range(20):
        await back.send({"type": "wrapup", "chat_id": "no-such-chat", **SAVE})
    # An oversized frame closes the socket (1009); the wrap-up is still owed on the next one.
    await back.send({"type": "wrapup", "chat_id": chat_id, "topics": ["x" * 100_000]})
    with pytest.raises(ConnectionClosed):
        while True:
            await back.ws.recv()
    last = await open_staff(server, "anna", PASSWORD, available=False)
    assert [w["chat_id"] for w in last.hello["wrapups"]] == [chat_id]
    await last.send({"type": "wrapup", "chat_id": chat_id, **SAVE})
    await last.expect("wrapup.saved", chat_id=chat_id)
