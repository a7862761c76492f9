"""What every broker must do: each test runs on the in-process broker and on real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.broker.base import Appending, Broker, Lease, Quota, Refusal, Transition
from app.broker.hub import Event
from app.broker.records import (
    PRIORITY_NORMAL,
    PRIORITY_RETURNED,
    WAITING_STATES,
    ChatRecord,
    ChatState,
    Presence,
    StaffStatus,
    queue_score,
    queued_at_of,
)
from tests.conftest import BrokerFactory

# The chat core's behaviour, on both brokers (issue 6).
pytestmark = pytest.mark.both_brokers


@pytest.fixture
async def broker(broker_factory: BrokerFactory) -> AsyncIterator[Broker]:
    async with broker_factory() as b:
        yield b


def record(chat_id: str, *, line: str = "support", at: float = 100.0, **extra: Any) -> ChatRecord:
    return ChatRecord(
        id=chat_id,
        line=line,
        language="sv",
        state=ChatState.queued,
        resume_digest="d",
        created_at=at,
        queued_at=at,
        **extra,
    )


async def one(
    broker: Broker,
    chat_id: str,
    seq: int,
    entry: bytes,
    *,
    dedupe: str | None = None,
    counsellor: str | None = None,
    announce: tuple[str, Event] | None = None,
    quota: Quota | None = None,
) -> tuple[int, str]:
    """`append` for one entry, answered as one."""
    answers = await broker.append(
        chat_id, [(seq, entry, dedupe, announce)], counsellor=counsellor, quota=quota
    )
    assert len(answers) == 1
    return answers[0]


async def test_queue_orders_by_priority_then_arrival_and_respects_its_limit(
    broker: Broker,
) -> None:
    before = broker.now()
    a = await broker.create_chat(record("a", at=100), queue_limit=3)
    # The time a record was made with does not count: the broker's clock as it stores it does.
    b = await broker.create_chat(record("b", at=90), queue_limit=3)
    c = await broker.create_chat(record("c", priority=PRIORITY_RETURNED), queue_limit=3)
    after = broker.now()
    assert a is not None and b is not None and c is not None
    assert (a.position, b.position, c.position) == (1, 2, 1)
    assert await broker.create_chat(record("d"), queue_limit=3) is None
    queued = await broker.queue("support")
    assert [chat_id for chat_id, _ in queued] == ["c", "a", "b"]
    # The clock of Redis and the estimate of it here agree to well within a second.
    assert before - 1 <= a.queued_at < b.queued_at < c.queued_at <= after + 1
    assert queued_at_of(queued[0][1]) == pytest.approx(c.queued_at, abs=1e-3)
    stored = await broker.get_chat("b")
    assert stored is not None and stored.queued_at == b.queued_at
    assert await broker.queue_length("support") == 3
    assert await broker.get_chat("d") is None
    assert sorted(await broker.line_chat_ids("support")) == ["a", "b", "c"]


async def test_chats_queued_together_keep_their_order(broker: Broker) -> None:
    """However close together (closer than a queue score can tell apart), each chat goes
    behind those queued before it at its priority: a position shown is never taken."""
    ids = [f"c{n:03d}" for n in range(60)]
    # Descending ids: equal scores would order them the other way round.
    ids.reverse()
    queued = await asyncio.gather(*(broker.create_chat(record(c), queue_limit=100) for c in ids))
    assert [q.position if q else None for q in queued] == list(range(1, 61))
    assert [chat_id for chat_id, _ in await broker.queue("support")] == ids
    # A chat put back with its own (earlier) time still goes ahead of them.
    first = queued[0]
    assert first is not None
    await broker.create_chat(record("late", priority=PRIORITY_NORMAL), queue_limit=100)
    back = Transition(
        expect=WAITING_STATES, changes={}, dequeue=True, enqueue=queue_score(0, first.queued_at - 1)
    )
    assert isinstance(await broker.transition(ids[-1], back), ChatRecord)
    order = [chat_id for chat_id, _ in await broker.queue("support")]
    assert order[0] == ids[-1] and order[-1] == "late"


async def test_transition_is_compare_and_set(broker: Broker) -> None:
    await broker.create_chat(record("a"), queue_limit=10)
    offer = Transition(
        expect=WAITING_STATES,
        changes={"state": ChatState.offered, "offered_to": "s1"},
        dequeue=True,
        assign=("s1", 1),
    )
    result = await broker.transition("a", offer)
    assert isinstance(result, ChatRecord) and result.state is ChatState.offered
    assert await broker.queue("support") == []
    assert await broker.staff_loads(["s1"]) == {"s1": 1}
    # The same claim again: the chat is no longer waiting.
    assert await broker.transition("a", offer) is Refusal.state
    assert await broker.transition("missing", offer) is Refusal.missing
    accept_by_other = Transition(
        expect=frozenset({ChatState.offered}), offered_to="s2", changes={"state": ChatState.active}
    )
    assert await broker.transition("a", accept_by_other) is Refusal.mismatch
    stored = await broker.get_chat("a")
    assert stored is not None and stored.state is ChatState.offered and stored.offered_to == "s1"


async def test_transition_can_require_the_continuity_state(broker: Broker) -> None:
    """Of two takes of one offered continuity code, exactly one goes through."""
    await broker.create_chat(record("a", continuity="offered"), queue_limit=10)
    await broker.create_chat(record("b"), queue_limit=10)
    take = Transition(expect=WAITING_STATES, changes={"continuity": "issued"}, continuity="offered")
    results = await asyncio.gather(*(broker.transition("a", take) for _ in range(5)))
    assert sum(isinstance(r, ChatRecord) for r in results) == 1
    assert results.count(Refusal.mismatch) == 4
    stored = await broker.get_chat("a")
    assert stored is not None and stored.continuity == "issued"
    # A chat with no offer at all is refused the same way.
    assert await broker.transition("b", take) is Refusal.mismatch


async def test_capacity_is_checked_inside_the_claim(broker: Broker) -> None:
    for name in ("a", "b"):
        await broker.create_chat(record(name), queue_limit=10)
    claim = Transition(
        expect=WAITING_STATES, changes={"state": ChatState.offered}, dequeue=True, assign=("s1", 1)
    )
    assert isinstance(await broker.transition("a", claim), ChatRecord)
    assert await broker.transition("b", claim) is Refusal.capacity
    assert [c for c, _ in await broker.queue("support")] == ["b"]
    release = Transition(
        expect=frozenset({ChatState.offered}), changes={"state": ChatState.ended}, release="s1"
    )
    assert isinstance(await broker.transition("a", release), ChatRecord)
    assert isinstance(await broker.transition("b", claim), ChatRecord)
    assert await broker.staff_chat_ids("s1") == ["b"]
    assert await broker.line_chat_ids("support") == ["b"]


async def test_concurrent_claims_never_give_one_chat_twice(broker: Broker) -> None:
    await broker.create_chat(record("a"), queue_limit=10)

    async def claim(staff: str) -> ChatRecord | Refusal:
        return await broker.transition(
            "a",
            Transition(
                expect=WAITING_STATES,
                changes={"state": ChatState.offered, "offered_to": staff},
                dequeue=True,
                assign=(staff, 3),
            ),
        )

    results = await asyncio.gather(*(claim(f"s{i}") for i in range(20)))
    winners = [r for r in results if isinstance(r, ChatRecord)]
    assert len(winners) == 1
    loads = await broker.staff_loads([f"s{i}" for i in range(20)])
    assert sum(loads.values()) == 1


async def test_an_interpreter_asked_or_in_a_chat_counts_it_until_it_is_gone(
    broker: Broker,
) -> None:
    """An interpreter's places are a load like a counsellor's: asking them fills one inside
    the claim, and deleting the chat frees it whatever the process that ended it did."""
    for name in ("a", "b"):
        await broker.create_chat(record(name), queue_limit=10)
        answered = Transition(expect=WAITING_STATES, changes={"state": ChatState.active})
        assert isinstance(await broker.transition(name, answered), ChatRecord)

    def ask(staff: str) -> Transition:
        return Transition(
            expect=frozenset({ChatState.active}),
            interpreter="",
            changes={"interpreter": f"asked:{staff}"},
            assign=(staff, 1),
        )

    assert isinstance(await broker.transition("a", ask("i1")), ChatRecord)
    assert await broker.transition("b", ask("i1")) is Refusal.capacity
    join = Transition(
        expect=frozenset({ChatState.active}),
        interpreter="asked:i1",
        changes={"interpreter": "in:i1"},
    )
    assert isinstance(await broker.transition("a", join), ChatRecord)
    assert await broker.staff_chat_ids("i1") == ["a"]
    await broker.delete_chat("a")
    assert await broker.staff_loads(["i1"]) == {"i1": 0}
    assert isinstance(await broker.transition("b", ask("i1")), ChatRecord)
    await broker.delete_chat("b")
    assert await broker.staff_loads(["i1"]) == {"i1": 0}


async def test_transcript_append_is_compare_and_set_with_dedupe(broker: Broker) -> None:
    await broker.create_chat(record("a"), queue_limit=10)
    assert await one(broker, "a", 1, b"one", dedupe="c1") == (1, "ok")
    assert await one(broker, "a", 1, b"again", dedupe="c2") == (1, "conflict")
    assert await one(broker, "a", 5, b"gap") == (1, "conflict")
    assert await one(broker, "a", 2, b"two") == (2, "ok")
    assert await one(broker, "a", 3, b"dup", dedupe="c1") == (1, "duplicate")
    assert await broker.read("a", 0) == [(1, b"one"), (2, b"two")]
    assert await broker.read("a", 1) == [(2, b"two")]
    assert await broker.read("a", 2) == []
    # Only the counsellor of an active chat may append as that counsellor.
    assert await one(broker, "a", 3, b"x", counsellor="s1") == (0, "forbidden")
    await broker.transition(
        "a",
        Transition(
            expect=WAITING_STATES,
            changes={"state": ChatState.active, "counsellor_id": "s1"},
            dequeue=True,
        ),
    )
    assert await one(broker, "a", 3, b"three", counsellor="s1") == (3, "ok")
    await broker.delete_transcript("a")
    assert await broker.read("a", 0) == []
    await broker.transition(
        "a", Transition(expect=frozenset({ChatState.active}), changes={"state": ChatState.ended})
    )
    assert await one(broker, "a", 4, b"late") == (0, "ended")
    assert await one(broker, "nope", 1, b"x") == (0, "ended")


async def test_append_checks_and_counts_a_quota_shared_with_incr(broker: Broker) -> None:
    """A visitor's message limit is checked and counted with the append (one trip to Redis);
    the counter is the one `incr` keeps, shared by every chat of the client."""
    await broker.create_chat(record("a"), queue_limit=10)
    await broker.create_chat(record("b"), queue_limit=10)
    quota = Quota("rl:msg:client", limit=3, window=0.3)
    assert await broker.incr(quota.key, ttl=0.3) == 1  # a start counts too
    assert await one(broker, "a", 1, b"one", dedupe="c1", quota=quota) == (1, "ok")
    # A conflict stores nothing and counts nothing.
    assert await one(broker, "a", 1, b"again", quota=quota) == (1, "conflict")
    assert await one(broker, "b", 1, b"two", quota=quota) == (1, "ok")
    assert await one(broker, "a", 2, b"three", quota=quota) == (0, "limited")
    # A resend of what was stored is answered as a duplicate even at the limit.
    assert await one(broker, "a", 2, b"one", dedupe="c1", quota=quota) == (1, "duplicate")
    # Without a quota (staff entries) nothing is limited; nothing was stored for the refusal.
    assert await one(broker, "a", 2, b"joined") == (2, "ok")
    assert await broker.read("a", 0) == [(1, b"one"), (2, b"joined")]
    assert await broker.incr(quota.key, ttl=0.3) == 4
    await asyncio.sleep(0.4)  # the window passes
    assert await one(broker, "a", 3, b"later", quota=quota) == (3, "ok")
    assert await broker.incr(quota.key, ttl=0.3) == 2


async def test_a_burst_is_stored_in_order_and_answered_entry_by_entry(broker: Broker) -> None:
    """A visitor's messages read together go in one step: each answered as `append` answers
    it (a resend as a duplicate), announced once stored, and nothing looked at after a
    number someone else took first."""
    await broker.create_chat(record("a"), queue_limit=10)
    heard: list[Event] = []
    broker.hub.add("chat:a", heard.append)

    def burst(first: int, *names: str) -> list[Appending]:
        return [
            (first + i, name.encode(), f"v:{name}", ("chat:a", {"seq": first + i}))
            for i, name in enumerate(names)
        ]

    assert await broker.append("a", burst(1, "one", "two", "three")) == [
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
    ]
    assert heard == [{"seq": 1}, {"seq": 2}, {"seq": 3}]
    # The counsellor wrote first: the burst's first number is taken, the rest not looked at.
    assert await one(broker, "a", 4, b"counsellor") == (4, "ok")
    assert await broker.append("a", burst(4, "four", "five")) == [(4, "conflict")]
    # A resend inside a burst is a duplicate; what follows it then has a wrong number.
    assert await broker.append("a", burst(5, "four", "two", "five")) == [
        (5, "ok"),
        (2, "duplicate"),
        (5, "conflict"),
    ]
    assert await broker.append("a", burst(6, "five")) == [(6, "ok")]
    assert [entry for _, entry in await broker.read("a", 3)] == [b"counsellor", b"four", b"five"]
    assert [event["seq"] for event in heard] == [1, 2, 3, 5, 6]


async def test_a_long_burst_is_stored_whole_and_a_resend_of_it_is_known(broker: Broker) -> None:
    """More entries than Redis reads or writes dedupe keys at once (slices of 200 values):
    each is stored, and each resend is answered with its number, whatever slice it was in."""
    await broker.create_chat(record("a"), queue_limit=10)
    count = 450
    first: list[Appending] = [(i + 1, f"m{i}".encode(), f"v:{i}", None) for i in range(count)]
    assert await broker.append("a", first) == [(i + 1, "ok") for i in range(count)]
    again: list[Appending] = [
        (count + 1 + i, f"m{i}".encode(), f"v:{i}", None) for i in range(count)
    ]
    answers = await broker.append("a", [*again, (count + 1, b"new", "v:new", None)])
    assert answers == [*((i + 1, "duplicate") for i in range(count)), (count + 1, "ok")]
    stored = await broker.read("a", 0)
    assert [seq for seq, _ in stored] == list(range(1, count + 2))
    assert stored[-1] == (count + 1, b"new")


async def test_a_burst_counts_each_entry_against_the_quota_and_refuses_all_once_ended(
    broker: Broker,
) -> None:
    await broker.create_chat(record("a"), queue_limit=10)
    quota = Quota("rl:msg:burst", limit=2, window=60)
    entries: list[Appending] = [(i + 1, f"m{i}".encode(), f"v:{i}", None) for i in range(3)]
    # The third is over the limit; a resend of the first is still a duplicate after it.
    answers = await broker.append("a", [*entries, entries[0]], quota=quota)
    assert answers == [(1, "ok"), (2, "ok"), (0, "limited"), (1, "duplicate")]
    assert await broker.incr(quota.key, ttl=60) == 3
    # Only the chat's counsellor may append as that counsellor: nobody, while it waits.
    assert await broker.append("a", [(3, b"x", None, None)], counsellor="s1") == [(0, "forbidden")]
    await broker.transition(
        "a", Transition(expect=WAITING_STATES, changes={"state": ChatState.ended}, dequeue=True)
    )
    late: list[Appending] = [(3, b"late", None, None), (4, b"later", None, None)]
    assert await broker.append("a", late) == [(0, "ended"), (0, "ended")]
    assert await broker.append("nope", late) == [(0, "ended"), (0, "ended")]
    assert [entry for _, entry in await broker.read("a", 0)] == [b"m0", b"m1"]


async def test_deadlines_are_handed_out_once(broker: Broker) -> None:
    await broker.schedule("offer|a|s1", 10.0)
    await broker.schedule("vgrace|b", 20.0)
    await broker.schedule("vgrace|c", 30.0)
    await broker.cancel("vgrace|c")
    await broker.schedule("vgrace|b", 25.0)  # rescheduled later
    assert await broker.pop_due(15.0) == ["offer|a|s1"]
    assert await broker.pop_due(15.0) == []
    assert await broker.pop_due(100.0) == ["vgrace|b"]
    assert await broker.pop_due(100.0) == []


async def test_presence_and_connections(broker: Broker) -> None:
    presence = Presence(
        "s1", "Anna", StaffStatus.away, 2, "psychologist", ["sv"], False, False, {"support": 1e12}
    )
    await broker.put_presence(presence)
    updated = await broker.update_presence(
        "s1", {"status": StaffStatus.available, "last_offer_at": 5.0}
    )
    assert updated is not None and updated.status is StaffStatus.available
    assert [p.staff_id for p in await broker.line_presences("support")] == ["s1"]
    assert await broker.line_presences("youth") == []
    assert await broker.update_presence("nobody", {"status": StaffStatus.away}) is None
    await broker.connect("s1", "c1", ttl=60)
    await broker.connect("s1", "c2", ttl=60)
    assert await broker.connection_counts(["s1", "s2"]) == {"s1": 2, "s2": 0}
    assert await broker.disconnect("s1", "c1") == 1
    await broker.connect("s1", "c3", ttl=0.05)
    await asyncio.sleep(0.1)
    assert await broker.disconnect("s1", "c2") == 0  # c3 lapsed without a heartbeat
    await broker.remove_presence("s1")
    assert await broker.get_presence("s1") is None


async def test_a_heartbeat_renews_leases_and_their_deadlines_together(broker: Broker) -> None:
    await broker.connect("s1", "c1", ttl=0.2)
    await broker.schedule("clease|s1", 10.0)
    await broker.renew(
        [
            Lease("s1", "c1", 60, "clease|s1", 50.0),
            Lease("vlease:a", "v1", 0.05, "vlease|a", 20.0),
            Lease("s2", "c9", 60, "clease|s2", 30.0),
        ]
    )
    await broker.renew([])
    await asyncio.sleep(0.3)
    # s1's connection outlived its first lease; the visitor's short one lapsed.
    assert await broker.connection_counts(["s1", "s2", "vlease:a"]) == {
        "s1": 1,
        "s2": 1,
        "vlease:a": 0,
    }
    # Each deadline moved to its new time (s1's from 10 to 50), none doubled.
    assert await broker.pop_due(25.0) == ["vlease|a"]
    assert await broker.pop_due(40.0) == ["clease|s2"]
    assert await broker.pop_due(100.0) == ["clease|s1"]
    assert await broker.pop_due(100.0) == []


async def test_unleased_chats_are_the_live_ones_a_dead_process_left_connected(
    broker: Broker,
) -> None:
    """What the sweep finds: live, the visitor marked connected, and no live lease."""
    chats: list[tuple[str, dict[str, Any]]] = [
        ("held", {}),
        ("left", {}),
        ("lapsed", {}),
        ("in-grace", {"visitor_connected": False}),
        ("ended", {}),
        ("elsewhere", {"line": "youth"}),
    ]
    for chat_id, extra in chats:
        await broker.create_chat(record(chat_id, **extra), queue_limit=10)
    await broker.transition(
        "ended", Transition(expect=WAITING_STATES, changes={"state": ChatState.ended})
    )
    await broker.connect("v:held", "c1", ttl=60)
    await broker.connect("v:lapsed", "c2", ttl=0.05)
    await broker.connect("other:left", "c3", ttl=60)  # another prefix's lease counts not
    await asyncio.sleep(0.1)
    assert sorted(await broker.unleased_chats("support", "v:")) == ["lapsed", "left"]
    assert await broker.unleased_chats("youth", "v:") == ["elsewhere"]
    assert await broker.unleased_chats("nowhere", "v:") == []


async def test_unleased_chats_of_a_busy_line_are_all_found_a_page_at_a_time(
    broker: Broker,
) -> None:
    # More chats than fit Redis's compact set encoding, so its scan goes page by page.
    chat_ids = [f"c{i:03}" for i in range(300)]
    await asyncio.gather(*(broker.create_chat(record(c), queue_limit=1000) for c in chat_ids))
    held = [c for i, c in enumerate(chat_ids) if i % 7]
    await asyncio.gather(*(broker.connect("v:" + c, "x", ttl=60) for c in held))
    found = await broker.unleased_chats("support", "v:", page=20)
    assert sorted(found) == [c for i, c in enumerate(chat_ids) if not i % 7]


async def test_counters_values_and_recent_expire(broker: Broker) -> None:
    assert [await broker.incr("k", ttl=0.2) for _ in range(3)] == [1, 2, 3]
    await broker.set_value("v", "x", ttl=0.2)
    assert await broker.get_value("v") == "x"
    await broker.push_recent("r", 1.0, keep=2, ttl=0.2)
    await broker.push_recent("r", 2.0, keep=2, ttl=0.2)
    await broker.push_recent("r", 3.0, keep=2, ttl=0.2)
    assert await broker.recent("r") == [2.0, 3.0]
    await asyncio.sleep(0.3)
    assert await broker.incr("k", ttl=0.2) == 1
    assert await broker.get_value("v") is None
    assert await broker.recent("r") == []


async def test_events_reach_every_listener_of_a_channel(broker: Broker) -> None:
    got: list[tuple[str, Event]] = []
    await broker.subscribe("chat:a", lambda e: got.append(("one", e)))

    def two(event: Event) -> None:
        got.append(("two", event))

    await broker.subscribe("chat:a", two)
    await broker.publish("chat:a", {"type": "x"})
    await broker.publish("chat:b", {"type": "y"})
    await broker.unsubscribe("chat:a", two)
    await broker.publish("chat:a", {"type": "z"})
    for _ in range(50):
        if len(got) >= 3:
            break
        await asyncio.sleep(0.01)
    assert sorted((who, e["type"]) for who, e in got) == [("one", "x"), ("one", "z"), ("two", "x")]


async def test_append_announces_what_it_stored_and_nothing_else(broker: Broker) -> None:
    await broker.create_chat(record("a"), queue_limit=10)
    got: list[Event] = []
    await broker.subscribe("chat:a", got.append)
    assert await one(
        broker, "a", 1, b"one", dedupe="c1", announce=("chat:a", {"type": "entry", "seq": 1})
    ) == (1, "ok")
    assert await one(
        broker, "a", 1, b"again", announce=("chat:a", {"type": "entry", "seq": 99})
    ) == (1, "conflict")
    assert await one(
        broker, "a", 2, b"dup", dedupe="c1", announce=("chat:a", {"type": "entry", "seq": 98})
    ) == (1, "duplicate")
    assert [e["seq"] for e in got] == [1]


async def owe(broker: Broker, staff_id: str, chat_id: str, ttl: float) -> None:
    """End a chat owing its wrap-up to `staff_id`, as ChatService._end does."""
    if await broker.get_chat(chat_id) is None:
        await broker.create_chat(record(chat_id), queue_limit=100)
    ended = await broker.transition(
        chat_id,
        Transition(
            expect=frozenset(ChatState),
            changes={"state": ChatState.ended},
            dequeue=True,
            owe_wrapup=(staff_id, ttl),
        ),
    )
    assert isinstance(ended, ChatRecord)


async def test_owed_wrapups_are_listed_per_counsellor_until_settled_or_lapsed(
    broker: Broker,
) -> None:
    assert await broker.owed_wrapups("s1") == []
    await owe(broker, "s1", "a", ttl=60)
    await owe(broker, "s1", "b", ttl=60)
    await owe(broker, "s2", "c", ttl=60)
    assert await broker.owed_wrapups("s1") == ["a", "b"]
    assert await broker.owed_wrapups("s2") == ["c"]
    # Noting the same chat again keeps one entry; settling is per counsellor and idempotent.
    await owe(broker, "s1", "a", ttl=60)
    assert sorted(await broker.owed_wrapups("s1")) == ["a", "b"]
    await broker.settle_wrapup("s2", "a")
    await broker.settle_wrapup("s1", "a")
    await broker.settle_wrapup("s1", "a")
    await broker.settle_wrapup("nobody", "zzz")
    assert await broker.owed_wrapups("s1") == ["b"]
    # A refused transition owes nothing.
    await broker.create_chat(record("f"), queue_limit=100)
    refused = Transition(
        expect=frozenset({ChatState.active}),
        changes={"state": ChatState.ended},
        owe_wrapup=("s4", 60),
    )
    assert await broker.transition("f", refused) is Refusal.state
    assert await broker.owed_wrapups("s4") == []
    # An entry lapses by itself with its window, without disturbing a longer one.
    await owe(broker, "s2", "d", ttl=0.05)
    await asyncio.sleep(0.15)
    assert await broker.owed_wrapups("s2") == ["c"]
    await owe(broker, "s3", "e", ttl=0.05)
    await asyncio.sleep(0.15)
    assert await broker.owed_wrapups("s3") == []


async def test_held_rows_are_kept_per_hour_and_claimed_by_one_writer_at_a_time(
    broker: Broker,
) -> None:
    assert await broker.held_hours() == []
    await broker.hold_rows(7200, [("a", '{"n":1}'), ("b", '{"n":2}')])
    await broker.hold_rows(3600, [("c", '{"n":3}')])
    await broker.hold_rows(7200, [("d", '{"n":4}')])
    await broker.hold_rows(7200, [])
    assert await broker.held_hours() == [3600, 7200]

    # What is held can be read before it is written, and reading claims nothing.
    assert await broker.peek_held(7200) == {"a": '{"n":1}', "b": '{"n":2}', "d": '{"n":4}'}
    assert await broker.peek_held(10800) == {}

    # One claim at a time: a second writer gets nothing while the first is writing.
    rows = await broker.claim_held(7200, "first", 60)
    assert rows == {"a": '{"n":1}', "b": '{"n":2}', "d": '{"n":4}'}
    assert await broker.claim_held(7200, "second", 60) is None
    # Claimed, still there to read until released.
    assert await broker.peek_held(7200) == rows
    # A row held meanwhile is not among those written: it stays for the next writer.
    await broker.hold_rows(7200, [("e", '{"n":5}')])
    await broker.release_held(7200, "first", list(rows))
    assert await broker.held_hours() == [3600, 7200]
    assert await broker.claim_held(7200, "second", 60) == {"e": '{"n":5}'}
    # Releasing with nothing written ends the claim and keeps the rows.
    await broker.release_held(7200, "second", [])
    assert await broker.claim_held(7200, "third", 60) == {"e": '{"n":5}'}
    await broker.release_held(7200, "third", ["e"])
    assert await broker.held_hours() == [3600]
    assert await broker.peek_held(7200) == {}

    # A claim whose writer died lapses; releasing a lapsed claim ends no one else's.
    assert await broker.claim_held(3600, "dies", 0.05) == {"c": '{"n":3}'}
    await asyncio.sleep(0.15)
    assert await broker.claim_held(3600, "next", 60) == {"c": '{"n":3}'}
    await broker.release_held(3600, "dies", [])
    assert await broker.claim_held(3600, "other", 60) is None
    await broker.release_held(3600, "next", ["c"])
    assert await broker.held_hours() == []
    # An hour with no rows left is claimed as empty, and releasing it is harmless.
    assert await broker.claim_held(3600, "late", 60) == {}
    await broker.release_held(3600, "late", [])
    assert await broker.held_hours() == []
