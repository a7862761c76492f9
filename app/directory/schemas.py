"""The referral directory's API shapes and the validation of every field."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.kit.fields import CleanText, Text

# The fixed set of needs a service is tagged with (the console and widget translate them).
Need = Literal[
    "housing",
    "health",
    "legal_migration",
    "addiction",
    "shelter",
    "violence",
    "work_education",
    "exit_programmes",
]
NEEDS: tuple[str, ...] = get_args(Need)
LanguageCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=12, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$"),
    CleanText(),
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), CleanText()]
Texts = Annotated[dict[LanguageCode, ShortText], Field(max_length=20)]

_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]*$")
_EMAIL = re.compile(r"^[^@\s<>\"'`,;:()\[\]\\]+@[^@\s<>\"'`,;:()\[\]\\]+\.[A-Za-z]{2,}$")
_URL_BAD = re.compile(r"[\s<>\"'`\\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_phone(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    digits = sum(ch.isdigit() for ch in value)
    if len(value) > 40 or not _PHONE.match(value) or not 3 <= digits <= 20:
        raise ValueError(
            "a phone number has 3 to 20 digits, + first if international, and may have "
            "spaces, dashes, dots or brackets"
        )
    return value


def check_email(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not an e-mail address like name@example.org")
    return value


def check_web(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    parts = urlsplit(value)
    host = parts.hostname or ""
    if (
        len(value) > 500
        or parts.scheme not in ("http", "https")
        or "." not in host
        or parts.username is not None
        or _URL_BAD.search(value)
    ):
        raise ValueError("not a web address like https://example.org")
    return value


class ServiceInput(BaseModel):
    """What a coordinator writes; texts visitors see are per language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), CleanText()
    ]
    description: Texts = Field(default_factory=dict)
    needs: Annotated[list[Need], Field(min_length=1, max_length=len(NEEDS))]
    languages: Annotated[list[LanguageCode], Field(max_length=20)] = Field(default_factory=list)
    phone: Text = ""
    email: Text = ""
    web: Text = ""
    opening_hours: Texts = Field(default_factory=dict)
    # A city, or "" for a national service.
    city: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), CleanText()] = ""
    notes: Texts = Field(default_factory=dict)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return check_phone(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return check_email(value)

    @field_validator("web")
    @classmethod
    def _web(cls, value: str) -> str:
        return check_web(value)

    @field_validator("needs", "languages")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _reachable(self) -> ServiceInput:
        if not (self.phone or self.email or self.web):
            raise ValueError("give at least one way to reach the service: phone, email or web")
        texts = [self.name, self.city, *self.description.values()]
        texts += [*self.opening_hours.values(), *self.notes.values()]
        if any(_CONTROL.search(t) for t in texts):
            raise ValueError("texts must not contain control characters")
        return self


class ServiceOut(ServiceInput):
    id: uuid.UUID
    updated_at: datetime


class ServiceList(BaseModel):
    services: list[ServiceOut]


class ImportResult(BaseModel):
    created: int
    updated: int
