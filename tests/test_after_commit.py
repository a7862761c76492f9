"""Events that follow an SQL write go out only once it is committed: a change the database
refuses at COMMIT is announced to nobody."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.lines.directory import LINES_CHANNEL
from app.models import StaffRole
from tests.conftest import ServerFactory
from tests.support.clients import api, open_staff, sign_in_session
from tests.support.postgres import accepted_again, refused_at_commit
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff


@pytest.mark.postgres
async def test_a_line_change_whose_commit_fails_is_announced_to_no_one(
    lykta: ServerFactory, database_url_pg: str
) -> None:
    async with lykta(database_url=database_url_pg) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        await add_staff(rt, "cora", StaffRole.coordinator)
        cora = await sign_in_session(server, "cora", PASSWORD)
        anna = await open_staff(server, "anna", PASSWORD)
        settings = (await api(server, cora, "GET", "/api/lines/support/settings")).json()
        async with rt.engine.begin() as connection:
            for statement in refused_at_commit("lines", "UPDATE"):
                await connection.execute(text(statement))

        heard: list[dict[str, Any]] = []
        await rt.broker.subscribe(LINES_CHANNEL, heard.append)
        renamed = {**settings, "name": "Never stored"}
        refused = await api(server, cora, "PUT", "/api/lines/support/settings", json=renamed)
        assert refused.status_code == 500
        # No process and no console hears of a change that is not there.
        await anna.expect_none("duty", within=1.0)
        assert heard == []
        public = (await api(server, None, "GET", "/api/lines/support")).json()
        assert public["name"] == settings["name"]

        async with rt.engine.begin() as connection:
            await connection.execute(text(accepted_again("lines")))
        stored = {**settings, "name": "Stödchatten"}
        saved = await api(server, cora, "PUT", "/api/lines/support/settings", json=stored)
        assert saved.status_code == 200, saved.text
        duty = await anna.expect("duty")
        assert [line["name"] for line in duty["lines"]] == ["Stödchatten"]
        assert [event["type"] for event in heard] == ["lines.changed"]
        await rt.broker.unsubscribe(LINES_CHANNEL, heard.append)
