"""Text that no database or encoder can take, a NUL character or a lone surrogate, is refused
where it enters: on every route of the OpenAPI document, in every text parameter and every text
field of a JSON body (dictionary keys too), with a 422 that names the field, never a 500. On
PostgreSQL, which cannot store a NUL at all (issue 27)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.models.enums import StaffRole
from app.settings import Settings
from tests.conftest import FAST
from tests.support.clients import SignedIn, sign_in_session
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, run_server

NUL = "bad\x00text"
SURROGATE = "bad\ud800text"
# Who may reach an operation's validation (the others are refused before it: 401, 403).
ROLES = ("admin", "coordinator", "counsellor", "anonymous")

Loc = tuple[str | int, ...]
# Where a refused dictionary key's own text stands in a `loc`.
KEY = "<the key>"


def _names(problem: dict[str, Any], loc: Loc) -> bool:
    got = tuple(problem["loc"])
    if KEY not in loc:
        return got == loc
    at = loc.index(KEY)
    return len(got) == len(loc) and got[:at] == loc[:at] and got[at + 1 :] == loc[at + 1 :]


@dataclass(frozen=True, slots=True)
class Target:
    """One text an operation takes: `where` (path, query, body) and the field's place."""

    method: str
    path: str
    where: str
    loc: Loc
    # In a body: the text is a dictionary's key at `loc` rather than a value.
    key: bool = False

    def __str__(self) -> str:
        place = ".".join(str(part) for part in self.loc) + (" (key)" if self.key else "")
        return f"{self.method.upper()} {self.path} {self.where}:{place}"


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _is_text(schema: dict[str, Any]) -> bool:
    """Free text: a string that is not one of a list, a UUID, a date or a time."""
    return (
        schema.get("type") == "string"
        and "format" not in schema
        and "enum" not in schema
        and "const" not in schema
    )


def _members(doc: dict[str, Any], schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    schema = _resolve(doc, schema)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        for member in alternatives:
            yield from _members(doc, member)
    elif schema.get("type") != "null":
        yield schema


def _body_texts(
    doc: dict[str, Any], schema: dict[str, Any], loc: Loc
) -> Iterator[tuple[Loc, bool]]:
    for member in _members(doc, schema):
        if _is_text(member):
            yield loc, False
        elif member.get("type") == "array" and "items" in member:
            yield from _body_texts(doc, member["items"], (*loc, 0))
        elif member.get("type") == "object":
            for name, field in member.get("properties", {}).items():
                yield from _body_texts(doc, field, (*loc, name))
            # A dictionary: its keys (a language, say) and its values.
            values = [*member.get("patternProperties", {}).values()]
            if isinstance(member.get("additionalProperties"), dict):
                values.append(member["additionalProperties"])
            for value in values:
                yield loc, True
                yield from _body_texts(doc, value, (*loc, "sv"))


def targets(doc: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if any(_is_text(m) for m in _members(doc, parameter["schema"])):
                    found.append(Target(method, path, parameter["in"], (parameter["name"],)))
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                for loc, key in _body_texts(doc, content["application/json"]["schema"], ()):
                    found.append(Target(method, path, "body", loc, key))
    return found


def _nest(loc: Loc, value: Any) -> Any:
    if not loc:
        return value
    head, *rest = loc
    inner = _nest(tuple(rest), value)
    return [inner] if isinstance(head, int) else {head: inner}


def _with_key(loc: Loc, key: str) -> Any:
    return _nest(loc, {key: "x"})


def request_for(
    doc: dict[str, Any], target: Target, bad: str
) -> tuple[str, dict[str, str], bytes | None, Loc]:
    """The URL, query, body and the `loc` the refusal must name."""
    operation = doc["paths"][target.path][target.method]
    url = target.path
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        name = parameter["name"]
        formats = {m.get("format") for m in _members(doc, parameter["schema"])}
        value = bad if (target.where, target.loc) == ("path", (name,)) else "support"
        if "uuid" in formats:
            value = str(uuid.uuid4())
        url = url.replace("{" + name + "}", quote(value, safe=""))
    query = {str(target.loc[0]): bad} if target.where == "query" else {}
    body: bytes | None = None
    loc: Loc = (target.where, *target.loc)
    if target.where == "body":
        data = _with_key(target.loc, bad) if target.key else _nest(target.loc, bad)
        # ensure_ascii: a lone surrogate travels as the JSON escape \ud800, as an attacker sends it.
        body = json.dumps(data, ensure_ascii=True).encode()
        # A refused key is named by its own text (made printable), then "[key]".
        loc = (*loc, KEY, "[key]") if target.key else loc
    elif "content" in operation.get("requestBody", {}):
        body = b"{}"
    return url, query, body, loc


People = dict[str, httpx.AsyncClient]


@pytest.fixture
async def lykta_pg(database_url_pg: str) -> AsyncIterator[tuple[RunningServer, People]]:
    settings = Settings(
        database_url=database_url_pg,
        http_rate_per_minute=1_000_000,
        sign_in_rate_per_minute=1_000_000,
        **FAST,
    )
    async with run_server(settings) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        await add_staff(rt, "cora", StaffRole.coordinator)
        await add_staff(rt, "adam", StaffRole.admin)
        signed: dict[str, SignedIn | None] = {
            "admin": await sign_in_session(server, "adam", PASSWORD),
            "coordinator": await sign_in_session(server, "cora", PASSWORD),
            "counsellor": await sign_in_session(server, "anna", PASSWORD),
            "anonymous": None,
        }
        clients = {
            role: httpx.AsyncClient(
                base_url=server.url,
                cookies=who.cookies if who else None,
                headers={**(who.headers if who else {}), "content-type": "application/json"},
            )
            for role, who in signed.items()
        }
        try:
            yield server, clients
        finally:
            for client in clients.values():
                await client.aclose()


@pytest.mark.postgres
async def test_every_route_refuses_nul_and_lone_surrogates_naming_the_field(
    lykta_pg: tuple[RunningServer, People],
) -> None:
    server, clients = lykta_pg
    doc = server.app.openapi()
    found = targets(doc)
    # The sweep reaches what issue 27 named: sign-in, enrolment, staff, roster, directory,
    # lines and audit, in bodies, paths and queries.
    named = {str(t) for t in found}
    for expected in (
        "POST /api/staff/session body:username",
        "POST /api/staff/session body:password",
        "POST /api/staff/session body:code",
        "POST /api/enrolment/complete body:token",
        "PATCH /api/staff/{staff_id} body:alias",
        "POST /api/roster/lines/{key}/patterns path:key",
        "GET /api/directory query:q",
        "PUT /api/lines/{key}/settings body:closed_message (key)",
        "GET /api/audit query:action",
    ):
        assert expected in named, expected
    # A few at a time: the server waits on PostgreSQL for sessions and audit entries.
    gate = asyncio.Semaphore(8)

    async def refusal(target: Target, bad: str) -> str | None:
        """Why the refusal is wrong, if it is."""
        url, query, body, loc = request_for(doc, target, bad)
        answers = []
        async with gate:
            for role in ROLES:
                response = await clients[role].request(
                    target.method, url, params=query, content=body
                )
                answers.append(f"{role} {response.status_code}")
                if response.status_code not in (401, 403):
                    break
        # Never the value itself (it may be a password), unless it is a key the refusal
        # names as the field.
        if not target.key and "bad" in response.text:
            return f"{target} {bad!r}: the answer repeats it: {response.text[:300]}"
        problems = response.json().get("detail") if response.status_code == 422 else None
        named_here = [p for p in problems or [] if isinstance(p, dict) and _names(p, loc)]
        if not named_here or named_here[0]["type"] != "invalid_text":
            return f"{target} {bad!r}: {answers} {response.text[:300]}"
        return None

    # A lone surrogate cannot even be written in a URL (it has no UTF-8 form).
    answers = await asyncio.gather(
        *(
            refusal(target, bad)
            for target in found
            for bad in ((NUL, SURROGATE) if target.where == "body" else (NUL,))
        )
    )
    failures = [answer for answer in answers if answer is not None]
    assert not failures, "\n".join(failures)


async def test_the_visitors_own_http_steps_refuse_bad_text(server: RunningServer) -> None:
    """Quick exit, deleting a continuity code and the mailbox read their JSON bodies themselves
    (any content type, for sendBeacon): refused all the same, in their own one-sentence form."""
    await add_line(server.runtime)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for bad in (NUL, SURROGATE):
            for path, body, field in (
                ("/api/visitor/exit", {"chat_id": "abcdefghijkl", "token": bad * 3}, "token"),
                ("/api/visitor/continuity/delete", {"code": f"apple {bad} pear"}, "code"),
                (
                    "/api/visitor/mailbox/threads",
                    {"line": "support", "language": "sv", "text": f"hej {bad}"},
                    "text",
                ),
                ("/api/visitor/mailbox/read", {"code": f"apple {bad} pear"}, "code"),
                ("/api/visitor/mailbox/write", {"code": "apple pear", "text": bad}, "text"),
                ("/api/visitor/mailbox/delete", {"code": f"apple {bad} pear"}, "code"),
            ):
                response = await http.post(path, content=json.dumps(body).encode())
                assert response.status_code == 422, (path, response.text)
                detail = response.json()["detail"]
                if bad == NUL:
                    assert detail.startswith(f"invalid field '{field}'"), detail
                else:
                    # Read with orjson, as frames are: a lone surrogate's escape is no JSON.
                    assert detail == "the body is not valid JSON"


async def test_visitor_pages_ignore_bad_text_in_their_parameters(server: RunningServer) -> None:
    """The widget's pages are not API (they are outside the OpenAPI document): like a bad colour
    or exit address, text with a NUL in a parameter is ignored and the page still opens."""
    await add_line(server.runtime)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for url in ("/chat/support", "/chat/sup%00port", "/widget/safety"):
            params = {"lang": NUL, "embed": NUL, "colour": NUL, "exit": NUL}
            page = await http.get(url, params=params)
            assert page.status_code == 200, (url, page.text)
            assert "\x00" not in page.text
