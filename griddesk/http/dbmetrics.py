"""Metrics read from the database when /metrics is scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from bot.runtime import Runtime
from storage import metrics as queries
from storage.models import CaseState


def render_db_metrics(rt: Runtime) -> bytes:
    now = rt.clock.now()
    with rt.db.read() as s:
        depth, oldest = queries.outbox_depth(s)
        by_state = queries.open_by_state(s)
        overdue = queries.overdue_count(s, now=now)
    registry = CollectorRegistry()
    Gauge("griddesk_outbox_depth", "Outbox rows not yet sent", registry=registry).set(depth)
    Gauge("griddesk_outbox_oldest_age_seconds", "Age of the oldest unsent outbox row", registry=registry).set(
        max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    )
    open_cases = Gauge("griddesk_open_cases", "Cases not closed, by state", ["state"], registry=registry)
    for state in CaseState.NOT_FINAL:
        open_cases.labels(state).set(by_state.get(state, 0))
    Gauge("griddesk_overdue_cases", "Open cases past their due time", registry=registry).set(overdue)
    return generate_latest(registry)
