"""Abuse control without identity: keyed hashes under a shared rotating key, rate limits per
client, and a counsellor's block that refuses the same client for a while."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import MetaData, select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.abuse.blocks import block_name
from app.abuse.ratelimit import KEY_ROTATION_SECONDS, ClientKeys, key_value_name
from app.broker.memory import MemoryBroker
from app.chats.crypto import KeyRing, TamperedError, generate_kek, parse_keks
from app.kit.db import unit_of_work
from app.runtime import Runtime
from app.settings import Settings
from tests.conftest import ServerFactory
from tests.support.clients import StaffClient, open_staff, open_visitor, sign_in
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, run_server
from tests.support.waiting import eventually

# Counters, keys and blocks live in the broker: on both brokers.
pytestmark = pytest.mark.both_brokers

SettingsFactory = Callable[..., Settings]
PROXY = {"trusted_proxies": ["127.0.0.1"]}


def via(address: str) -> dict[str, str]:
    """Headers of a request relayed by the reverse proxy in front of Lykta."""
    return {"X-Forwarded-For": address}


class JumpingClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    lykta: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn would trust this variable; Lykta's uvicorn options override it.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    async with lykta(connection_rate_per_minute=2) as server:
        for address in ("203.0.113.1", "203.0.113.2"):
            await (await open_visitor(server, via(address))).close()
        with pytest.raises(InvalidStatus) as refused:
            await open_visitor(server, via("203.0.113.3"))  # same client: our peer address
        assert refused.value.response.status_code == 429
    async with lykta(connection_rate_per_minute=2, **PROXY) as server:
        for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "2001:db8::1"):
            await (await open_visitor(server, via(address))).close()
        await (await open_visitor(server, via("203.0.113.9"))).close()
        await (await open_visitor(server, via("203.0.113.9"))).close()
        with pytest.raises(InvalidStatus) as refused:
            await open_visitor(server, via("203.0.113.9"))
        assert refused.value.response.status_code == 429


async def staff_from(server: RunningServer, cookie: str, headers: dict[str, str]) -> StaffClient:
    """A counsellor's console connecting through the proxy from the given address."""
    ws = await connect(
        f"{server.ws_url}/ws/staff",
        additional_headers={"Cookie": f"lykta_session={cookie}", **headers},
        compression=None,
    )
    client = StaffClient(ws)
    client.hello = await client.expect("hello")
    return client


async def test_counsellors_and_visitors_at_one_address_have_their_own_connection_budgets(
    lykta: ServerFactory,
) -> None:
    async with lykta(connection_rate_per_minute=3, **PROXY) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        cookie = await sign_in(server, "anna", PASSWORD)
        office = via("203.0.113.40")  # a shelter's Wi-Fi: visitors and a counsellor share it
        for _ in range(3):
            await (await open_visitor(server, office)).close()
        with pytest.raises(InvalidStatus) as refused:
            await open_visitor(server, office)
        assert refused.value.response.status_code == 429
        # The counsellor there is not locked out by the visitors' flood.
        consoles = [await staff_from(server, cookie, office) for _ in range(3)]
        assert len({c.hello["staff"]["id"] for c in consoles}) == 1
        # A flood of staff connections is limited all the same.
        with pytest.raises(InvalidStatus) as refused:
            await staff_from(server, cookie, office)
        assert refused.value.response.status_code == 429
        # And it does not count against visitors either way: still refused, not more so.
        with pytest.raises(InvalidStatus):
            await open_visitor(server, office)
        await (await open_visitor(server, via("203.0.113.41"))).close()
        for console in consoles:
            await console.close()


async def test_message_rate_is_per_client_across_connections(lykta: ServerFactory) -> None:
    async with lykta(visitor_message_rate_per_minute=4, **PROXY) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna", capacity=3)
        await open_staff(server, "anna", PASSWORD)
        first = await open_visitor(server, via("203.0.113.20"))
        second = await open_visitor(server, via("203.0.113.20"))
        await first.start()  # 1
        await second.start()  # 2
        stored = await first.say("one", client_id="c1")  # 3
        await second.say("two")  # 4
        await first.send({"type": "message", "text": "three", "client_id": "c3"})
        limited = await first.expect("error", ref="message")
        assert limited["code"] == "rate_limited"
        # A resend of a message that was stored (its ack lost) is still acknowledged, once.
        await first.send({"type": "message", "text": "one", "client_id": "c1"})
        again = await first.expect("message.ack", client_id="c1")
        assert again["seq"] == stored["seq"] and again["duplicate"] is True
        third = await open_visitor(server, via("203.0.113.20"))
        await third.send({"type": "start", "line": "support", "language": "sv"})
        assert (await third.expect("error", ref="start"))["code"] == "rate_limited"
        # Nothing was stored for the refused message; another client is not affected.
        entries = await server.runtime.transcript.read(first.chat_id, 0)
        assert [e.text for _, e in entries if e.text] == ["one"]
        other = await open_visitor(server, via("203.0.113.21"))
        await other.start()
        await other.say("I am someone else")


async def test_the_hashing_key_is_shared_wrapped_by_the_kek_and_rotates_daily() -> None:
    clock = JumpingClock()
    broker = MemoryBroker(clock=clock)
    keyring = KeyRing(parse_keks(generate_kek("k1")))
    # Two processes on one broker agree on the key, so they count the same client as one.
    one, two = ClientKeys(broker, keyring), ClientKeys(broker, keyring)
    first = await one.tag("203.0.113.7", earlier=True)
    assert first == await two.tag("203.0.113.7", earlier=True)
    assert first.current != (await one.tag("203.0.113.8", earlier=False)).current
    assert first.earlier == ()
    # In the broker the key is only wrapped: a copy of the broker without the KEK cannot
    # test guessed addresses against the hashes.
    rotation = int(clock() // KEY_ROTATION_SECONDS)
    stored = await broker.get_value(key_value_name(rotation))
    assert stored is not None and stored.startswith("k1:")
    assert len(keyring.unwrap(stored, "client")) == 32
    with pytest.raises(TamperedError):
        keyring.unwrap(stored)  # not usable as a chat key either
    assert b"203.0.113.7" not in broker.dump()
    # A day later there is a new key; the old one is still used to recognise blocks.
    clock.offset = KEY_ROTATION_SECONDS
    later = await two.tag("203.0.113.7", earlier=True)
    assert later.current != first.current
    assert later.earlier == (first.current,)
    clock.offset = 3 * KEY_ROTATION_SECONDS
    much_later = await one.tag("203.0.113.7", earlier=True)
    assert first.current not in much_later.all


async def test_a_blocked_visitor_is_refused_neutrally_until_the_block_expires(
    lykta: ServerFactory,
) -> None:
    async with lykta(block_seconds=2, **PROXY) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        abusive = await open_visitor(server, via("203.0.113.66"))
        await abusive.start()
        await anna.accept_offer()
        record = await rt.broker.get_chat(abusive.chat_id)
        assert record is not None and record.visitor_tag is not None
        tag = record.visitor_tag
        await abusive.say("abuse")
        await anna.send({"type": "block", "chat_id": abusive.chat_id})
        blocked = await anna.expect("blocked", chat_id=abusive.chat_id)
        assert blocked["until"] > time.time()
        # The visitor sees an ordinary end; the counsellor still wraps up.
        ended = await abusive.expect("chat.ended")
        assert (ended["by"], ended["reason"]) == ("counsellor", "counsellor_ended")
        await anna.expect("wrapup.required", chat_id=abusive.chat_id)

        again = await open_visitor(server, via("203.0.113.66"))
        await again.send({"type": "start", "line": "support", "language": "en"})
        refused = await again.expect("line.closed")
        assert refused["reason"] == "unavailable"
        assert refused["alternatives"] == "Call 112 in an emergency."
        assert await rt.broker.queue_length("support") == 0
        someone_else = await open_visitor(server, via("203.0.113.67"))
        await someone_else.start()
        await anna.expect("offer", chat_id=someone_else.chat_id)

        # The block lives in the broker only, under the keyed hash, and never reached staff.
        assert await rt.broker.get_value(block_name(tag)) is not None
        assert tag not in await sql_dump(rt)
        assert all(tag not in str(frame) for frame in anna.received)
        await eventually(
            lambda: _unblocked(rt, tag), timeout=2 + 10, what="the block expired by itself"
        )
        back = await open_visitor(server, via("203.0.113.66"))
        await back.start()


async def _unblocked(rt: Runtime, tag: str) -> bool:
    return await rt.broker.get_value(block_name(tag)) is None


async def sql_dump(rt: Runtime) -> str:
    """Every row of every table, as text."""
    async with unit_of_work(rt.sessionmaker) as session:
        connection = await session.connection()
        metadata = MetaData()
        await connection.run_sync(lambda sync: metadata.reflect(sync))
        rows: list[str] = []
        for table in metadata.sorted_tables:
            rows.extend(str(tuple(row)) for row in await session.execute(select(table)))
    return "\n".join(rows)


async def test_a_block_holds_across_a_key_rotation(settings_for: SettingsFactory) -> None:
    clock = JumpingClock()
    broker = MemoryBroker(clock=clock)
    async with run_server(settings_for(**PROXY), broker) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        abusive = await open_visitor(server, via("203.0.113.70"))
        await abusive.start()
        await anna.accept_offer()
        await anna.send({"type": "block", "chat_id": abusive.chat_id})
        await anna.expect("blocked")
        clock.offset = KEY_ROTATION_SECONDS + 3600  # the next day: a new hashing key
        again = await open_visitor(server, via("203.0.113.70"))
        await again.send({"type": "start", "line": "support", "language": "sv"})
        assert (await again.expect("line.closed"))["reason"] == "unavailable"


async def test_block_is_refused_for_chats_that_are_not_yours_or_not_answered(
    lykta: ServerFactory,
) -> None:
    async with lykta(**PROXY) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", capacity=1)
        await add_counsellor(rt, "bo", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_visitor(server, via("203.0.113.80"))
        await visitor.start()
        offer = await anna.expect("offer")
        # Offered but not accepted: not hers yet.
        await anna.send({"type": "block", "chat_id": offer["chat_id"]})
        assert (await anna.expect("error", ref="block"))["code"] == "not_in_chat"
        await anna.accept(offer["chat_id"])
        bo = await open_staff(server, "bo", PASSWORD)
        await bo.send({"type": "block", "chat_id": visitor.chat_id})
        assert (await bo.expect("error", ref="block"))["code"] == "not_in_chat"
        await bo.send({"type": "block", "chat_id": "no-such-chat-1"})
        assert (await bo.expect("error", ref="block"))["code"] == "not_in_chat"
        await anna.send({"type": "block", "chat_id": visitor.chat_id})
        await anna.expect("blocked")
        # After the wrap-up the chat is gone: nothing left to block.
        await anna.send(
            {
                "type": "wrapup",
                "chat_id": visitor.chat_id,
                "topics": [],
                "outcome": "support given",
            }
        )
        await anna.expect("wrapup.saved")
        await anna.send({"type": "block", "chat_id": visitor.chat_id})
        assert (await anna.expect("error", ref="block"))["code"] == "not_in_chat"
