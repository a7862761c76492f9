"""Per-process counters of chat events, for the Prometheus metrics; nothing per visitor."""

from __future__ import annotations

from collections import Counter


class ChatCounters:
    """Counts of chat events per line in this process."""

    def __init__(self) -> None:
        self.requested: Counter[str] = Counter()
        self.offers: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self.turned_away: Counter[tuple[str, str]] = Counter()
        # Answers to the widget's one question after a chat, by (line, answer).
        self.feedback: Counter[tuple[str, str]] = Counter()

    def chat_requested(self, line: str) -> None:
        self.requested[line] += 1

    def offer_made(self, line: str) -> None:
        self.offers[line] += 1

    def chat_answered(self, line: str) -> None:
        self.answered[line] += 1

    def chat_abandoned(self, line: str) -> None:
        self.abandoned[line] += 1

    def chat_turned_away(self, line: str, reason: str) -> None:
        self.turned_away[(line, reason)] += 1

    def feedback_given(self, line: str, answer: str) -> None:
        self.feedback[(line, answer)] += 1
