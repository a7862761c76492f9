"""Line settings as validated data, shared by the config file, the API and the cache."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from app.kit.fields import CleanText
from app.models.enums import LINE_QUALIFICATIONS, Qualification
from app.roster.occurrences import zone


def _known_zone(name: str) -> str:
    zone(name)
    return name


# An IANA time zone name such as "Europe/Stockholm"; unknown names are refused.
TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=64), CleanText(), AfterValidator(_known_zone)
]
DEFAULT_TIME_ZONE = "Europe/Stockholm"

LineKeyStr = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$"),
    CleanText(),
]
Language = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"), CleanText()
]
# A transcript is never kept longer than this after its chat ended.
MAX_RETENTION_SECONDS = 24 * 3600
# A mailbox thread is never kept longer than this after its last message.
MAX_MAILBOX_RETENTION_DAYS = 60
# "off"; "closed": visitors may write while the line is closed; "always".
MailboxMode = Literal["off", "closed", "always"]

Texts = dict[Language, Annotated[str, StringConstraints(max_length=4000), CleanText()]]
# One line of text per language (the privacy note a visitor reads before starting).
ShortTexts = dict[Language, Annotated[str, StringConstraints(max_length=300), CleanText()]]
# A wrap-up topic or outcome a line offers.
WrapupTerm = Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText()]


# A staff account's id (on call for a line).
StaffIdStr = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    CleanText(),
]
# The longest pause after an acute chat a line may set (seconds).
MAX_CARE_PAUSE_SECONDS = 2 * 3600
# A scripted opening a played visitor sends on a practice line.
PracticeOpening = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), CleanText()
]
# How chats reach counsellors: offered by routing, taken from the queue card, or both.
Assignment = Literal["offered", "taken", "both"]


class CannedResponse(BaseModel):
    """A prepared answer a counsellor inserts into the message box and edits before sending.

    In `text`, `{name}` becomes the counsellor's display name; any other `{word}`, or `...`
    standing alone, is a gap the console makes them fill in before it sends (docs/console.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: Language
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80), CleanText()
    ]
    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), CleanText()
    ]


class LineSettings(BaseModel):
    """Everything a coordinator configures about a line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: LineKeyStr
    name: Annotated[str, StringConstraints(min_length=1, max_length=100), CleanText()]
    languages: Annotated[list[Language], Field(min_length=1, max_length=30)]
    required_qualification: Qualification
    max_queue_length: StrictInt = Field(default=20, ge=1, le=10_000)
    offer_timeout_seconds: StrictInt = Field(default=30, ge=2, le=600)
    visitor_grace_seconds: StrictInt = Field(default=120, ge=1, le=3600)
    counsellor_grace_seconds: StrictInt = Field(default=60, ge=1, le=3600)
    language_relax_seconds: StrictInt = Field(default=120, ge=0, le=86_400)
    max_message_length: StrictInt = Field(default=4000, ge=1, le=10_000)
    auto_accept: StrictBool = False
    # How long an ended chat's transcript is kept (for a supervisor's debrief); 0: shredded at
    # once. A quick exit always shreds at once.
    transcript_retention_seconds: StrictInt = Field(default=0, ge=0, le=MAX_RETENTION_SECONDS)
    closed_message: Texts = Field(default_factory=dict)
    alternatives: Texts = Field(default_factory=dict)
    opening_hours: Texts = Field(default_factory=dict)
    # Optional, shown before a visitor starts; never a form or a wall in front of help.
    privacy_note: ShortTexts = Field(default_factory=dict)
    canned_responses: Annotated[list[CannedResponse], Field(max_length=200)] = Field(
        default_factory=list
    )
    # A visitor who asked for a peer supporter waits this long for one before anyone may answer.
    peer_relax_seconds: StrictInt = Field(default=120, ge=0, le=86_400)
    wrapup_topics: Annotated[list[WrapupTerm], Field(max_length=100)] = Field(default_factory=list)
    wrapup_outcomes: Annotated[list[WrapupTerm], Field(max_length=50)] = Field(default_factory=list)
    # The roster's shift times are wall-clock times in this zone.
    time_zone: TimeZoneName = DEFAULT_TIME_ZONE
    # Counsellors who work on the line may sign up for open places on its shifts.
    roster_signup: StrictBool = False
    # Risk and care (docs/risk.md). Shown at once to a visitor who presses "I am in danger
    # right now", per language (e.g. "If you are in danger now, call 112").
    emergency_text: ShortTexts = Field(default_factory=dict)
    # What a counsellor with an acute chat reads when no supervisor can be reached, and whom
    # to call then.
    emergency_procedure: Annotated[str, StringConstraints(max_length=4000), CleanText()] = ""
    emergency_contact: Annotated[str, StringConstraints(max_length=300), CleanText()] = ""
    # Staff alerted of an acute chat when no supervisor is on duty on the line.
    on_call: Annotated[list[StaffIdStr], Field(max_length=50)] = Field(default_factory=list)
    # No new offers for this long after an acute chat ends, unless the counsellor is ready.
    care_pause_seconds: StrictInt = Field(default=600, ge=0, le=MAX_CARE_PAUSE_SECONDS)
    # The anonymous mailbox (docs/mailbox.md): when visitors may write, when they are told to
    # expect an answer, and how many days a thread is kept after its last message.
    mailbox: MailboxMode = "closed"
    mailbox_answer_time: ShortTexts = Field(default_factory=dict)
    mailbox_retention_days: StrictInt = Field(default=14, ge=1, le=MAX_MAILBOX_RETENTION_DAYS)

    # "offered": routing offers each chat; "taken": counsellors take the next chat from their
    # queue card (nothing is offered); "both".
    assignment: Assignment = "offered"
    # A line for training: its chats are kept out of statistics, demand and /metrics, and
    # shown as practice wherever a chat shows.
    practice: StrictBool = False
    # Per language, openings a played visitor on a practice line sends with a click.
    practice_openings: dict[Language, Annotated[list[PracticeOpening], Field(max_length=50)]] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _texts_in_line_languages(self) -> LineSettings:
        if self.required_qualification not in LINE_QUALIFICATIONS:
            raise ValueError("a line needs psychologists or volunteers to answer it")
        for name in (
            "closed_message",
            "alternatives",
            "opening_hours",
            "privacy_note",
            "emergency_text",
            "practice_openings",
            "mailbox_answer_time",
        ):
            texts: dict[str, object] = getattr(self, name)
            unknown = sorted(set(texts) - set(self.languages))
            if unknown:
                raise ValueError(
                    f"{name} has texts for languages the line does not offer: {unknown}"
                )
        if len(set(self.on_call)) != len(self.on_call):
            raise ValueError("on_call must not repeat")
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages must not repeat")
        strays = sorted({c.language for c in self.canned_responses} - set(self.languages))
        if strays:
            raise ValueError(f"canned responses in languages the line does not offer: {strays}")
        return self


class PublicMailbox(BaseModel):
    """What a visitor may know of a line's mailbox."""

    # Visitors may write a new thread now ("always", or "closed" while the line is closed).
    writable: bool
    # Visitors may read threads ("off" lines that still hold threads stay readable).
    readable: bool
    answer_time: dict[str, str]
    retention_days: int


class PublicLine(BaseModel):
    """What anyone may know about a line (the widget asks for this)."""

    key: str
    name: str
    languages: list[str]
    open: bool
    opening_hours: dict[str, str]
    closed_message: dict[str, str]
    alternatives: dict[str, str]
    privacy_note: dict[str, str] = Field(default_factory=dict)
    max_message_length: int
    # When the roster next opens the line (epoch seconds), while it is closed; null if open
    # or nothing is planned in the coming weeks.
    next_open_at: float | None = None
    time_zone: str
    # A peer supporter answers on the line now (busy or not): the widget offers the choice.
    # Nothing more about who is on duty is told.
    peer_available: bool = False
    # Shown at once when the visitor presses "I am in danger right now" (docs/risk.md).
    emergency_text: dict[str, str] = Field(default_factory=dict)
    # A line for training: the widget marks the chat as practice.
    practice: bool = False
    # The line's mailbox, as the widget offers it (docs/mailbox.md).
    mailbox: PublicMailbox | None = None


class PracticeLine(BaseModel):
    """A practice line as the console's "Play a visitor" page needs it."""

    key: str
    name: str
    languages: list[str]
    openings: dict[str, list[str]]
