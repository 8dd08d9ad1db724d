"""Outbound webhooks: which events a change of a case causes, who hears of it, and how a
delivery is signed and verified.

Events are rows (storage/webhooks.py) written in the transaction of the change, so no event
is lost and none is sent for a change that rolled back; griddesk/webhook_sender.py posts them.
Signature: `X-GridDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.interop import open311
from bot.org import index
from bot.runtime import Runtime
from storage import external, webhooks
from storage.models import WEBHOOK_EVENTS, Case, CaseSource, WebhookEvent, WebhookSubscription, pk

CREATED = "case.created"
DISPATCHED = "case.dispatched"
CLAIMED = "case.claimed"
RESOLVED = "case.resolved"
CLOSED = "case.closed"
REOPENED = "case.reopened"
OVERDUE = "case.overdue"
RATED = "case.rated"
EVENTS = WEBHOOK_EVENTS  # (storage/models.py: the organisation file's import checks them too)
assert (CREATED, DISPATCHED, CLAIMED, RESOLVED, CLOSED, REOPENED, OVERDUE, RATED) == EVENTS

# A lifecycle move -> the event it is to the outside (moves not listed are internal).
MOVE_EVENTS = {
    "dispatch": DISPATCHED,
    "claim": CLAIMED,
    "reassign": CLAIMED,
    "resolve": RESOLVED,
    "confirm": CLOSED,
    "reject": CLOSED,
    "duplicate": CLOSED,
    "not_fixed": REOPENED,
    "reopen": REOPENED,
}

# Who listens where is asked by every change of a case and changes seldom: a process keeps
# what it read this long. A subscription added or removed in the process counts at once
# (forget_listeners); one added from the command line, a process of its own, within this.
LISTENERS_TTL = timedelta(seconds=10)

HEADER = "X-GridDesk-Signature"
REPLAY_WINDOW_S = 300
PAUSE_AFTER_FAILURES = 8  # consecutive failed deliveries
MAX_ATTEMPTS = 12  # per event; then it is given up (failed)


class BadSubscription(ValueError):
    pass


# Set in the runtime's cache when a change queued webhook events: without it, a change's
# wake-up costs the webhook sender no database work at all.
OWED = "webhook_events_owed"


def retry_delay(attempts: int) -> timedelta:
    """Backoff: 5 s, 10 s, 20 s … at most an hour."""
    return timedelta(seconds=min(5 * 2 ** max(0, attempts - 1), 3600))


def subscribe(
    rt: Runtime, s: Session, *, url: str, scope_code: str, events: list[str] | None, now: datetime, origin: str = "cli"
) -> WebhookSubscription:
    if not url.startswith(("https://", "http://")) or len(url) > 2000:
        raise BadSubscription("the URL must be http(s)://…")
    known = index.org(rt)
    scopes = {st.code for st in known.streets.values()} | ({known.district.code} if known.district else set())
    if scope_code not in scopes:
        raise BadSubscription(f"{scope_code} is neither a street nor the district")
    wanted = sorted(set(events or []))
    unknown = [e for e in wanted if e not in EVENTS]
    if unknown:
        raise BadSubscription(f"unknown event {unknown[0]} (known: {', '.join(EVENTS)})")
    forget_listeners(rt)
    return webhooks.add_subscription(
        s,
        WebhookSubscription(
            url=url, scope_code=scope_code, events=wanted, secret=secrets.token_hex(32), origin=origin, created_at=now
        ),
    )


def case_event(rt: Runtime, s: Session, case: Case, event: str, now: datetime, **extra: Any) -> int:
    """Queue `event` for every subscriber of the case's street or district, in the caller's
    transaction. Cases of non-public categories are never sent. Returns how many."""
    known = index.org(rt)
    cat = known.category(case.category_id)
    if cat is None or not cat.public:
        return 0
    street = known.street(case.street_id)
    scopes = [c for c in (street.code if street else None, known.district.code if known.district else None) if c]
    subs = [sub for sub in _listening(rt, s, scopes, now) if not sub.events or event in sub.events]
    if not subs:
        return 0
    ticket = external.ticket_of_case(s, pk(case)) if case.source in (CaseSource.HOTLINE, "open311") else None
    status, _ = open311.STATUS[case.state]
    payload_case = {
        "service_request_id": case.code,
        "case_code": case.code,
        "state": case.state,
        "status": status,
        "service_code": cat.code,
        "street": street.code if street else None,
        "source": case.source,
        "ticket_no": ticket.ticket_no if ticket else None,
        "requested_datetime": open311.iso(rt, case.created_at),
        "updated_datetime": open311.iso(rt, case.updated_at),
        "expected_datetime": open311.iso(rt, case.due_at),
    }
    rt.cache[OWED] = True  # wakes the webhook sender after the commit (griddesk/webhook_sender.py)
    for sub in subs:
        event_id = str(uuid.uuid4())
        body = {"id": event_id, "event": event, "created_at": open311.iso(rt, now), "case": payload_case, **extra}
        webhooks.add_event(
            s,
            WebhookEvent(
                event_id=event_id,
                subscription_id=sub.id,
                event=event,
                case_id=case.id,
                body=body,
                created_at=now,
                next_attempt_at=now,
            ),
        )
    return len(subs)


def _listening(rt: Runtime, s: Session, scopes: list[str], now: datetime) -> list[webhooks.Listener]:
    """Who listens to these scopes, from what this process read at most LISTENERS_TTL ago."""
    kept: tuple[datetime, dict[str, list[webhooks.Listener]]] | None = rt.cache.get(index.WEBHOOK_LISTENERS)
    if kept is None or not kept[0] <= now < kept[0] + LISTENERS_TTL:
        kept = rt.cache[index.WEBHOOK_LISTENERS] = (now, webhooks.listeners_by_scope(s))
    return sorted((sub for scope in scopes for sub in kept[1].get(scope, ())), key=lambda sub: sub.id)


def forget_listeners(rt: Runtime) -> None:
    """A subscription was added or removed here: the next change asks the database again."""
    rt.cache.pop(index.WEBHOOK_LISTENERS, None)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, raw: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str | None, raw: bytes, *, now: float, window_s: int = REPLAY_WINDOW_S) -> bool:
    """What a receiver does: the signature matches and `t` is no older than the window."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > window_s:
        return False
    expected = sign(secret, timestamp, raw).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
