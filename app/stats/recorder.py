"""What is kept of an ended (or turned away) chat: its anonymous statistics row, held until
its hour's batch is written (app/held/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.held.rows import HeldRow
from app.kit.clock import hour_bucket
from app.lines.directory import LineDirectory
from app.models import ChatStatistic, MailboxStatistic, Wrapup
from app.models.enums import ChatOutcome


def statistics_kept(lines: LineDirectory) -> Callable[[HeldRow], bool]:
    """Which held rows are kept: a practice line's chats and mailbox threads leave no
    statistics row and no wrap-up (their audit entries are kept like any other)."""

    def keeps(row: HeldRow) -> bool:
        if isinstance(row, ChatStatistic | MailboxStatistic | Wrapup):
            line = lines.get(row.line_key)
            return line is None or not line.practice
        return True

    return keeps


@dataclass(frozen=True, slots=True)
class ChatFacts:
    """What is kept of an ended chat: no id, no content, the hour rather than the time."""

    line: str
    started_at: float
    waited_seconds: int | None
    duration_seconds: int | None
    outcome: ChatOutcome
    risk: str = "none"
    in_danger: bool = False

    def row(self) -> ChatStatistic:
        return ChatStatistic(
            line_key=self.line,
            hour=hour_bucket(self.started_at),
            waited_seconds=self.waited_seconds,
            duration_seconds=self.duration_seconds,
            outcome=self.outcome,
            answered=self.outcome is ChatOutcome.answered,
            risk=self.risk,
            in_danger=self.in_danger,
        )
