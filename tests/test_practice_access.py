"""A practice line answers only staff who may play its visitor: to anyone else (an anonymous
visitor, a counsellor without `play_visitor`) its chat page, its line, the visitor socket's
start and resume, and its mailbox answer exactly as for a key no line has."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.clients import (
    Frame,
    SignedIn,
    StaffClient,
    VisitorClient,
    api,
    open_staff,
    open_visitor,
    sign_in_session,
)
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

# Sorts before "support": a key no line has must not fall back to it either.
PRACTICE = "drill"
NO_LINE = "nosuch"
ANSWERS = frozenset({"error", "chat.started", "line.closed", "continuity.found", "continuity.away"})


async def lines(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, PRACTICE, practice=True, mailbox="always")
    await add_counsellor(rt, "anna", lines=("support", PRACTICE))
    await add_counsellor(rt, "bo", lines=(PRACTICE,), supervisor=True)


async def visitor_as(server: RunningServer, who: SignedIn | None) -> VisitorClient:
    """A visitor socket, carrying `who`'s staff session as the console's framed page does."""
    cookie = {"Cookie": f"lykta_session={who.cookie}"} if who is not None else None
    return await open_visitor(server, headers=cookie)


async def start_on(
    server: RunningServer, who: SignedIn | None, line: str, **extra: Any
) -> tuple[VisitorClient, Frame]:
    visitor = await visitor_as(server, who)
    await visitor.send({"type": "start", "line": line, "language": "sv", **extra})
    return visitor, await visitor.expect(ANSWERS)


async def answer_to(server: RunningServer, who: SignedIn | None, line: str) -> Frame:
    visitor, frame = await start_on(server, who, line)
    await visitor.close()
    return frame


def same(response: httpx.Response, unknown: httpx.Response) -> None:
    assert (response.status_code, response.headers.get("content-type"), response.text) == (
        unknown.status_code,
        unknown.headers.get("content-type"),
        unknown.text,
    )


async def write_to(server: RunningServer, who: SignedIn | None, line: str) -> httpx.Response:
    body = {"line": line, "language": "sv", "text": "Jag vill bara prova."}
    return await api(server, who, "POST", "/api/visitor/mailbox/threads", json=body)


async def test_a_practice_line_is_unknown_to_visitors_and_to_counsellors_who_may_not_play_it(
    server: RunningServer,
) -> None:
    await lines(server)
    anna = await sign_in_session(server, "anna", PASSWORD)
    for who in (None, anna):
        # The chat page: the very page a key no line has gets (the first ordinary line, with
        # the notice that the line was not found).
        page = await api(server, who, "GET", f"/chat/{PRACTICE}")
        unknown = await api(server, who, "GET", f"/chat/{NO_LINE}")
        same(page, unknown)
        assert 'data-line="support"' in page.text and PRACTICE not in page.text
        # The line itself.
        same(
            await api(server, who, "GET", f"/api/lines/{PRACTICE}"),
            await api(server, who, "GET", f"/api/lines/{NO_LINE}"),
        )
        # Starting a chat on it.
        refused = await answer_to(server, who, PRACTICE)
        expected = await answer_to(server, who, NO_LINE)
        assert refused["code"] == expected["code"] == "unknown_line"
        assert refused == {**expected, "message": expected["message"].replace(NO_LINE, PRACTICE)}
        # Writing to its mailbox.
        written = await write_to(server, who, PRACTICE)
        same(written, await write_to(server, who, NO_LINE))
        assert written.status_code == 404


async def test_a_supervisor_plays_the_visitor_and_only_they_resume_or_use_its_codes(
    server: RunningServer,
) -> None:
    await lines(server)
    bo = await sign_in_session(server, "bo", PASSWORD)
    page = await api(server, bo, "GET", f"/chat/{PRACTICE}")
    assert page.status_code == 200 and f'data-line="{PRACTICE}"' in page.text
    assert 'id="practice-tag" class="practice-tag" data-t="practice_tag">' in page.text
    line = await api(server, bo, "GET", f"/api/lines/{PRACTICE}")
    assert line.status_code == 200 and line.json()["practice"] is True
    assert (await write_to(server, bo, PRACTICE)).status_code == 201

    # Bo starts a chat as the visitor; Anna, a trainee on the line, answers it.
    anna: StaffClient = await open_staff(server, "anna", PASSWORD)
    played, started = await start_on(server, bo, PRACTICE)
    assert started["type"] == "chat.started" and started["line"] == PRACTICE
    played.chat_id, played.token = started["chat_id"], started["token"]
    await anna.accept((await anna.expect("offer", line=PRACTICE))["chat_id"])
    await played.expect("counsellor.joined")

    # The chat's resume token alone does not reach it: anyone else gets the answer a chat
    # that does not exist gets.
    resume = {"type": "resume", "chat_id": played.chat_id, "token": played.token, "last_seq": 0}
    stranger = await open_visitor(server)
    await stranger.send(resume)
    refused = await stranger.expect(frozenset({"error", "chat.resumed"}))
    await stranger.send({**resume, "chat_id": "no-such-chat"})
    assert refused == await stranger.expect(frozenset({"error", "chat.resumed"}))
    assert refused["code"] == "invalid_resume"
    await played.close()
    again = await visitor_as(server, bo)
    await again.send(resume)
    assert (await again.expect(frozenset({"error", "chat.resumed"})))["type"] == "chat.resumed"

    # A continuity code given in the practice chat is no way in either.
    await anna.send({"type": "continuity.offer", "chat_id": played.chat_id, "note": "övning"})
    await again.expect("continuity.offered")
    await again.send({"type": "continuity.accept"})
    code = (await again.expect("continuity.code"))["code"]
    await again.send({"type": "end"})
    await again.expect("chat.ended")
    await anna.expect("wrapup.required", chat_id=played.chat_id)
    await anna.send(
        {"type": "wrapup", "chat_id": played.chat_id, "topics": ["other"], "outcome": "referred"}
    )
    await anna.expect("wrapup.saved", chat_id=played.chat_id)
    for who in (None, await sign_in_session(server, "anna", PASSWORD)):
        _, refused = await start_on(server, who, PRACTICE, code=code)
        _, expected = await start_on(server, who, NO_LINE, code=code)
        assert refused == expected and refused["code"] == "unknown_code"
    # Bo's code finds its counsellor (here or not).
    _, found = await start_on(server, bo, PRACTICE, code=code)
    assert found["type"].startswith("continuity.") and found["name"] == "Anna"
