"""Field types shared by every request schema and parameter, so that each accepts exactly what
the OpenAPI document declares: text that is valid Unicode without NUL, dates and times written
as ISO 8601 says. Integers and booleans are pydantic's `StrictInt` and `StrictBool` (so that
`false` is no 0 and `"1"` no true in a JSON body).

A NUL cannot be stored in PostgreSQL text and a lone surrogate cannot be encoded as UTF-8 at
all: either would fail deep in a request (a database error, an unencodable answer) instead of
being refused where it enters, with a 422 that names the field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# What the OpenAPI document says of text (an ECMA-262 pattern, as JSON Schema reads them).
TEXT_PATTERN = r"^[^\u0000\ud800-\udfff]*$"
_SURROGATE = re.compile("[\ud800-\udfff]")


def refuse_bad_text(value: Any) -> Any:
    """The value itself; a string with a NUL or a lone surrogate is refused."""
    if isinstance(value, str) and not value.isprintable():
        if "\x00" in value:
            raise PydanticCustomError("invalid_text", "text must not contain a NUL character")
        if _SURROGATE.search(value):
            raise PydanticCustomError(
                "invalid_text", "text must be valid Unicode (it has a lone surrogate)"
            )
    return value


@dataclass(frozen=True, slots=True)
class CleanText:
    """Refuses NUL and lone surrogates before any other check of the string (its length or
    pattern), and declares so in the JSON schema unless the string has a pattern of its own."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(refuse_bad_text, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        for member in [json_schema, *json_schema.get("anyOf", [])]:
            if member.get("type") == "string" and "format" not in member:
                member.setdefault("pattern", TEXT_PATTERN)
        return json_schema


# Any text a request carries: a body field, a query or path parameter. With constraints,
# CleanText() comes last, after them: Annotated[str, StringConstraints(max_length=100),
# CleanText()], Annotated[str | None, Query(max_length=32), CleanText()] (placed before them,
# it would hide the string from them and their refusals would read less clearly).
Text = Annotated[str, CleanText()]

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _iso_day(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DAY.fullmatch(value):
        return value
    raise PydanticCustomError("date_parsing", "a date is written YYYY-MM-DD, e.g. 2026-05-01")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _MOMENT.fullmatch(value):
        return value
    raise PydanticCustomError(
        "datetime_parsing",
        "a time is written as in RFC 3339, with its UTC offset, e.g. 2026-05-01T18:00:00Z",
    )


# A calendar date, given as "YYYY-MM-DD" (not a number of seconds, not a date and time).
Day = Annotated[date, BeforeValidator(_iso_day)]
# A moment, given as RFC 3339 with its offset ("2026-05-01T18:00:00+02:00"), never a number.
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
