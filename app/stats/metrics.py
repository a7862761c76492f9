"""Prometheus metrics: queue lengths, duty, offers and chat outcomes. Nothing per visitor.

Counters count what happened in this process since it started (Prometheus sums them over
processes and copes with restarts); gauges are read from the broker and the roster when
scraped, so every process reports the same, global values for them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker.base import Broker
from app.broker.records import StaffStatus, queued_at_of
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.lines.directory import LineDirectory
from app.lines.service import LineConfig
from app.mailbox.service import mailbox_service
from app.roster.repository import RosterLookups
from app.roster.service import roster_service
from app.routing.policy import on_duty
from app.routing.service import Router
from app.stats.counters import ChatCounters
from app.stats.repository import risk_counts, wrapup_counts
from app.stats.wrapups import Counts, shown_counts, terms


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _counter(name: str, doc: str, values: Counter[str], lines: Iterable[str]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=["line"])
    for line in sorted(lines):
        family.add_metric([line], values.get(line, 0))
    return family


# Wrap-ups, risk and "in danger" are counted in SQL over these windows (hour buckets).
WINDOWS = (("7d", 7), ("30d", 30))


async def _window_counts(
    session: AsyncSession, lines: list[LineConfig], now: datetime
) -> dict[tuple[str, str], Counts]:
    """Each line's counts over each window, counted by the database: a scrape reads a few
    rows per line and window, however many wrap-ups there are."""
    keys = [line.key for line in lines]
    found: dict[tuple[str, str], Counts] = {}
    for window, days in WINDOWS:
        since = now - timedelta(days=days)
        counts = {key: Counts() for key in keys}
        for wrapup in await wrapup_counts(session, keys, since, now, by_hour=False):
            counts[wrapup.line].add_wrapups(wrapup)
        for chats in await risk_counts(session, keys, since, now, by_hour=False):
            counts[chats.line].add_chats(chats)
        found.update({(key, window): value for key, value in counts.items()})
    return found


def _wrapup_families(
    lines: list[LineConfig], counts: dict[tuple[str, str], Counts], small: int
) -> list[Metric]:
    """Gauges of the last 7 and 30 days, per line, shown as the statistics API shows them:
    a count kept back there (too small, or beside one too small) leaves its sample out."""
    topics = GaugeMetricFamily(
        "lykta_wrapup_topics",
        "Wrap-ups naming a topic, over the window (counts kept back are left out).",
        labels=["line", "topic", "window"],
    )
    outcomes = GaugeMetricFamily(
        "lykta_wrapup_outcomes",
        "Wrap-ups with an outcome, over the window (counts kept back are left out).",
        labels=["line", "outcome", "window"],
    )
    risk = GaugeMetricFamily(
        "lykta_chats_risk",
        "Answered chats by risk level at the chat's end, over the window"
        " (counts kept back are left out).",
        labels=["line", "risk", "window"],
    )
    danger = GaugeMetricFamily(
        "lykta_chats_in_danger",
        "Answered chats whose visitor pressed 'in danger', over the window (counts kept back "
        "are left out).",
        labels=["line", "window"],
    )
    for line in sorted(lines, key=lambda line: line.key):
        for window, _days in WINDOWS:
            found = counts[(line.key, window)]
            shown = shown_counts(
                found,
                terms(line.wrapup_topics, [found.topics]),
                terms(line.wrapup_outcomes, [found.outcomes]),
                small,
            )
            for family, values in (
                (topics, shown.topics),
                (outcomes, shown.outcomes),
                (risk, shown.risk),
            ):
                for name, value in values.items():
                    if value is not None:
                        family.add_metric([line.key, name, window], value)
            if shown.in_danger is not None:
                danger.add_metric([line.key, window], shown.in_danger)
    return [topics, outcomes, risk, danger]


async def exposition(
    *,
    broker: Broker,
    lines: LineDirectory,
    router: Router,
    sessionmaker: async_sessionmaker[AsyncSession],
    counters: ChatCounters,
    small_count: int = 3,
) -> bytes:
    """The metrics in the Prometheus text format. A practice line is left out altogether."""
    real = [line for line in lines.all() if not line.practice]
    keys = sorted(line.key for line in real)
    now = broker.now()
    gauges = {
        "queue": GaugeMetricFamily(
            "lykta_queue_length", "Chats waiting in the line's queue.", labels=["line"]
        ),
        "oldest": GaugeMetricFamily(
            "lykta_queue_longest_wait_seconds",
            "How long the longest-waiting chat in the queue has waited.",
            labels=["line"],
        ),
        "on_duty": GaugeMetricFamily(
            "lykta_counsellors_on_duty",
            "Connected counsellors on duty on the line (any status).",
            labels=["line"],
        ),
        "available": GaugeMetricFamily(
            "lykta_counsellors_available",
            "Connected counsellors on duty on the line and available.",
            labels=["line"],
        ),
        "open": GaugeMetricFamily(
            "lykta_line_open", "1 when the line takes chats.", labels=["line"]
        ),
        "needed": GaugeMetricFamily(
            "lykta_roster_needed",
            "Counsellors the roster needs on the line's shifts right now.",
            labels=["line"],
        ),
        "mailbox": GaugeMetricFamily(
            "lykta_mailbox_threads_waiting",
            "Mailbox threads waiting for an answer (unclaimed, or the visitor wrote last).",
            labels=["line"],
        ),
        "assigned": GaugeMetricFamily(
            "lykta_roster_assigned",
            "Counsellors the roster has on the line's shifts right now.",
            labels=["line"],
        ),
    }
    staffing: dict[str, tuple[int, int]] = {}
    async with unit_of_work(sessionmaker) as session:
        rows = await RosterLookups(session).lines(keys)
        moment = utcnow()
        for key, line in rows.items():
            staffing[key] = await roster_service.staffed_now(session, line, moment)
        windows = await _window_counts(session, real, moment)
        mailbox_waiting = await mailbox_service.waiting_counts(session)
    for key in keys:
        queued = await broker.queue(key)
        candidates = await router.candidates(key)
        duty = [c for c in candidates if c.connected and on_duty(c.presence, key, now)]
        available = [c for c in duty if c.presence.status is StaffStatus.available]
        oldest = min((queued_at_of(score) for _, score in queued), default=now)
        needed, assigned = staffing.get(key, (0, 0))
        gauges["queue"].add_metric([key], len(queued))
        gauges["oldest"].add_metric([key], max(0.0, now - oldest))
        gauges["on_duty"].add_metric([key], len(duty))
        gauges["available"].add_metric([key], len(available))
        gauges["open"].add_metric([key], 1 if available else 0)
        gauges["needed"].add_metric([key], needed)
        gauges["assigned"].add_metric([key], assigned)
        gauges["mailbox"].add_metric([key], mailbox_waiting.get(key, 0))
    turned_away = CounterMetricFamily(
        "lykta_chats_turned_away",
        "Visitors told at once that nobody can answer (closed: nobody on duty; full: queue full).",
        labels=["line", "reason"],
    )
    for key in keys:
        for reason in ("closed", "full"):
            turned_away.add_metric([key, reason], counters.turned_away.get((key, reason), 0))
    feedback = CounterMetricFamily(
        "lykta_visitor_feedback",
        "Visitors' answers to 'did the chat help?' after a chat (helped, partly, not_helped).",
        labels=["line", "answer"],
    )
    for key in keys:
        for answer in ("helped", "partly", "not_helped"):
            feedback.add_metric([key, answer], counters.feedback.get((key, answer), 0))
    families: list[Metric] = [
        *gauges.values(),
        _counter(
            "lykta_chats_requested", "Visitors who asked for a chat.", counters.requested, keys
        ),
        _counter("lykta_offers", "Chats offered to a counsellor.", counters.offers, keys),
        _counter(
            "lykta_chats_answered",
            "Chats a counsellor answered (first answer only).",
            counters.answered,
            keys,
        ),
        _counter(
            "lykta_chats_abandoned",
            "Chats the visitor left while still waiting in the queue.",
            counters.abandoned,
            keys,
        ),
        turned_away,
        feedback,
        *_wrapup_families(real, windows, small_count),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)
