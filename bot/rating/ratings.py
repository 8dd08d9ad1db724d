"""Satisfaction (好差评): residents rate a closed case, and a bad rating is followed up (回访).

Who is asked: the resident who reported the case through the bot, and residents a worker
attaches with a rating link (`/ratelink CODE`: a deep link and its QR code). Each is asked
when the case closes (outbox rows written in the closing transaction), or at once when
they open a link of a case already closed. One rating per resident per case (一事一评):
a compare-and-set on the request plus a unique constraint on the rating.

A rating of "dissatisfied" or worse opens a follow-up for the street's command room, with
its own time limit; the command room records the contact and the outcome, which may
reopen the case to its team.

Privacy: rating events are audited by their own subject (not under the case's id), so a
case's timeline, which its reporter may read, never shows another resident's rating.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot import notify
from bot.cases import deadlines, lifecycle
from bot.cases.cards import Names, case_view
from bot.errors import DomainError, NotAllowed
from bot.i18n import N_
from bot.interop import webhooks
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, cases, chats, orgs, outbox, people, ratings, worklists
from storage.models import (
    Case,
    CaseSource,
    CaseState,
    FollowUp,
    RatingLink,
    UnitKind,
    pk,
)

# --- the five levels ------------------------------------------------------------------

VERY_SATISFIED, SATISFIED, FAIRLY_SATISFIED, DISSATISFIED, VERY_DISSATISFIED = 5, 4, 3, 2, 1
LEVELS = (VERY_SATISFIED, SATISFIED, FAIRLY_SATISFIED, DISSATISFIED, VERY_DISSATISFIED)  # button order
SATISFIED_LEVELS = (VERY_SATISFIED, SATISFIED, FAIRLY_SATISFIED)  # counted in the satisfaction rate
BAD_LEVELS = (DISSATISFIED, VERY_DISSATISFIED)  # these open a follow-up
EMOJI = {5: "😀", 4: "🙂", 3: "😐", 2: "🙁", 1: "😠"}
LEVEL_KEYS = {
    5: N_("rate.level_5"),  # 非常满意
    4: N_("rate.level_4"),  # 满意
    3: N_("rate.level_3"),  # 基本满意
    2: N_("rate.level_2"),  # 不满意
    1: N_("rate.level_1"),  # 非常不满意
}

# --- links ----------------------------------------------------------------------------

RATE_PREFIX = "rate-"
_TOKEN_BYTES = 18  # 24 characters of A-Z a-z 0-9 _ -: unguessable, and well within 64 with the prefix
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,59}")

MAX_COMMENT = 1000  # characters of a comment we keep
COMMENT_WINDOW = timedelta(minutes=30)  # how long after rating a message counts as the comment

# What a resident's rating request shows of the case's history, and how it is worded.
HISTORY_KEYS = {
    "case.reported": N_("audit.case.reported"),
    "case.dispatched": N_("audit.case.dispatched"),
    "case.claimed": N_("audit.case.claimed"),
    "case.escalated": N_("audit.case.escalated"),
    "case.reported_in": N_("audit.case.reported_in"),
    "case.resolved": N_("audit.case.resolved"),
    "case.not_fixed": N_("audit.case.not_fixed"),
    "case.reopened": N_("audit.case.reopened"),
    "case.closed": N_("audit.case.closed"),
}
HISTORY_LINES = 6

# Follow-up buttons (v1:followup:<id>:<op>) and the outcomes they record.
CONTACTED, RESOLVED, UNREACHABLE, REOPENED = "contacted", "resolved", "unreachable", "reopened"
FOLLOWUP_OPS = {"c": CONTACTED, "r": RESOLVED, "u": UNREACHABLE, "o": REOPENED}
OUTCOME_KEYS = {
    RESOLVED: N_("rate.outcome_resolved"),
    UNREACHABLE: N_("rate.outcome_unreachable"),
    REOPENED: N_("rate.outcome_reopened"),
    "open": N_("rate.outcome_open"),
    "overdue": N_("rate.outcome_overdue"),
}

# Outbox kinds this feature renders (handlers/rate.py).
KIND_REQUEST = "rating_request"
KIND_FOLLOWUP = "followup_card"
KINDS = (KIND_REQUEST, KIND_FOLLOWUP)


# --- errors -----------------------------------------------------------------------------


class LinkNotValid(DomainError):
    key = "rate.link_invalid"


class LinkExpired(DomainError):
    key = "rate.link_expired"


class LinkUsed(DomainError):
    key = "rate.link_used"


class StaffCannotRate(DomainError):
    key = "rate.staff_refused"


class NotRateable(DomainError):
    key = "rate.not_rateable"


class AlreadyRated(DomainError):
    key = "rate.already_rated"


class CaseReopened(DomainError):
    """The resident pressed a rating for a case that was reopened since: asked again later."""

    key = "rate.case_reopened"


class NotYours(DomainError):
    """A rating or follow-up button that is not this person's, or names nothing."""

    key = "button.stale"


class CaseNotVisible(DomainError):
    key = "case.not_visible"


class LinkNotAllowed(NotAllowed):
    key = "rate.link_not_allowed"


class FollowUpDone(DomainError):
    key = "rate.fu_already_done"


class AlreadyContacted(DomainError):
    key = "rate.fu_already_contacted"


class UnknownScope(DomainError):
    key = "rate.stats_unknown_scope"


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkMade:
    code: str
    token: str
    link: str
    expires_at: datetime


@dataclass(frozen=True)
class Redeemed:
    code: str
    status: str  # asked (the request is on its way), later (asked at close), rated (already did)


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    key: str


@dataclass(frozen=True)
class RequestView:
    request_id: int
    case_id: int
    code: str
    category: Names
    photo_paths: tuple[str, ...]
    after_photo_paths: tuple[str, ...]
    history: tuple[HistoryLine, ...]


@dataclass(frozen=True)
class Rated:
    rating_id: int
    case_id: int
    code: str
    level: int
    followup_id: int | None
    followup_days: float


@dataclass(frozen=True)
class Commented:
    rating_id: int
    code: str
    truncated: bool
    prompt_message_id: int | None


@dataclass(frozen=True)
class FollowUpView:
    id: int
    case_id: int
    code: str
    category: Names
    level: int
    comment: str | None
    comment_truncated: bool
    voice_seconds: int | None
    resident_name: str
    resident_telegram_id: int | None
    resident_username: str | None
    created_at: datetime
    due_at: datetime
    contacted_at: datetime | None
    contacted_by: str | None
    outcome: str | None
    done_at: datetime | None
    done_by: str | None
    card_chat_id: int | None
    card_message_id: int | None


@dataclass(frozen=True)
class FollowUpResult:
    followup_id: int
    code: str
    op: str  # contacted, resolved, unreachable, reopened


@dataclass(frozen=True)
class Stats:
    requests_sent: int  # residents first asked in the period
    responded: int  # of those, how many have rated
    by_level: dict[int, int]  # ratings received in the period
    followups: dict[str, int]  # follow-ups opened in the period, by outcome (open, overdue, …)

    @property
    def ratings(self) -> int:
        return sum(self.by_level.values())

    @property
    def satisfied(self) -> int:
        return sum(self.by_level.get(level, 0) for level in SATISFIED_LEVELS)

    @property
    def bad(self) -> int:
        return sum(self.by_level.get(level, 0) for level in BAD_LEVELS)

    @property
    def response_rate(self) -> float | None:
        return self.responded / self.requests_sent if self.requests_sent else None

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.ratings if self.ratings else None


@dataclass(frozen=True)
class StaffRating:
    level: int
    at: datetime
    resident: str
    comment: str | None
    voice_seconds: int | None
    followup_outcome: str | None = None  # resolved, unreachable, reopened, open, overdue
    followup_due: datetime | None = None


# --- who may do what --------------------------------------------------------------------


def _works_on(rt: Runtime, s: Session, person: Person, case: Case) -> bool:
    """Staff who had a hand in the case, or oversee it, do not rate it."""
    return not lifecycle.may("rate", lifecycle.relations(rt, s, person, case))


# --- links ------------------------------------------------------------------------------


def parse_rate_payload(payload: str) -> str | None:
    """The token of a `/start rate-<token>` payload (checked later), or None for other payloads."""
    if payload.startswith(RATE_PREFIX):
        return payload[len(RATE_PREFIX) :]
    return None


def make_link(rt: Runtime, *, person: Person | None, code: str) -> LinkMade:
    """A fresh single-use rating link for one resident, bound to the case (person None: the
    hotline system asking through the API, for the caller)."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = cases.get_case_by_code(s, code[:32])
        if case is None:
            raise CaseNotVisible(code=code[:32])
        if not lifecycle.may("ratelink", lifecycle.relations(rt, s, person, case)):
            raise LinkNotAllowed()
        if case.state in (CaseState.REJECTED, CaseState.DUPLICATE):
            raise NotRateable(code=case.code)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        link = ratings.add_link(
            s,
            RatingLink(
                token=token,
                case_id=pk(case),
                created_by=person.user_id if person else None,
                created_at=now,
                expires_at=now + timedelta(days=rt.settings.rating_link_days),
            ),
        )
        audit.record(
            s,
            action="rating.link_made",
            subject_type="ratinglink",
            subject_id=link.id,
            actor_user_id=person.user_id if person else None,
            data={"case_id": case.id},
            at=now,
        )
        return LinkMade(case.code, token, rt.deep_link(RATE_PREFIX + token), link.expires_at)


def redeem_link(rt: Runtime, *, person: Person, token: str) -> Redeemed:
    """A resident opened a rating link: attach them to the case, and ask now if it is closed."""
    if not _TOKEN_RE.fullmatch(token):
        raise LinkNotValid()
    now = rt.clock.now()
    with rt.db.session() as s:
        link = ratings.link_by_token(s, token)
        if link is None:
            raise LinkNotValid()
        if link.used_at is not None and link.used_by_user_id != person.user_id:
            raise LinkUsed()
        if link.used_at is None and link.expires_at <= now:
            raise LinkExpired()
        case = cases.get_case(s, link.case_id)
        if case is None:
            raise LinkNotValid()
        if case.state in (CaseState.REJECTED, CaseState.DUPLICATE):
            raise NotRateable(code=case.code)
        if _works_on(rt, s, person, case):
            raise StaffCannotRate(code=case.code)
        if link.used_at is None:
            if not ratings.use_link(s, link_id=link.id, user_id=person.user_id, now=now):  # type: ignore[arg-type]
                raise LinkUsed()  # another resident opened it a moment earlier
            audit.record(
                s,
                action="rating.link_used",
                subject_type="ratinglink",
                subject_id=link.id,
                actor_user_id=person.user_id,
                data={"case_id": case.id},
                at=now,
            )
        request, _ = ratings.attach(s, case_id=case.id, user_id=person.user_id, origin="link", link_id=link.id, now=now)  # type: ignore[arg-type]
        if request.rated_at is not None:
            return Redeemed(case.code, "rated")
        if case.state == CaseState.CLOSED:
            _ask(rt, s, case, now, user_id=person.user_id)
            return Redeemed(case.code, "asked")
        return Redeemed(case.code, "later")


# --- asking -----------------------------------------------------------------------------


def _ask(rt: Runtime, s: Session, case: Case, now: datetime, *, user_id: int | None = None) -> int:
    """Ask every resident of the case who has not rated and can be messaged (or `user_id`
    alone): how many were asked."""
    remind_at = now + timedelta(hours=rt.settings.rating_reminder_hours)
    asked = ratings.ask(s, case_id=pk(case), now=now, remind_at=remind_at, user_id=user_id)
    chats = people.chats_of(s, (resident for _, resident in asked))
    for request_id, resident in asked:
        chat_id = chats[resident]
        if chat_id is not None:  # None only if they blocked the bot in the meantime
            outbox.enqueue(
                s, chat_id=chat_id, kind=KIND_REQUEST, case_id=case.id, payload={"request": request_id}, now=now
            )
    return len(asked)


def on_case_closed(rt: Runtime, s: Session, case: Case, now: datetime) -> int:
    """Called in the closing transaction: ask every attached resident who has not rated.
    Returns how many were asked."""
    # Residents whose own report joined this case are just as concerned by it as its reporter.
    ratings.attach_residents(
        s,
        case_id=pk(case),
        reporter_user_id=case.reporter_user_id,
        resident_reported=case.source == CaseSource.RESIDENT,
        now=now,
    )
    return _ask(rt, s, case, now)


def request_view(rt: Runtime, request_id: int) -> RequestView | None:
    """What a rating request shows, as the case is now; None when there is nothing to ask
    (rated meanwhile, or the case is open again)."""
    with rt.db.read() as s:
        request = ratings.get_request(s, request_id)
        if request is None or request.rated_at is not None:
            return None
        case = cases.get_case(s, request.case_id)
        if case is None or case.state != CaseState.CLOSED:
            return None
        events = [e for e in worklists.timeline(s, case.id) if e.action in HISTORY_KEYS]  # type: ignore[arg-type]
        history = tuple(HistoryLine(e.at, HISTORY_KEYS[e.action]) for e in events[-HISTORY_LINES:])
    view = case_view(rt, request.case_id)
    if view is None:
        return None
    return RequestView(request_id, view.id, view.code, view.category, view.photo_paths, view.after_photo_paths, history)


def remind_unrated(rt: Runtime, *, limit: int = 200) -> int:
    """Queue the one reminder of every request whose time has come. Each row is claimed by
    a compare-and-set, so running this twice (or in two processes) reminds nobody twice."""
    now = rt.clock.now()
    queued = 0
    with rt.db.session() as s:
        for request in ratings.due_reminders(s, now=now, limit=limit):
            request_id, case_id, user_id = request.id, request.case_id, request.user_id
            if not ratings.claim_reminder(s, request_id=request_id, now=now):  # type: ignore[arg-type]
                continue
            case = cases.get_case(s, case_id)
            user = people.get_user(s, user_id)
            if case is None or case.state != CaseState.CLOSED or user is None or not user.can_message:
                continue
            outbox.enqueue(
                s,
                chat_id=user.telegram_id,
                kind=KIND_REQUEST,
                case_id=case_id,
                payload={"request": request_id, "reminder": True},
                now=now,
            )
            queued += 1
    return queued


# --- rating -----------------------------------------------------------------------------


def rate(rt: Runtime, *, person: Person, request_id: int, level: int, message_id: int | None = None) -> Rated:
    """The resident pressed one of the five levels."""
    if level not in LEVELS:
        raise NotYours()
    now = rt.clock.now()
    with rt.db.session() as s:
        request = ratings.get_request(s, request_id)
        if request is None or request.user_id != person.user_id:
            raise NotYours()
        case = cases.get_case(s, request.case_id)
        if case is None:
            raise NotYours()
        if _works_on(rt, s, person, case):
            raise StaffCannotRate(code=case.code)
        if request.rated_at is not None:
            raise AlreadyRated(code=case.code)
        if case.state != CaseState.CLOSED:
            raise CaseReopened(code=case.code)
        if not ratings.claim_rating(s, request_id=request_id, now=now):
            raise AlreadyRated(code=case.code)
        ratings.close_comments_of(s, user_id=person.user_id)  # an older rating's comment window
        _window_opened(rt, person.user_id, now + COMMENT_WINDOW)  # before the commit: never missed
        rating_id = ratings.add_rating(
            s,
            case_id=pk(case),
            user_id=person.user_id,
            request_id=request_id,
            level=level,
            comment_until=now + COMMENT_WINDOW,
            prompt_message_id=message_id,
            now=now,
        )
        audit.record(
            s,
            action="rating.received",
            subject_type="rating",
            subject_id=rating_id,
            actor_user_id=person.user_id,
            data={"case_id": case.id, "level": level},
            at=now,
        )
        followup_id = _open_followup(rt, s, case, rating_id, now).id if level in BAD_LEVELS else None
        webhooks.case_event(rt, s, case, webhooks.RATED, now, rating={"level": level})
        days = deadlines.street_clock(rt, s, case.street_id).follow_up_days
        return Rated(rating_id, pk(case), case.code, level, followup_id, days)


def followup_due(rt: Runtime, s: Session, street_id: int | None, start: datetime) -> datetime:
    """The follow-up limit (`follow_up_days` in the organisation file: district, street
    over it) in working days on the street's calendar: the one figure residents are told."""
    clock = deadlines.street_clock(rt, s, street_id)
    return clock.calendar.add_working_days(start, clock.follow_up_days)


def _open_followup(rt: Runtime, s: Session, case: Case, rating_id: int, now: datetime) -> FollowUp:
    due = followup_due(rt, s, case.street_id, now)
    row = ratings.add_followup(
        s, FollowUp(case_id=pk(case), rating_id=rating_id, street_id=case.street_id, created_at=now, due_at=due)
    )
    deadlines.plan_followup(rt, s, row)
    audit.record(
        s,
        action="followup.opened",
        subject_type="followup",
        subject_id=row.id,
        data={"case_id": case.id, "rating_id": rating_id, "due_at": due.isoformat()},
        at=now,
    )
    _queue_card(s, row, case, now)
    return row


def _queue_card(s: Session, row: FollowUp, case: Case, now: datetime) -> None:
    """Post (or refresh) the follow-up card in the command room's group."""
    chat_id = row.card_chat_id
    if chat_id is None:
        room = orgs.command_room_of(s, case.street_id) if case.street_id else None
        chat = chats.chat_for_unit(s, room.id) if room else None  # type: ignore[arg-type]
        if chat is None:
            audit.record(
                s,
                action="notify.no_chat",
                subject_type="followup",
                subject_id=row.id,
                data={"case_id": case.id, "unit_id": room.id if room else None, "purpose": "followup"},
                at=now,
            )
            return
        chat_id = chat.telegram_id
    outbox.enqueue(s, chat_id=chat_id, kind=KIND_FOLLOWUP, case_id=case.id, payload={"followup": row.id}, now=now)


# --- comments ---------------------------------------------------------------------------


# Which residents may have a comment window open, kept in memory so that a resident's every
# command and message need not ask the database (rt.cache, {user id: until}). Read at start-up
# (griddesk/app.py warm_caches) and written by each rating before it commits: complete, as
# only one process handles updates (the poller lock) and only an update opens a window.
# Without it (never read), every message asks the database.
_WINDOWS = "comment_windows"


def remember_windows(rt: Runtime) -> None:
    """Read which comment windows are open now (at start-up)."""
    with rt.db.read() as s:
        rt.cache[_WINDOWS] = ratings.open_comment_windows(s, now=rt.clock.now())


def _windows(rt: Runtime) -> dict[int, datetime] | None:
    """{user id: until} of the windows that may be open; None until read at start-up."""
    return rt.cache.get(_WINDOWS)


def window_may_be_open(rt: Runtime, user_id: int) -> bool:
    """False when this person has no comment window open for sure; True when they may."""
    known = _windows(rt)
    if known is None:
        return True
    until = known.get(user_id)
    if until is not None and until <= rt.clock.now():
        known.pop(user_id, None)
        return False
    return until is not None


def window_closed(rt: Runtime, user_id: int) -> None:
    """Their window was found closed (or was closed): no need to ask again."""
    if (known := _windows(rt)) is not None:
        known.pop(user_id, None)


def _window_opened(rt: Runtime, user_id: int, until: datetime) -> None:
    if (known := _windows(rt)) is not None:
        known[user_id] = max(until, known.get(user_id, until))


def comment_window(rt: Runtime, user_id: int) -> int | None:
    """The rating this person may still comment on (its id), or None."""
    with rt.db.read() as s:
        return comment_window_in(s, user_id, rt.clock.now())


def comment_window_in(s: Session, user_id: int, now: datetime) -> int | None:
    return ratings.open_comment_id(s, user_id=user_id, now=now)


def add_comment(
    rt: Runtime,
    *,
    user_id: int,
    text: str | None = None,
    voice_file_id: str | None = None,
    voice_seconds: int | None = None,
) -> Commented | None:
    """The resident's words (or voice) after their rating; None if the window had closed."""
    now = rt.clock.now()
    with rt.db.session() as s:
        rating = ratings.open_comment(s, user_id=user_id, now=now)
        if rating is None:
            return None
        values: dict[str, Any] = {}
        truncated = False
        if text is not None:
            clean = text.strip()
            truncated = len(clean) > MAX_COMMENT
            values.update(comment=clean[:MAX_COMMENT], comment_truncated=truncated)
        if voice_file_id is not None:
            values.update(comment_voice_file_id=voice_file_id, comment_voice_seconds=voice_seconds)
        if not ratings.close_comment(s, rating_id=rating.id, now=now, values=values):  # type: ignore[arg-type]
            return None
        audit.record(
            s,
            action="rating.commented",
            subject_type="rating",
            subject_id=rating.id,
            actor_user_id=user_id,
            data={
                "case_id": rating.case_id,
                "chars": len(values.get("comment") or ""),
                "voice": voice_file_id is not None,
                "truncated": truncated,
            },
            at=now,
        )
        case = cases.get_case(s, rating.case_id)
        followup = ratings.followup_of_rating(s, rating.id)  # type: ignore[arg-type]
        if followup is not None and case is not None and followup.outcome is None:
            _queue_card(s, followup, case, now)
        return Commented(rating.id, case.code if case else "?", truncated, rating.prompt_message_id)  # type: ignore[arg-type]


def skip_comment(rt: Runtime, *, person: Person, rating_id: int) -> Rated:
    with rt.db.session() as s:
        rating = ratings.get_rating(s, rating_id)
        if rating is None or rating.user_id != person.user_id:
            raise NotYours()
        ratings.close_comment(s, rating_id=rating_id, now=rt.clock.now())
        case = cases.get_case(s, rating.case_id)
        followup = ratings.followup_of_rating(s, rating_id)
        return Rated(
            rating_id,
            rating.case_id,
            case.code if case else "?",
            rating.level,
            followup.id if followup else None,
            deadlines.street_clock(rt, s, case.street_id if case else None).follow_up_days,
        )


def close_comment_window(rt: Runtime, user_id: int) -> None:
    """The resident moved on (a command, a photo for a new report): stop waiting for a comment."""
    with rt.db.session() as s:
        ratings.close_comments_of(s, user_id=user_id)


# --- follow-ups -------------------------------------------------------------------------


def followup_view(rt: Runtime, followup_id: int) -> FollowUpView | None:
    with rt.db.read() as s:
        row = ratings.get_followup(s, followup_id)
        if row is None:
            return None
        case = cases.get_case(s, row.case_id)
        rating = ratings.get_rating(s, row.rating_id)
        if case is None or rating is None:
            return None
        category = orgs.category(s, case.category_id) if case.category_id else None
        resident = people.get_user(s, rating.user_id)

        def name(user_id: int | None) -> str | None:
            user = people.get_user(s, user_id) if user_id else None
            return user.display_name if user else None

        return FollowUpView(
            id=pk(row),
            case_id=pk(case),
            code=case.code,
            category=Names(category.name_zh, category.name_en) if category else Names("—", "—"),
            level=rating.level,
            comment=rating.comment,
            comment_truncated=rating.comment_truncated,
            voice_seconds=rating.comment_voice_seconds if rating.comment_voice_file_id else None,
            resident_name=resident.display_name if resident else "?",
            resident_telegram_id=resident.telegram_id if resident else None,
            resident_username=resident.username if resident else None,
            created_at=row.created_at,
            due_at=row.due_at,
            contacted_at=row.contacted_at,
            contacted_by=name(row.contacted_by),
            outcome=row.outcome,
            done_at=row.done_at,
            done_by=name(row.done_by),
            card_chat_id=row.card_chat_id,
            card_message_id=row.card_message_id,
        )


def followup_card_posted(rt: Runtime, *, followup_id: int, chat_id: int, message_id: int) -> None:
    with rt.db.session() as s:
        ratings.save_card(s, followup_id=followup_id, chat_id=chat_id, message_id=message_id)


def followup_action(rt: Runtime, *, person: Person, followup_id: int, op: str) -> FollowUpResult:
    """A command-room button on the follow-up card: contacted, or one of the outcomes."""
    outcome = FOLLOWUP_OPS.get(op)
    if outcome is None:
        raise NotYours()
    now = rt.clock.now()
    with rt.db.session() as s:
        row = ratings.get_followup(s, followup_id)
        case = cases.get_case(s, row.case_id) if row else None
        if row is None or case is None:
            raise NotYours()
        who = lifecycle.check(rt, s, person, case, "follow_up")
        if row.outcome is not None:
            raise FollowUpDone(code=case.code)
        if outcome == CONTACTED:
            if not ratings.mark_contacted(s, followup_id=followup_id, user_id=person.user_id, now=now):
                raise AlreadyContacted(code=case.code)
            audit.record(
                s,
                action="followup.contacted",
                subject_type="followup",
                subject_id=followup_id,
                actor_user_id=person.user_id,
                data={"case_id": case.id},
                at=now,
            )
        else:
            if outcome == REOPENED:
                lifecycle.authorize("reopen", who, case)
            if not ratings.finish_followup(
                s, followup_id=followup_id, outcome=outcome, user_id=person.user_id, now=now
            ):
                raise FollowUpDone(code=case.code)
            audit.record(
                s,
                action="followup.done",
                subject_type="followup",
                subject_id=followup_id,
                actor_user_id=person.user_id,
                data={"case_id": case.id, "outcome": outcome},
                at=now,
            )
            if outcome == REOPENED:
                _reopen(rt, s, case, person, who, row, now)
        s.refresh(row)
        _queue_card(s, row, case, now)
        return FollowUpResult(followup_id, case.code, outcome)


def _reopen(
    rt: Runtime, s: Session, case: Case, person: Person, who: frozenset[str], row: FollowUp, now: datetime
) -> None:
    """CLOSED → REOPENED: back to its team (and owner) with a fresh time limit."""
    lifecycle.transition(
        rt, s, case, "reopen", person, now=now, who=who, data={"followup": row.id},
        values={"closed_at": None, "resolved_at": None},
    )  # fmt: skip
    ratings.clear_reminders(s, case.id)  # type: ignore[arg-type]
    owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None
    if owner is not None and owner.can_message:
        notify.text_to_user(
            s, telegram_id=owner.telegram_id, key="rate.owner_reopened", now=now, case_id=case.id, code=case.code
        )
    else:
        team_chat = index.unit_group(rt, s, case.unit_id)
        if team_chat is not None:
            notify.text_to_user(
                s, telegram_id=team_chat, key="rate.team_reopened", now=now, case_id=case.id, code=case.code
            )
    rating = ratings.get_rating(s, row.rating_id)
    resident = people.get_user(s, rating.user_id) if rating else None
    if resident is not None and resident.can_message:
        notify.text_to_user(
            s, telegram_id=resident.telegram_id, key="rate.resident_reopened", now=now, case_id=case.id, code=case.code
        )


# --- numbers ----------------------------------------------------------------------------


def stats(
    rt: Runtime, *, street_code: str | None = None, unit_code: str | None = None, since: datetime, until: datetime
) -> Stats:
    """Requests sent, ratings received (by level), response and satisfaction rates and
    follow-ups by outcome, for a street, a team, or everything (neither given)."""
    with rt.db.read() as s:
        street_ids, unit_ids = _filters(s, street_code, unit_code)
        sent, responded = ratings.count_asked(s, since=since, until=until, street_ids=street_ids, unit_ids=unit_ids)
        by_level = ratings.levels_between(s, since=since, until=until, street_ids=street_ids, unit_ids=unit_ids)
        followups = ratings.followup_outcomes(
            s, since=since, until=until, now=rt.clock.now(), street_ids=street_ids, unit_ids=unit_ids
        )
    return Stats(sent, responded, by_level, followups)


def _filters(s: Session, street_code: str | None, unit_code: str | None) -> tuple[list[int] | None, list[int] | None]:
    street_ids: list[int] | None = None
    unit_ids: list[int] | None = None
    if street_code is not None:
        street = orgs.street_by_code(s, street_code)
        if street is None:
            raise UnknownScope(code=street_code)
        street_ids = [street.id]  # type: ignore[list-item]
    if unit_code is not None:
        unit = orgs.unit_by_code(s, unit_code.upper())
        if unit is None:
            raise UnknownScope(code=unit_code)
        if unit.kind == UnitKind.COMMAND_ROOM:  # the command room answers for its whole street
            street_ids = [unit.street_id] if unit.street_id else []
        else:
            unit_ids = [unit.id]  # type: ignore[list-item]
    return street_ids, unit_ids


# --- what staff see on /case ------------------------------------------------------------


def case_ratings_for_staff(rt: Runtime, case_id: int) -> list[StaffRating]:
    """Every rating of a case with its comment and follow-up, for staff (never residents)."""
    with rt.db.read() as s:
        return ratings_for_staff_in(s, rt, case_id)


def ratings_for_staff_in(s: Session, rt: Runtime, case_id: int) -> list[StaffRating]:
    """:func:`case_ratings_for_staff` in the caller's unit of work."""
    now = rt.clock.now()
    out = []
    followups = {f.rating_id: f for f in ratings.followups_of_case(s, case_id)}
    rows = ratings.ratings_of_case(s, case_id)
    users = people.users_by_id(s, (r.user_id for r in rows))
    for r in rows:
        user = users.get(r.user_id)
        f = followups.get(pk(r))
        outcome = None
        if f is not None:
            outcome = f.outcome or ("overdue" if f.due_at <= now else "open")
        out.append(
            StaffRating(
                level=r.level,
                at=r.created_at,
                resident=user.display_name if user else "?",
                comment=r.comment,
                voice_seconds=r.comment_voice_seconds if r.comment_voice_file_id else None,
                followup_outcome=outcome,
                followup_due=f.due_at if f else None,
            )
        )
    return out


# --- asking again, from /my ("去评价") ----------------------------------------------------------


def unrated_closed(rt: Runtime, *, user_id: int) -> dict[str, int]:
    """Case code -> rating request, for the closed cases this person has not rated yet."""
    with rt.db.read() as s:
        return dict(ratings.unrated_closed_of(s, user_id))


def ask_again(rt: Runtime, *, person: Person, request_id: int) -> bool:
    """Send the rating question again (the person tapped 去评价); False when it is not theirs
    or no longer open to a rating."""
    now = rt.clock.now()
    with rt.db.session() as s:
        request = ratings.get_request(s, request_id)
        if request is None or request.user_id != person.user_id or request.rated_at is not None:
            return False
        case = cases.get_case(s, request.case_id)
        if case is None or case.state != CaseState.CLOSED:
            return False
        outbox.enqueue(
            s, chat_id=person.telegram_id, kind=KIND_REQUEST, case_id=case.id, payload={"request": request.id}, now=now
        )
        return True
