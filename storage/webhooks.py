"""Webhook subscriptions and the events owed to them (the webhooks' outbox)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from storage.db import affected
from storage.models import WebhookEvent, WebhookSubscription

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


def add_subscription(session: Session, row: WebhookSubscription) -> WebhookSubscription:
    session.add(row)
    session.flush()
    return row


def subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.exec(select(WebhookSubscription).order_by(col(WebhookSubscription.id))))


def subscription(session: Session, sub_id: int) -> WebhookSubscription | None:
    return session.get(WebhookSubscription, sub_id)


def remove_subscription(session: Session, sub_id: int) -> bool:
    row = session.get(WebhookSubscription, sub_id)
    if row is None:
        return False
    session.execute(update(WebhookEvent).where(col(WebhookEvent.subscription_id) == sub_id).values(state=FAILED))
    row.active = False
    row.paused_at = None
    session.add(row)
    return True


class Listener(NamedTuple):
    id: int
    events: list[str]  # empty: every event


# Asked when a process's list of who listens runs out (bot/interop/webhooks.py): plain rows.
_SUBS = WebhookSubscription.__table__.c  # type: ignore[attr-defined]
_LISTENING = select(_SUBS.id, _SUBS.scope_code, _SUBS.events).where(_SUBS.active.is_(True)).order_by(_SUBS.id)


def listeners_by_scope(session: Session) -> dict[str, list[Listener]]:
    """Every active subscription, by the street or district it listens to, in id order."""
    found: dict[str, list[Listener]] = {}
    for row in session.connection().execute(_LISTENING):
        found.setdefault(row.scope_code, []).append(Listener(row.id, row.events or []))
    return found


def add_event(session: Session, row: WebhookEvent) -> None:
    session.add(row)


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether some event waits to be posted (read without the write lock claim_due takes)."""
    stmt = select(WebhookEvent.id).where(
        col(WebhookEvent.state).in_((PENDING, SENDING)), col(WebhookEvent.next_attempt_at) <= now
    )
    return session.exec(stmt.limit(1)).first() is not None


def claim_due(session: Session, *, now: datetime, lease: timedelta, limit: int = 100) -> list[WebhookEvent]:
    """Due events of unpaused subscriptions, taken for `lease` (SKIP LOCKED on PostgreSQL)."""
    stmt = (
        select(WebhookEvent)
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookEvent.subscription_id))
        .where(
            col(WebhookEvent.state).in_((PENDING, SENDING)),
            col(WebhookEvent.next_attempt_at) <= now,
            col(WebhookSubscription.active).is_(True),
            col(WebhookSubscription.paused_at).is_(None),
        )
        .order_by(col(WebhookEvent.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookEvent)
    )
    rows = list(session.exec(stmt))
    if rows:
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id).in_([r.id for r in rows]))
            .values(state=SENDING, attempts=WebhookEvent.attempts + 1, next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        for row in rows:  # the objects as the database now holds them (not flushed again)
            set_committed_value(row, "state", SENDING)
            set_committed_value(row, "attempts", row.attempts + 1)
            set_committed_value(row, "next_attempt_at", now + lease)
    return rows


def delivered_many(
    session: Session, *, event_ids: Collection[int], subscription_ids: Collection[int], now: datetime
) -> None:
    if not event_ids:
        return
    session.execute(
        update(WebhookEvent)
        .where(col(WebhookEvent.id).in_(list(event_ids)))
        .values(state=SENT, delivered_at=now, error=None)
    )
    session.execute(
        update(WebhookSubscription)
        .where(col(WebhookSubscription.id).in_(list(subscription_ids)), col(WebhookSubscription.failures) != 0)
        .values(failures=0)
    )


def delivered(session: Session, *, event_id: int, subscription_id: int, now: datetime) -> None:
    session.execute(
        update(WebhookEvent).where(col(WebhookEvent.id) == event_id).values(state=SENT, delivered_at=now, error=None)
    )
    session.execute(
        update(WebhookSubscription).where(col(WebhookSubscription.id) == subscription_id).values(failures=0)
    )


def failed(session: Session, *, event_id: int, subscription_id: int, retry_at: datetime | None, error: str) -> int:
    """Record a failed attempt (retry at `retry_at`, or give up); the subscriber's failures now."""
    values = {"state": PENDING, "next_attempt_at": retry_at} if retry_at else {"state": FAILED}
    session.execute(update(WebhookEvent).where(col(WebhookEvent.id) == event_id).values(error=error[:500], **values))
    sub = session.get(WebhookSubscription, subscription_id)
    assert sub is not None
    sub.failures += 1
    session.add(sub)
    session.flush()
    return sub.failures


def pause(session: Session, *, subscription_id: int, now: datetime) -> bool:
    """Pause a subscriber (once): True if this call paused it."""
    result = session.execute(
        update(WebhookSubscription)
        .where(col(WebhookSubscription.id) == subscription_id, col(WebhookSubscription.paused_at).is_(None))
        .values(paused_at=now)
    )
    return affected(result) == 1


def resume(session: Session, *, subscription_id: int, now: datetime) -> bool:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        return False
    sub.paused_at = None
    sub.failures = 0
    session.add(sub)
    session.execute(
        update(WebhookEvent)
        .where(col(WebhookEvent.subscription_id) == subscription_id, col(WebhookEvent.state) == PENDING)
        .values(next_attempt_at=now)
    )
    return True


def next_due(session: Session) -> datetime | None:
    return session.exec(
        select(func.min(col(WebhookEvent.next_attempt_at))).where(col(WebhookEvent.state).in_((PENDING, SENDING)))
    ).one()


def events_of(session: Session, subscription_id: int) -> list[WebhookEvent]:
    return list(
        session.exec(
            select(WebhookEvent).where(WebhookEvent.subscription_id == subscription_id).order_by(col(WebhookEvent.id))
        )
    )
