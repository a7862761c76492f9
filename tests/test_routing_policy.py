"""Routing rules of DESIGN.md as pure functions."""

from __future__ import annotations

from typing import Any

from app.broker.records import ChatRecord, ChatState, Presence, StaffStatus
from app.lines.service import LineConfig
from app.models.enums import Qualification
from app.routing.policy import (
    MIN_DURATIONS,
    Candidate,
    Hold,
    HoldReason,
    Wait,
    can_take,
    choose,
    estimate_wait,
    hold,
    staffing,
    typical_length,
)

NOW = 10_000.0


def line(**overrides: Any) -> LineConfig:
    values: dict[str, Any] = {
        "key": "support",
        "name": "Support",
        "languages": ("sv", "en"),
        "required_qualification": Qualification.psychologist,
        "max_queue_length": 10,
        "offer_timeout_seconds": 30,
        "visitor_grace_seconds": 60,
        "counsellor_grace_seconds": 60,
        "language_relax_seconds": 120,
        "max_message_length": 4000,
        "auto_accept": False,
        "closed_message": {},
        "alternatives": {},
        "opening_hours": {},
        "wrapup_topics": (),
        "wrapup_outcomes": (),
    }
    values.update(overrides)
    return LineConfig(**values)


def counsellor(
    staff_id: str, *, load: int = 0, connected: bool = True, **overrides: Any
) -> Candidate:
    values: dict[str, Any] = {
        "staff_id": staff_id,
        "alias": staff_id.title(),
        "status": StaffStatus.available,
        "capacity": 2,
        "qualification": "psychologist",
        "languages": ["sv", "en"],
        "peer": False,
        "supervisor": False,
        "duty": {"support": NOW + 3600},
        "last_offer_at": 0.0,
    }
    values.update(overrides)
    return Candidate(Presence(**values), connected, load)


def chat(**overrides: Any) -> ChatRecord:
    values: dict[str, Any] = {
        "id": "chat-1",
        "line": "support",
        "language": "sv",
        "state": ChatState.queued,
        "resume_digest": "x",
        "created_at": NOW - 10,
        "queued_at": NOW - 10,
    }
    values.update(overrides)
    return ChatRecord(**values)


def picked(
    *candidates: Candidate, record: ChatRecord | None = None, config: LineConfig | None = None
) -> str | None:
    result = choose(record or chat(), config or line(), list(candidates), NOW)
    return None if result is None else result.staff_id


def test_only_eligible_counsellors_are_offered() -> None:
    assert picked(counsellor("off", duty={"support": NOW - 1})) is None
    assert picked(counsellor("other-line", duty={"youth": NOW + 60})) is None
    assert picked(counsellor("away", status=StaffStatus.away)) is None
    assert picked(counsellor("break", status=StaffStatus.on_break)) is None
    assert picked(counsellor("gone", connected=False)) is None
    assert picked(counsellor("full", load=2)) is None
    assert picked(counsellor("volunteer", qualification="volunteer")) is None
    assert picked(counsellor("none", qualification=None)) is None
    assert picked(counsellor("ok")) == "ok"


def test_a_psychologist_may_answer_a_volunteer_line_but_not_the_reverse() -> None:
    youth = line(key="youth", required_qualification=Qualification.volunteer)
    psychologist = counsellor("p", duty={"youth": NOW + 60})
    volunteer = counsellor("v", duty={"youth": NOW + 60}, qualification="volunteer")
    assert can_take(psychologist, youth, NOW) and can_take(volunteer, youth, NOW)
    assert not can_take(volunteer, line(), NOW)


def test_fewest_active_chats_then_longest_since_last_offer() -> None:
    assert picked(counsellor("busy", load=1), counsellor("free", load=0)) == "free"
    assert (
        picked(
            counsellor("recent", last_offer_at=NOW - 5),
            counsellor("earlier", last_offer_at=NOW - 500),
        )
        == "earlier"
    )
    assert (
        picked(counsellor("a", load=1, last_offer_at=0), counsellor("b", load=0, last_offer_at=NOW))
        == "b"
    )


def test_language_is_preferred_then_relaxed() -> None:
    english_only = counsellor("en", languages=["en"])
    busy_swede = counsellor("sv-busy", languages=["sv"], load=2)
    # A Swedish speaker answers but is full: the chat waits for them, for a while.
    assert picked(english_only, busy_swede, record=chat(language="sv")) is None
    waited = chat(language="sv", queued_at=NOW - 121)
    assert picked(english_only, busy_swede, record=waited) == "en"
    # Relaxed, a speaker of the language still comes first even with more load.
    assert picked(english_only, counsellor("sv", languages=["sv"], load=1), record=waited) == "sv"


def test_nobody_waits_for_a_wish_nobody_answering_can_meet() -> None:
    """A language or a peer nobody on duty and available offers is not waited for at all."""
    english_only = counsellor("en", languages=["en"])
    assert picked(english_only, record=chat(language="sv")) == "en"
    assert picked(counsellor("p"), record=chat(peer_requested=True)) == "p"
    # A peer supporter on a break, away, off duty or disconnected cannot meet it either.
    for absent in (
        counsellor("peer", peer=True, status=StaffStatus.on_break),
        counsellor("peer", peer=True, status=StaffStatus.away),
        counsellor("peer", peer=True, duty={"support": NOW - 1}),
        counsellor("peer", peer=True, connected=False),
    ):
        assert picked(counsellor("p"), absent, record=chat(peer_requested=True)) == "p"
    # A peer who does not speak the visitor's language (while it is waited for) cannot either.
    swedish_peer_wish = chat(language="sv", peer_requested=True)
    english_peer = counsellor("peer", peer=True, languages=["en"], load=2)
    assert (
        picked(counsellor("sv", languages=["sv"]), english_peer, record=swedish_peer_wish) == "sv"
    )
    # A named colleague who went on a break is not waited for.
    record = chat(target_counsellor="b", target_until=NOW + 10)
    gone = counsellor("b", status=StaffStatus.on_break)
    assert picked(counsellor("a"), gone, record=record) == "a"


def test_peer_preference_and_its_relaxation() -> None:
    asked = chat(peer_requested=True)
    busy_peer = counsellor("busy-peer", peer=True, load=2)
    assert picked(counsellor("p", peer=False), busy_peer, record=asked) is None
    assert picked(counsellor("n"), counsellor("peer", peer=True, load=1), record=asked) == "peer"
    relaxed = chat(peer_requested=True, queued_at=NOW - 500)
    assert picked(counsellor("p", peer=False), busy_peer, record=relaxed) == "p"


def test_the_peer_wait_is_the_lines_own_apart_from_the_language_wait() -> None:
    """A line's peer_relax_seconds, not its language wait, decides how long a peer is waited for."""
    plain = counsellor("p", peer=False)
    busy_peer = counsellor("busy-peer", peer=True, load=2)
    asked = chat(peer_requested=True, queued_at=NOW - 200)
    # Past the language wait (120 s) but within the peer wait: still only a peer.
    assert picked(plain, busy_peer, record=asked, config=line(peer_relax_seconds=300)) is None
    assert picked(plain, busy_peer, record=asked, config=line(peer_relax_seconds=150)) == "p"
    # A short peer wait does not relax the language preference.
    english_only = counsellor("en", languages=["en"])
    swedish = chat(language="sv", peer_requested=True, queued_at=NOW - 60)
    config = line(peer_relax_seconds=0)
    assert picked(english_only, busy_peer, record=swedish, config=config) is None


def test_those_who_passed_are_skipped_while_others_are_free() -> None:
    record = chat(passed=["a"], offer_expires_at=NOW - 1)
    assert picked(counsellor("a"), counsellor("b", load=1), record=record) == "b"
    # Everyone passed: ask again, but only one offer timeout after the last offer.
    assert picked(counsellor("a"), record=record) is None
    assert picked(counsellor("a"), record=chat(passed=["a"], offer_expires_at=NOW - 31)) == "a"


def test_a_named_transfer_waits_for_that_colleague_until_its_window_passes() -> None:
    record = chat(target_counsellor="b", target_until=NOW + 10)
    assert picked(counsellor("a"), counsellor("b", load=1), record=record) == "b"
    assert picked(counsellor("a"), counsellor("b", load=2), record=record) is None
    expired = chat(target_counsellor="b", target_until=NOW - 1)
    assert picked(counsellor("a"), record=expired) == "a"


def test_a_visitor_within_the_free_places_is_told_soon() -> None:
    # First in line, a counsellor free (0 of 3 chats): soon, whatever the history says.
    assert estimate_wait(1, 3, 3, None) == Wait(soon=True)
    assert estimate_wait(1, 3, 3, 1200.0) == Wait(soon=True)
    assert estimate_wait(3, 4, 3, 600.0) == Wait(soon=True)


def test_the_estimate_counts_free_places_and_recent_chat_lengths() -> None:
    ten_minutes = typical_length([600.0] * 10)
    # Everyone full (4 places): the first chat of the four to end frees a place, on average
    # every 10 min / 4.
    assert estimate_wait(1, 4, 0, ten_minutes) == Wait(seconds=150)
    assert estimate_wait(5, 4, 0, ten_minutes) == Wait(seconds=750)
    # Two places free: the third in line waits for one chat to end.
    assert estimate_wait(3, 4, 2, ten_minutes) == Wait(seconds=150)
    assert estimate_wait(2, 1, 0, typical_length([300.0, 900.0] * 3)) == Wait(seconds=1200)


def test_no_number_without_enough_history_or_anyone_answering() -> None:
    assert typical_length([600.0] * (MIN_DURATIONS - 1)) is None
    assert typical_length([]) is None
    assert estimate_wait(2, 3, 0, None) == Wait()
    # Nobody answering (everyone on a break): nothing to estimate from.
    assert estimate_wait(1, 0, 0, 600.0) == Wait()


def test_a_hold_says_what_a_chat_waits_for_while_someone_is_free() -> None:
    busy_peer = counsellor("peer", peer=True, load=2)
    free = counsellor("anna")
    asked = chat(peer_requested=True, queued_at=NOW - 10)
    config = line(peer_relax_seconds=120)
    assert hold(asked, config, [free, busy_peer], NOW) == Hold(HoldReason.peer, NOW + 110)
    # Nobody free: waiting in line, not held for a wish.
    assert hold(asked, config, [counsellor("anna", load=2), busy_peer], NOW) is None
    # The peer is free: it goes to them, nothing holds it.
    assert hold(asked, config, [free, counsellor("peer", peer=True)], NOW) is None
    arabic = chat(language="ar", queued_at=NOW - 20)
    speaker = counsellor("ar", languages=["ar"], load=2)
    assert hold(arabic, config, [free, speaker], NOW) == Hold(HoldReason.language, NOW + 100, "ar")
    named = chat(target_counsellor="b", target_until=NOW + 25)
    assert hold(named, config, [free, counsellor("b", load=2)], NOW) == Hold(
        HoldReason.counsellor, NOW + 25
    )


def test_staffing_counts_the_places_of_those_answering() -> None:
    config = line()
    seen = staffing(
        [
            counsellor("a", capacity=3, load=0),
            counsellor("b", capacity=2, load=2, peer=True),
            counsellor("c", capacity=2, status=StaffStatus.on_break),
            counsellor("d", capacity=2, connected=False),
        ],
        config,
        NOW,
    )
    assert (seen.open, seen.capacity, seen.free, seen.peer_available) == (True, 5, 3, True)
    alone = staffing([counsellor("c", status=StaffStatus.on_break)], config, NOW)
    assert (alone.open, alone.capacity, alone.free, alone.peer_available) == (False, 0, 0, False)
