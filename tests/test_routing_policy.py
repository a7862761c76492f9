"""Routing rules of DESIGN.md as pure functions."""

from __future__ import annotations

from typing import Any

from app.broker.records import ChatRecord, ChatState, Presence, StaffStatus
from app.lines.service import LineConfig
from app.models.enums import Qualification
from app.routing.policy import Candidate, can_take, choose, estimate_wait

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
    assert picked(english_only, record=chat(language="sv")) is None
    waited = chat(language="sv", queued_at=NOW - 121)
    assert picked(english_only, record=waited) == "en"
    # Relaxed, a speaker of the language still comes first even with more load.
    assert picked(english_only, counsellor("sv", languages=["sv"], load=1), record=waited) == "sv"


def test_peer_preference_and_its_relaxation() -> None:
    asked = chat(peer_requested=True)
    assert picked(counsellor("p", peer=False), record=asked) is None
    assert picked(counsellor("n"), counsellor("peer", peer=True, load=1), record=asked) == "peer"
    assert (
        picked(counsellor("p", peer=False), record=chat(peer_requested=True, queued_at=NOW - 500))
        == "p"
    )


def test_the_peer_wait_is_the_lines_own_apart_from_the_language_wait() -> None:
    """A line's peer_relax_seconds, not its language wait, decides how long a peer is waited for."""
    plain = counsellor("p", peer=False)
    asked = chat(peer_requested=True, queued_at=NOW - 200)
    # Past the language wait (120 s) but within the peer wait: still only a peer.
    assert picked(plain, record=asked, config=line(peer_relax_seconds=300)) is None
    assert picked(plain, record=asked, config=line(peer_relax_seconds=150)) == "p"
    # A short peer wait does not relax the language preference.
    english_only = counsellor("en", languages=["en"])
    swedish = chat(language="sv", peer_requested=True, queued_at=NOW - 60)
    assert picked(english_only, record=swedish, config=line(peer_relax_seconds=0)) is None


def test_those_who_passed_are_skipped_while_others_are_free() -> None:
    record = chat(passed=["a"], offer_expires_at=NOW - 1)
    assert picked(counsellor("a"), counsellor("b", load=1), record=record) == "b"
    # Everyone passed: ask again, but only one offer timeout after the last offer.
    assert picked(counsellor("a"), record=record) is None
    assert picked(counsellor("a"), record=chat(passed=["a"], offer_expires_at=NOW - 31)) == "a"


def test_a_named_transfer_waits_for_that_colleague_until_its_window_passes() -> None:
    record = chat(target_counsellor="b", target_until=NOW + 10)
    assert picked(counsellor("a"), counsellor("b", load=1), record=record) == "b"
    assert picked(counsellor("a"), record=record) is None
    expired = chat(target_counsellor="b", target_until=NOW - 1)
    assert picked(counsellor("a"), record=expired) == "a"


def test_estimate_follows_rule_5() -> None:
    # ((position - 1) / capacity + 1) * mean duration
    assert estimate_wait(1, 4, 600) == 600
    assert estimate_wait(5, 4, 600) == 1200
    assert estimate_wait(3, 2, 900) == 1800
    assert estimate_wait(1, 0, 600) is None
