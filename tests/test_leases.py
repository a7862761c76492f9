"""A process that dies leaves leases behind; whichever process lives notices when they lapse,
even when a lease's deadline comes due a moment before the lease itself does."""

from __future__ import annotations

from app.chats.channels import Deadline, deadline_key
from tests.conftest import ServerFactory
from tests.support.clients import open_chat, open_staff
from tests.support.seed import PASSWORD, add_counsellor, add_line


async def test_a_counsellor_whose_lease_outlasts_its_deadline_is_still_found_gone(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=1)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_chat(server, anna)
        await visitor.expect("counsellor.joined")
        # Anna also holds a connection on a process that has just died: its lease runs two
        # more seconds and is never renewed. Her connection here closes; she still counts.
        await rt.broker.connect(anna_id, "on-the-dead-process", 2.0)
        await anna.close()
        # The dead process's lease deadline comes due first (its clock ran a little ahead).
        key = deadline_key(Deadline.counsellor_lease, anna_id)
        await rt.broker.schedule(key, rt.broker.now())

        # Once the lease lapses, her grace period starts and ends: the visitor is told.
        left = await visitor.expect("counsellor.left", timeout=30)
        assert left["reason"] == "counsellor_disconnected"
        await visitor.expect("queue.position")
