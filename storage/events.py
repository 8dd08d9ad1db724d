"""Business events in the log: one INFO line each, written when its transaction commits.

A report submitted, a case dispatched, claimed, resolved, closed, a rating received, a
reminder or a 督办 sent: each is recorded in the unit of work that made it (``audit.record``
does it for audited actions, ``deadlines`` for reminders) and logged by the logger
``griddesk.events`` only once the transaction has committed, so a rolled-back attempt (a
lost claim race, a refused move) leaves no line. The fields go into the record as ``extra``
(``event``, ``case``, ``case_id``, ``actor``...), for ``--log-format json``.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("griddesk.events")

_KEY = "griddesk_events"
# Audited actions that are not business events of their own (they accompany one).
QUIET_ACTIONS = frozenset({"case.due_set"})
LOGGED_PREFIXES = ("case.", "rating.received", "rating.commented", "followup.")


def wanted(action: str) -> bool:
    return action.startswith(LOGGED_PREFIXES) and action not in QUIET_ACTIONS


def business_event(session: Session, name: str, **fields: Any) -> None:
    """Log `name` with `fields` when `session` commits (nothing if it rolls back)."""
    if not log.isEnabledFor(logging.INFO):
        return
    session.info.setdefault(_KEY, []).append((name, {k: v for k, v in fields.items() if v is not None}))


def _flush_log(session: Session) -> None:
    pending = session.info.pop(_KEY, None)
    for name, fields in pending or ():
        described = " ".join(f"{k}={v}" for k, v in fields.items())
        log.info("%s %s", name, described, extra={"event": name, **fields})


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_KEY, None)


event.listen(Session, "after_commit", _flush_log)
event.listen(Session, "after_rollback", _forget)
