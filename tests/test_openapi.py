"""The OpenAPI document is true: Schemathesis sends what it describes (and what it forbids) to
the running app, anonymously and as each role, and checks every answer against it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from app.main import create_app
from app.models.enums import StaffRole
from app.settings import Settings
from tests.conftest import FAST
from tests.support.clients import SignedIn, sign_in_session
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.support.threaded import server_in_thread

# In the order the coverage phase tries them (see the test).
ROLES = ("admin", "coordinator", "counsellor", "anonymous")

CONFIG = schemathesis.Config.from_dict(
    {
        # Bounded: five valid and five invalid requests per operation when fuzzing, on top of
        # the coverage phase's boundary cases (a `false` for a number, a number for a time, a
        # string one over its length ...); no request may take more than ten seconds.
        "generation": {"max-examples": 5, "mode": "all"},
        "request-timeout": 10,
        # No sequences of calls (the document declares no links), and no calls with methods
        # the document does not list (Starlette's own 405).
        "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": []}},
        "checks": {
            "enabled": False,
            **{
                name: {"enabled": True}
                for name in (
                    "not_a_server_error",
                    "status_code_conformance",
                    "content_type_conformance",
                    "response_schema_conformance",
                    "response_headers_conformance",
                )
            },
            # What the schema forbids is refused: as invalid, unauthorised, unknown, or too
            # large for the body limit (413), never accepted and never a server error.
            "negative_data_rejection": {
                "enabled": True,
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429],
            },
        },
    }
)


# Each role's session, and a second one that signing out ends (so the rest still run signed in).
People = dict[str, tuple[SignedIn, SignedIn]]
SIGN_OUT = ("DELETE", "/api/staff/session")


async def seed_and_sign_in(server: RunningServer) -> People:
    rt = server.runtime
    await add_line(rt)
    accounts = {"counsellor": "anna", "coordinator": "cora", "admin": "adam"}
    await add_counsellor(rt, "anna")
    await add_staff(rt, "cora", StaffRole.coordinator)
    await add_staff(rt, "adam", StaffRole.admin)
    return {
        role: (
            await sign_in_session(server, username, PASSWORD),
            await sign_in_session(server, username, PASSWORD),
        )
        for role, username in accounts.items()
    }


@schemathesis.serializer("text/csv")
def _csv(ctx: Any, value: Any) -> bytes:
    """The CSV import's body as Schemathesis generates it (a string, or anything when negative)."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(scope="module")
def lykta_thread(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, People]]:
    path = tmp_path_factory.mktemp("openapi") / "lykta.db"
    shutil.copy(sqlite_template, path)
    lykta_settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        http_rate_per_minute=1_000_000,
        sign_in_rate_per_minute=1_000_000,
        connection_rate_per_minute=1_000_000,
        **FAST,
    )
    with server_in_thread(lykta_settings, seed_and_sign_in) as running:
        yield running


# The document as the app builds it (production does not serve it): building the app starts
# nothing, and the server the test calls is built from the same code.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="sqlite+aiosqlite://")).openapi(), config=CONFIG
)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_openapi_document_is_true(
    case: Case[Any], lykta_thread: tuple[RunningServer, People]
) -> None:
    """Each request generated goes out as each role and anonymously: what one may do and what
    the others are refused must both match the document. The coverage phase's many boundary
    cases go only as far as the first role let through (it is the validation they test)."""
    server, people = lykta_thread
    boundary = case.meta is not None and case.meta.phase.name == "coverage"
    for role in ROLES:
        sessions = people.get(role)
        who = None
        if sessions is not None:
            who = sessions[1] if (case.method.upper(), case.path) == SIGN_OUT else sessions[0]
        headers = who.headers if who is not None else {}
        cookies = who.cookies if who is not None else {}
        response = case.call(base_url=server.url, headers=headers, cookies=cookies)
        case.validate_response(response)
        if boundary and response.status_code not in (401, 403):
            break
