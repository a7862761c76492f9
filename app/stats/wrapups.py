"""Wrap-ups read: topics, outcomes, risk levels and "in danger" per line by week or month,
as pure functions of the anonymous counts (hour buckets; nothing per chat).

Small counts are kept back (None here): a topic chosen once in a week on a small line could
point at one visitor for someone who knows when she wrote. Where counts add up to a total
that is shown, one more is kept back when subtraction would give the small ones away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# The risk levels a counsellor sets on a chat, in order.
RISK_LEVELS = ("none", "concern", "acute")


class Period(StrEnum):
    week = "week"
    month = "month"


@dataclass(frozen=True, slots=True)
class WrapupCount:
    """How many wrap-ups of a line (in an hour, when counted by hour) named these topics and
    this outcome."""

    line: str
    hour: datetime | None
    topics: tuple[str, ...]
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class RiskCount:
    """How many answered chats of a line (in an hour, when counted by hour) ended at this risk
    level, with or without the visitor's "in danger"."""

    line: str
    hour: datetime | None
    risk: str
    in_danger: bool
    count: int


@dataclass(slots=True)
class Counts:
    """One line's wrap-ups and answered chats over a period or window."""

    wrapups: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    chats: int = 0
    risk: Counter[str] = field(default_factory=Counter)
    in_danger: int = 0

    def add_wrapups(self, found: WrapupCount) -> None:
        self.wrapups += found.count
        for topic in set(found.topics):
            self.topics[topic] += found.count
        self.outcomes[found.outcome] += found.count

    def add_chats(self, found: RiskCount) -> None:
        self.chats += found.count
        self.risk[found.risk] += found.count
        if found.in_danger:
            self.in_danger += found.count


@dataclass(slots=True)
class Tally:
    """One line's counts of one week or month."""

    start: date
    counts: Counts = field(default_factory=Counts)


def period_start(moment: datetime, tz: ZoneInfo, period: Period) -> date:
    """The local date the week (Monday) or month of `moment` starts on."""
    local = moment.astimezone(tz).date()
    if period is Period.week:
        return local - timedelta(days=local.weekday())
    return local.replace(day=1)


def next_start(start: date, period: Period) -> date:
    if period is Period.week:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_starts(first: date, last: date, period: Period) -> list[date]:
    """Every whole week or month that overlaps first..last, in order."""
    start = (
        first - timedelta(days=first.weekday()) if period is Period.week else first.replace(day=1)
    )
    out = []
    while start <= last:
        out.append(start)
        start = next_start(start, period)
    return out


def tally(
    wrapups: Iterable[WrapupCount],
    risks: Iterable[RiskCount],
    tz: ZoneInfo,
    period: Period,
    first: date,
    last: date,
) -> list[Tally]:
    """One tally per week or month of first..last (empty ones too), oldest first. The counts
    are by hour."""
    tallies = {start: Tally(start) for start in period_starts(first, last, period)}
    for wrapup in wrapups:
        assert wrapup.hour is not None
        found = tallies.get(period_start(wrapup.hour, tz, period))
        if found is not None:
            found.counts.add_wrapups(wrapup)
    for chats in risks:
        assert chats.hour is not None
        found = tallies.get(period_start(chats.hour, tz, period))
        if found is not None:
            found.counts.add_chats(chats)
    return list(tallies.values())


def terms(configured: Iterable[str], counted: Iterable[Counter[str]]) -> list[str]:
    """A line's terms in its order, then any no longer offered that counts still hold."""
    names = list(dict.fromkeys(configured))
    seen = sorted({name for counter in counted for name in counter} - set(names))
    return names + seen


def shown(count: int, small: int) -> int | None:
    """A count as it may be shown on its own: None for 1..small-1 (too few to show)."""
    return None if 0 < count < small else count


def shown_parts(
    total: int, parts: dict[str, int], small: int
) -> tuple[int | None, dict[str, int | None]]:
    """A total and the counts that add up to it, as they may be shown (None: kept back).

    The counts kept back for being small add up to the total less the shown ones. When that
    pins them down (only one is kept back, or several that can only all be 1 or all
    small - 1), the smallest count still shown that is not zero is kept back too (with any
    equal to it), or the total when there is none: whoever subtracts then learns only that
    sum, which fits more than one split, since the extra count is at least `small` and the
    others are below it."""
    out = {name: shown(count, small) for name, count in parts.items()}
    whole = shown(total, small)
    hidden = [count for name, count in parts.items() if out[name] is None]
    if whole is None or not hidden:
        return whole, out
    rest = sum(hidden)
    if len(hidden) > 1 and rest not in (len(hidden), len(hidden) * (small - 1)):
        return whole, out
    others = {name: count for name, count in parts.items() if out[name] is not None and count}
    if not others:
        return None, out
    # Every count as small as the smallest: choosing one of equals by its place would tell
    # which of the counts kept back is the small one.
    smallest = min(others.values())
    for name, count in others.items():
        if count == smallest:
            out[name] = None
    return whole, out


@dataclass(frozen=True, slots=True)
class Shown:
    """One line's counts as they may be shown: None where kept back."""

    wrapups: int | None
    topics: dict[str, int | None]
    outcomes: dict[str, int | None]
    chats: int | None
    risk: dict[str, int | None]
    in_danger: int | None


def shown_counts(counts: Counts, topics: list[str], outcomes: list[str], small: int) -> Shown:
    """What may be shown of a period's or window's counts. A wrap-up has one outcome and an
    answered chat one risk level, so those add up to their totals; a wrap-up may name several
    topics or none, and "in danger" is one count, so those are kept back only when small."""
    wrapups, by_outcome = shown_parts(
        counts.wrapups, {name: counts.outcomes[name] for name in outcomes}, small
    )
    chats, by_risk = shown_parts(
        counts.chats, {name: counts.risk[name] for name in RISK_LEVELS}, small
    )
    return Shown(
        wrapups=wrapups,
        topics={name: shown(counts.topics[name], small) for name in topics},
        outcomes=by_outcome,
        chats=chats,
        risk=by_risk,
        in_danger=shown(counts.in_danger, small),
    )


def utc_bounds(starts: list[date], period: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC [start, end) of the whole periods that begin at `starts`."""
    end = next_start(starts[-1], period)
    return (
        datetime.combine(starts[0], time(), tz).astimezone(UTC),
        datetime.combine(end, time(), tz).astimezone(UTC),
    )
