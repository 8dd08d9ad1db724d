"""Ratings (好差评), rating links, the residents to ask, and bad ratings' follow-ups (回访).

Every claim is a compare-and-set (an UPDATE that says whether it won), so a double press,
two processes sweeping reminders, or two dispatchers pressing at once change a row once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, case, cast, exists, func, literal, null, union_all, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.db import Loads, affected, autoflushed, plain_rows, select_of
from storage.direct import Direct
from storage.models import Case, FollowUp, Membership, Rating, RatingLink, RatingRequest, SupportingReport, User
from storage.upsert import insert_on_conflict

# --- links ------------------------------------------------------------------------------


def add_link(session: Session, link: RatingLink) -> RatingLink:
    session.add(link)
    session.flush()
    return link


def link_by_token(session: Session, token: str) -> RatingLink | None:
    return session.exec(select(RatingLink).where(RatingLink.token == token)).first()


def use_link(session: Session, *, link_id: int, user_id: int, now: datetime) -> bool:
    """The first resident to open a link takes it. True if this one did."""
    result = session.execute(
        update(RatingLink)
        .where(col(RatingLink.id) == link_id, col(RatingLink.used_at).is_(None))
        .values(used_at=now, used_by_user_id=user_id)
    )
    return affected(result) == 1


# --- residents to ask -------------------------------------------------------------------


# Closing a case asks these two for each resident concerned: built once.
_REQUEST_FOR = select(RatingRequest).where(
    col(RatingRequest.case_id) == bindparam("case_id"), col(RatingRequest.user_id) == bindparam("user_id")
)
_REQUESTS = RatingRequest.__table__  # type: ignore[attr-defined]


# A case's closing writes these as plain rows (Core statements built once): the ORM's
# insert-returning, read and flush of the same rows cost it five times as much.
_USERS = User.__table__  # type: ignore[attr-defined]
_ASKING = (
    _REQUESTS.update()
    .where(
        _REQUESTS.c.case_id == bindparam("closed_case"),
        _REQUESTS.c.rated_at.is_(None),
        _REQUESTS.c.user_id.in_(select(_USERS.c.id).where(_USERS.c.can_message.is_(True))),
    )
    .values(
        first_asked_at=func.coalesce(_REQUESTS.c.first_asked_at, bindparam("now")),
        asked_at=bindparam("now"),
        asks=_REQUESTS.c.asks + 1,
        # One reminder per resident per case, ever: a request asked again after a reopen gets none.
        remind_at=case((_REQUESTS.c.reminded_at.is_(None), bindparam("remind")), else_=None),
    )
    .returning(_REQUESTS.c.id, _REQUESTS.c.user_id)
)
_ASK = Direct(_ASKING)
_ASK_ONE = Direct(_ASKING.where(_REQUESTS.c.user_id == bindparam("resident")))


_SUPPORTS = SupportingReport.__table__  # type: ignore[attr-defined]
_MEMBERS = Membership.__table__  # type: ignore[attr-defined]


@functools.cache
def _attach_residents(dialect: str) -> Direct:
    closed, now = bindparam("closed_case", type_=Integer), bindparam("now", type_=_REQUESTS.c.created_at.type)
    resident_reporter, reporter = bindparam("resident_reporter", type_=Integer), bindparam("reporter", type_=Integer)
    no_link, no_asks = cast(null(), Integer), literal(0, Integer)
    supporter = _SUPPORTS.c.reporter_user_id
    residents = union_all(
        sa_select(closed, resident_reporter, literal("reporter"), no_link, now, no_asks).where(
            resident_reporter.is_not(None)
        ),
        # SQLite reads an INSERT … SELECT … ON CONFLICT right only if its last SELECT has a WHERE.
        sa_select(closed, supporter, literal("supporter"), no_link, now, no_asks)
        .distinct()
        .where(
            _SUPPORTS.c.case_id == closed,
            supporter.is_not(None),
            supporter != func.coalesce(reporter, 0),
            ~exists().where(_MEMBERS.c.user_id == supporter, _MEMBERS.c.active.is_(True)),
        ),
    )
    columns = ["case_id", "user_id", "origin", "link_id", "created_at", "asks"]
    return Direct(
        insert_on_conflict(dialect, _REQUESTS)
        .from_select(columns, residents)
        .on_conflict_do_nothing(index_elements=["case_id", "user_id"])
    )


def request_for(session: Session, *, case_id: int, user_id: int) -> RatingRequest | None:
    return session.execute(_REQUEST_FOR, {"case_id": case_id, "user_id": user_id}).scalars().first()


@dataclass(frozen=True)
class RequestRow:
    """What a press on a rating request needs of it."""

    id: int
    case_id: int
    user_id: int
    rated_at: datetime | None


_REQUEST = Direct(select_of(RatingRequest, RequestRow).where(_REQUESTS.c.id == bindparam("request_id")))


def get_request(session: Session, request_id: int) -> RequestRow | None:
    found = plain_rows(session, _REQUEST, {"request_id": request_id}, RequestRow)
    return found[0] if found else None


def attach(
    session: Session, *, case_id: int, user_id: int, origin: str, now: datetime, link_id: int | None = None
) -> tuple[RatingRequest, bool]:
    """The resident's request for this case, made if missing. (row, created). Inserted first:
    at a case's closing, when most are made, that is the only statement."""
    made = session.scalars(
        insert_on_conflict(session, RatingRequest)
        .values(case_id=case_id, user_id=user_id, origin=origin, link_id=link_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["case_id", "user_id"])
        .returning(RatingRequest)
    ).first()
    if made is None:  # attached before (an earlier closing, a link), or a moment ago by a second link
        found = request_for(session, case_id=case_id, user_id=user_id)
        assert found is not None
        return found, False
    return made, True


def attach_residents(
    session: Session, *, case_id: int, reporter_user_id: int | None, resident_reported: bool, now: datetime
) -> None:
    """Attach the residents a closing concerns, but those attached already, in one statement
    however many supported the case: its reporter if a resident reported it, and whoever
    supported it with a report of their own and holds no role (staff are not asked to rate
    their own service)."""
    params = {
        "closed_case": case_id,
        "now": now,
        "reporter": reporter_user_id,
        "resident_reporter": reporter_user_id if resident_reported else None,
    }
    _attach_residents(session.get_bind().dialect.name)(session, params)


def ask(
    session: Session, *, case_id: int, now: datetime, remind_at: datetime, user_id: int | None = None
) -> list[tuple[int, int]]:
    """Mark as asked now every request of the case not rated yet whose resident can be
    messaged (or that of `user_id` alone), with its one reminder at `remind_at` unless it
    has had it: (request id, user id) of each, in one statement."""
    params = {"closed_case": case_id, "now": now, "remind": remind_at}
    stmt = _ASK if user_id is None else _ASK_ONE
    found = stmt(session, params if user_id is None else {**params, "resident": user_id})
    return sorted((int(request_id), int(resident)) for request_id, resident in found)


def clear_reminders(session: Session, case_id: int) -> None:
    session.execute(
        update(RatingRequest)
        .where(col(RatingRequest.case_id) == case_id, col(RatingRequest.remind_at).is_not(None))
        .values(remind_at=None)
    )


def due_reminders(session: Session, *, now: datetime, limit: int) -> list[RatingRequest]:
    """Requests whose reminder is due (the remind_at index), locked where the database can."""
    stmt = (
        select(RatingRequest)
        .where(col(RatingRequest.remind_at) <= now, col(RatingRequest.rated_at).is_(None))
        .order_by(col(RatingRequest.remind_at), col(RatingRequest.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(stmt))


def claim_reminder(session: Session, *, request_id: int, now: datetime) -> bool:
    """Take the one reminder of a request, if it is still due and nobody took it first."""
    result = session.execute(
        update(RatingRequest)
        .where(
            col(RatingRequest.id) == request_id,
            col(RatingRequest.remind_at).is_not(None),
            col(RatingRequest.remind_at) <= now,
            col(RatingRequest.rated_at).is_(None),
        )
        .values(remind_at=None, reminded_at=now)
    )
    return affected(result) == 1


_CLAIM_RATING = Direct(
    _REQUESTS.update()
    .where(_REQUESTS.c.id == bindparam("request_id"), _REQUESTS.c.rated_at.is_(None))
    .values(rated_at=bindparam("now"), remind_at=None)
)


def claim_rating(session: Session, *, request_id: int, now: datetime) -> bool:
    """One rating per resident per case: the first press wins."""
    return _CLAIM_RATING(session, {"request_id": request_id, "now": now}).rowcount == 1


# --- ratings ----------------------------------------------------------------------------


_RATINGS = Rating.__table__  # type: ignore[attr-defined]
_ADD_RATING = Direct(_RATINGS.insert().returning(_RATINGS.c.id))


def add_rating(
    session: Session,
    *,
    case_id: int,
    user_id: int,
    request_id: int,
    level: int,
    comment_until: datetime,
    prompt_message_id: int | None,
    now: datetime,
) -> int:
    """A resident's rating, its comment window open until `comment_until`: its id."""
    values = {
        "case_id": case_id,
        "user_id": user_id,
        "request_id": request_id,
        "level": level,
        "comment_truncated": False,
        "comment_until": comment_until,
        "prompt_message_id": prompt_message_id,
        "created_at": now,
    }
    return int(_ADD_RATING(session, values).scalar_one())


def get_rating(session: Session, rating_id: int) -> Rating | None:
    return session.get(Rating, rating_id)


_RATINGS_OF_CASE = Loads(Rating, col(Rating.case_id) == bindparam("case_id"), order_by=[col(Rating.id)])


def ratings_of_case(session: Session, case_id: int) -> list[Rating]:
    return _RATINGS_OF_CASE.all(session, {"case_id": case_id})


# The rating whose comment window is open; its id alone is asked on a resident's every
# private message (on the session's connection: no ORM object for an id).
_OPEN_COMMENT = (
    select(Rating)
    .where(
        col(Rating.user_id) == bindparam("user_id"),
        col(Rating.comment_until).is_not(None),
        col(Rating.comment_until) > bindparam("now"),
    )
    .order_by(col(Rating.id).desc())
    .limit(1)
)


_OPEN_COMMENT_ID = Direct(_OPEN_COMMENT.with_only_columns(col(Rating.id)))


_OPEN_WINDOWS = Direct(
    select(_RATINGS.c.user_id, func.max(_RATINGS.c.comment_until))
    .where(_RATINGS.c.comment_until > bindparam("now"))
    .group_by(_RATINGS.c.user_id)
)


def open_comment_windows(session: Session, *, now: datetime) -> dict[int, datetime]:
    """Every resident with a comment window open now, and until when."""
    return {int(user_id): until for user_id, until in _OPEN_WINDOWS(session, {"now": now})}


def open_comment_id(session: Session, *, user_id: int, now: datetime) -> int | None:
    """:func:`open_comment`'s id alone."""
    found = _OPEN_COMMENT_ID(session, {"user_id": user_id, "now": now}).scalar()
    return int(found) if found is not None else None


def open_comment(session: Session, *, user_id: int, now: datetime) -> Rating | None:
    """The rating this resident may still add a comment to, if any (the latest)."""
    return session.execute(_OPEN_COMMENT, {"user_id": user_id, "now": now}).scalars().first()


_OPEN_WINDOW = (_RATINGS.c.comment_until.is_not(None), _RATINGS.c.comment_until > bindparam("now"))
_CLOSE_COMMENT = Direct(_RATINGS.update().where(_RATINGS.c.id == bindparam("rating_id"), *_OPEN_WINDOW))
_CLOSE_COMMENTS_OF = Direct(
    _RATINGS.update()
    .where(_RATINGS.c.user_id == bindparam("resident"), _RATINGS.c.comment_until.is_not(None))
    .values(comment_until=None)
)


def close_comment(session: Session, *, rating_id: int, now: datetime, values: dict[str, Any] | None = None) -> bool:
    """Close the comment window (saving the comment in `values`), if it is still open."""
    params = {"rating_id": rating_id, "now": now, "comment_until": None, **(values or {})}
    return _CLOSE_COMMENT(session, params).rowcount == 1


def close_comments_of(session: Session, *, user_id: int) -> int:
    return _CLOSE_COMMENTS_OF(session, {"resident": user_id}).rowcount


# --- follow-ups -------------------------------------------------------------------------


def add_followup(session: Session, row: FollowUp) -> FollowUp:
    session.add(row)
    session.flush()
    return row


def get_followup(session: Session, followup_id: int) -> FollowUp | None:
    return session.get(FollowUp, followup_id)


def followup_of_rating(session: Session, rating_id: int) -> FollowUp | None:
    return session.exec(select(FollowUp).where(FollowUp.rating_id == rating_id)).first()


_FOLLOWUPS_OF_CASE = Loads(FollowUp, col(FollowUp.case_id) == bindparam("case_id"), order_by=[col(FollowUp.id)])


def followups_of_case(session: Session, case_id: int) -> list[FollowUp]:
    """A case's follow-ups (staff's /case reads them: built once)."""
    return _FOLLOWUPS_OF_CASE.all(session, {"case_id": case_id})


def mark_contacted(session: Session, *, followup_id: int, user_id: int, now: datetime) -> bool:
    result = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == followup_id, col(FollowUp.contacted_at).is_(None), col(FollowUp.outcome).is_(None))
        .values(contacted_at=now, contacted_by=user_id)
    )
    return affected(result) == 1


def finish_followup(session: Session, *, followup_id: int, outcome: str, user_id: int, now: datetime) -> bool:
    result = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == followup_id, col(FollowUp.outcome).is_(None))
        .values(outcome=outcome, done_at=now, done_by=user_id, next_reminder_at=None)
    )
    return affected(result) == 1


def save_card(session: Session, *, followup_id: int, chat_id: int, message_id: int) -> None:
    session.execute(
        update(FollowUp).where(col(FollowUp.id) == followup_id).values(card_chat_id=chat_id, card_message_id=message_id)
    )


# --- numbers ----------------------------------------------------------------------------


def _scoped(stmt, case_column, street_ids: Sequence[int] | None, unit_ids: Sequence[int] | None):
    if street_ids is None and unit_ids is None:
        return stmt
    stmt = stmt.join(Case, col(Case.id) == case_column)
    if street_ids is not None:
        stmt = stmt.where(col(Case.street_id).in_(street_ids))
    if unit_ids is not None:
        stmt = stmt.where(col(Case.unit_id).in_(unit_ids))
    return stmt


def count_asked(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    street_ids: Sequence[int] | None = None,
    unit_ids: Sequence[int] | None = None,
) -> tuple[int, int]:
    """(requests first sent in the period, how many of those have been rated)."""
    base = (
        select(func.count())
        .select_from(RatingRequest)
        .where(col(RatingRequest.first_asked_at) >= since, col(RatingRequest.first_asked_at) < until)
    )
    sent = session.exec(_scoped(base, RatingRequest.case_id, street_ids, unit_ids)).one()
    rated = session.exec(
        _scoped(base.where(col(RatingRequest.rated_at).is_not(None)), RatingRequest.case_id, street_ids, unit_ids)
    ).one()
    return int(sent), int(rated)


def levels_between(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    street_ids: Sequence[int] | None = None,
    unit_ids: Sequence[int] | None = None,
) -> dict[int, int]:
    """Ratings received in the period, by level."""
    stmt = (
        select(Rating.level, func.count())
        .select_from(Rating)
        .where(col(Rating.created_at) >= since, col(Rating.created_at) < until)
    )
    stmt = _scoped(stmt, Rating.case_id, street_ids, unit_ids).group_by(col(Rating.level))
    return {int(level): int(n) for level, n in session.exec(stmt)}


def followup_outcomes(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    street_ids: Sequence[int] | None = None,
    unit_ids: Sequence[int] | None = None,
) -> dict[str, int]:
    """Follow-ups opened in the period, by outcome ("open" and "overdue" for those not done)."""
    stmt = (
        select(FollowUp.outcome, FollowUp.due_at)
        .select_from(FollowUp)
        .where(col(FollowUp.created_at) >= since, col(FollowUp.created_at) < until)
    )
    out: dict[str, int] = {}
    for outcome, due_at in session.exec(_scoped(stmt, FollowUp.case_id, street_ids, unit_ids)):
        key = outcome or ("overdue" if due_at is not None and due_at <= now else "open")
        out[key] = out.get(key, 0) + 1
    return out


_UNRATED_CLOSED = Direct(  # /my and the rating conversation: built once
    select(Case.code, RatingRequest.id)
    .join(Case, col(Case.id) == col(RatingRequest.case_id))
    .where(
        col(RatingRequest.user_id) == bindparam("user_id"),
        col(RatingRequest.rated_at).is_(None),
        col(RatingRequest.first_asked_at).is_not(None),
        col(Case.state) == "closed",
    )
)


def unrated_closed_of(session: Session, user_id: int) -> list[tuple[str, int]]:
    """(case code, request id) of the closed cases this person was asked to rate and did not."""
    found = _UNRATED_CLOSED(autoflushed(session), {"user_id": user_id})
    return [(str(code), int(request_id or 0)) for code, request_id in found]
