from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from app.kit.fields import CleanText
from app.lines.schemas import Language, LineKeyStr
from app.models.enums import Qualification, StaffRole

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
    ),
    CleanText(),
]
# The first name or alias a visitor sees: printable, no control characters.
Alias = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
    CleanText(),
]
Capacity = Annotated[StrictInt, Field(ge=1, le=5)]
Languages = Annotated[list[Language], Field(max_length=30)]
# A TOTP code (6 digits) or a recovery code (16 letters and digits, dashes allowed).
SecondFactor = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), CleanText()
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024), CleanText()]
EnrolmentTokenStr = Annotated[str, StringConstraints(min_length=16, max_length=128), CleanText()]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText()]
    password: Password
    code: SecondFactor | None = None


class StaffRead(BaseModel):
    """A staff member as they see themselves."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    alias: str
    role: StaffRole
    qualification: Qualification | None
    is_peer: bool
    is_supervisor: bool
    languages: list[str]
    capacity: int


class SessionRead(BaseModel):
    staff: StaffRead
    # Send it back as the X-CSRF-Token header on every state-changing request.
    csrf_token: str
    expires_at: datetime
    recovery_codes_left: int | None = None


class SignInPage(BaseModel):
    """What the sign-in page needs before anyone signs in; never anything about one account."""

    # Whether the request carries a live session (then GET /api/staff/me answers).
    signed_in: bool
    # When this deployment lets accounts sign in without a code: "demo" (development with
    # demo accounts, which have none) or "optional" (LYKTA_TOTP_REQUIRED=false); else null.
    code_hint: Literal["demo", "optional"] | None


class LineAssignment(_In):
    """A line the staff member works on; when they are on duty there is the roster's business."""

    key: LineKeyStr


class _Profile(_In):
    @model_validator(mode="after")
    def _lines_unique(self) -> _Profile:
        lines: list[LineAssignment] | None = getattr(self, "lines", None)
        if lines is not None and len({a.key for a in lines}) != len(lines):
            raise ValueError("a line is named twice")
        languages: list[str] | None = getattr(self, "languages", None)
        if languages is not None and len(set(languages)) != len(languages):
            raise ValueError("languages must not repeat")
        return self


class StaffInvite(_Profile):
    username: Username
    alias: Alias
    role: StaffRole
    qualification: Qualification | None = None
    is_peer: StrictBool = False
    is_supervisor: StrictBool = False
    languages: Languages = Field(default_factory=list)
    capacity: Capacity = 2
    lines: Annotated[list[LineAssignment], Field(max_length=50)] = Field(default_factory=list)


class StaffUpdate(_Profile):
    """Only the fields given change."""

    alias: Alias | None = None
    role: StaffRole | None = None
    qualification: Qualification | None = None
    is_peer: StrictBool | None = None
    is_supervisor: StrictBool | None = None
    languages: Languages | None = None
    capacity: Capacity | None = None
    lines: Annotated[list[LineAssignment], Field(max_length=50)] | None = None


class StaffAdminRead(StaffRead):
    """A staff member as coordinators see them."""

    is_active: bool
    is_demo: bool
    password_set: bool
    totp_enrolled: bool
    lines: list[LineAssignment]
    created_at: datetime


class Me(StaffRead):
    csrf_token: str
    permissions: list[str]
    lines: list[LineAssignment]


class EnrolmentLink(BaseModel):
    # One-time and short-lived; the token is in the fragment, which browsers never send.
    link: str
    token: str
    expires_at: datetime


class StaffWithLink(BaseModel):
    staff: StaffAdminRead
    enrolment: EnrolmentLink


class ResetRequest(_In):
    password: StrictBool = False
    totp: StrictBool = False


class EnrolmentToken(_In):
    token: EnrolmentTokenStr


class EnrolmentStatus(BaseModel):
    username: str
    alias: str
    role: StaffRole
    needs_password: bool
    needs_totp: bool
    password_min_length: int
    expires_at: datetime


class TotpSetup(BaseModel):
    secret: str
    otpauth_uri: str
    qr_png: str  # data:image/png;base64,...


class EnrolmentComplete(_In):
    token: EnrolmentTokenStr
    password: Password | None = None
    code: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16), CleanText()
        ]
        | None
    ) = None


class Enrolled(BaseModel):
    staff: StaffRead
    # Shown once: each signs in once instead of a TOTP code. Only their hashes are kept.
    recovery_codes: list[str]
