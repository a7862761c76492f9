"""An interpreter in a chat across two Lykta processes on one Redis: the counsellor, the
interpreter and the visitor each on a process of their own choosing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.models.enums import Qualification
from app.settings import Settings
from tests.support.clients import open_staff, open_visitor
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_an_interpreter_on_another_process_joins_is_labelled_and_is_declined(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, languages=["sv", "en", "ro"])
        await add_counsellor(rt, "anna", alias="Anna", languages=("sv",))
        await add_counsellor(
            rt, "ion", alias="Ion", qualification=Qualification.interpreter, languages=("ro",)
        )
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(a, "anna", PASSWORD)
        ion = await open_staff(b, "ion", PASSWORD)
        visitor = await open_visitor(b)
        await visitor.start(language="ro")
        offer = await anna.expect("offer")
        assert offer["interpreter_available"] is True
        await anna.accept(offer["chat_id"])
        chat = visitor.chat_id
        await anna.send({"type": "note", "chat_id": chat, "text": "secret note"})
        await anna.send({"type": "interpreter.request", "chat_id": chat})
        await anna.expect("interpreter.asked")
        await ion.expect("interpreter.offer", chat_id=chat)
        await ion.send({"type": "interpreter.accept", "chat_id": chat})
        await ion.expect("interpreting", chat_id=chat)
        await visitor.expect("interpreter.joined", name="Ion", language="ro")
        await anna.expect("interpreter.joined", name="Ion")

        await anna.say(chat, "Hur kan jag hjälpa?")
        await ion.expect("message", sender="counsellor", text="Hur kan jag hjälpa?")
        await ion.say(chat, "Cum te pot ajuta?")
        await visitor.expect("message", sender="interpreter", name="Ion")
        await anna.expect("message", sender="interpreter", text="Cum te pot ajuta?")
        await visitor.say("Multumesc")
        await ion.expect("message", sender="visitor", text="Multumesc")
        assert ion.seen("note") == []

        # The interpreter reconnects to the other process: still in the chat, nothing older.
        await ion.close()
        ion = await open_staff(a, "ion", PASSWORD, available=False)
        assert [c["chat_id"] for c in ion.hello["interpreting"]] == [chat]
        await ion.send({"type": "sync", "chat_id": chat, "last_seq": 0})
        await ion.expect("synced", chat_id=chat)
        assert "secret note" not in str(ion.received)

        await visitor.send({"type": "interpreter.decline"})
        await anna.expect("interpreter.left", reason="declined")
        await ion.expect("interpreter.left", reason="declined")
        await visitor.send({"type": "interpreter.decline"})
        assert (await visitor.expect("error", ref="interpreter.decline"))["code"] == "invalid_state"
        await ion.send({"type": "message", "chat_id": chat, "text": "late", "client_id": "l1"})
        assert (await ion.expect("error", ref="message"))["code"] == "not_in_chat"


async def test_a_request_survives_a_reload_on_another_process_and_is_withdrawn_across_them(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    """The request goes out from one process, the interpreter reloads onto the other and
    still has it; the chat ends through the first, and the offer leaves the interpreter's
    console on the second at once."""
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, languages=["sv", "en", "ro"])
        await add_counsellor(rt, "anna", alias="Anna", languages=("sv",))
        await add_counsellor(
            rt, "ion", alias="Ion", qualification=Qualification.interpreter, languages=("ro",)
        )
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(a, "anna", PASSWORD)
        ion = await open_staff(b, "ion", PASSWORD)
        visitor = await open_visitor(a)
        await visitor.start(language="ro")
        await anna.accept((await anna.expect("offer"))["chat_id"])
        chat = visitor.chat_id
        await anna.send({"type": "interpreter.request", "chat_id": chat})
        offer = await ion.expect("interpreter.offer", chat_id=chat)

        await ion.close()
        ion = await open_staff(a, "ion", PASSWORD, available=False, cookie=ion.cookie)
        assert ion.hello["interpreter_offers"] == [{k: v for k, v in offer.items() if k != "type"}]
        await ion.close()
        ion = await open_staff(b, "ion", PASSWORD, available=False, cookie=ion.cookie)
        await anna.send({"type": "end", "chat_id": chat})
        withdrawn = await ion.expect("interpreter.offer.withdrawn", chat_id=chat)
        assert withdrawn["reason"] == "ended"
        await ion.send({"type": "interpreter.accept", "chat_id": chat})
        assert (await ion.expect("error", ref="interpreter.accept"))["code"] == "chat_ended"
        await ion.close()
        ion = await open_staff(a, "ion", PASSWORD, available=False, cookie=ion.cookie)
        assert ion.hello["interpreter_offers"] == []
