"""What is kept of an ended (or turned away) chat: its anonymous statistics row, held until
its hour's batch is written (app/held/)."""

from __future__ import annotations

from dataclasses import dataclass

from app.kit.clock import hour_bucket
from app.models import ChatStatistic
from app.models.enums import ChatOutcome


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
