"""API keys, tickets from outside (Open311, the 12345 hotline) and the Open311 queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.models import ApiKey, Case, CaseMedia, ExternalTicket


def add_api_key(session: Session, *, name: str, key_hash: str, now: datetime) -> ApiKey:
    row = ApiKey(name=name, key_hash=key_hash, created_at=now)
    session.add(row)
    session.flush()
    return row


def api_key_named(session: Session, name: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.name == name)).first()


def api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash, col(ApiKey.revoked_at).is_(None))).first()


def add_ticket(session: Session, ticket: ExternalTicket) -> ExternalTicket:
    session.add(ticket)
    session.flush()
    return ticket


def ticket_by_number(session: Session, *, api_key_id: int, ticket_no: str) -> ExternalTicket | None:
    return session.exec(
        select(ExternalTicket).where(ExternalTicket.api_key_id == api_key_id, ExternalTicket.ticket_no == ticket_no)
    ).first()


def ticket_of_case(session: Session, case_id: int) -> ExternalTicket | None:
    return session.exec(select(ExternalTicket).where(ExternalTicket.case_id == case_id)).first()


def case_of_token(session: Session, token: str) -> Case | None:
    return session.exec(
        select(Case)
        .join(ExternalTicket, col(ExternalTicket.case_id) == col(Case.id))
        .where(ExternalTicket.token == token)
    ).first()


REQUEST_COLUMNS = (
    col(Case.id),
    col(Case.code),
    col(Case.state),
    col(Case.category_id),
    col(Case.unit_id),
    col(Case.description),
    col(Case.address),
    col(Case.latitude),
    col(Case.longitude),
    col(Case.created_at),
    col(Case.updated_at),
    col(Case.due_at),
    col(Case.duplicate_of_id),
)


def find_requests(
    session: Session,
    *,
    category_ids: Sequence[int],
    codes: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
    street_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    offset: int = 0,
) -> list[Any]:
    """Cases of these (public) categories, newest first: the columns a service request
    shows (rows, not ORM objects: a page of 1,000 is read many times faster), with the
    media id of each one's first report photo that has a normalized JPEG (or None)."""
    photo = (
        select(func.min(col(CaseMedia.id)))
        .where(
            col(CaseMedia.case_id) == col(Case.id),
            col(CaseMedia.kind) == "photo",
            col(CaseMedia.stage) == "report",
            col(CaseMedia.jpeg_path).is_not(None),
        )
        .scalar_subquery()
        .label("photo_id")
    )
    stmt = sa_select(*REQUEST_COLUMNS, photo).where(col(Case.category_id).in_(list(category_ids)))
    if codes is not None:
        stmt = stmt.where(col(Case.code).in_(list(codes)))
    if states is not None:
        stmt = stmt.where(col(Case.state).in_(list(states)))
    if street_id is not None:
        stmt = stmt.where(col(Case.street_id) == street_id)
    if since is not None:
        stmt = stmt.where(col(Case.created_at) >= since)
    if until is not None:
        stmt = stmt.where(col(Case.created_at) <= until)
    stmt = stmt.order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(limit).offset(offset)
    return list(session.execute(stmt))


def first_report_photos(session: Session, case_ids: Sequence[int]) -> dict[int, int]:
    """Each case's first report photo that has a normalized JPEG: case id -> media id."""
    if not case_ids:
        return {}
    rows = session.exec(
        select(CaseMedia.case_id, func.min(col(CaseMedia.id)))
        .where(
            col(CaseMedia.case_id).in_(list(case_ids)),
            col(CaseMedia.kind) == "photo",
            col(CaseMedia.stage) == "report",
            col(CaseMedia.jpeg_path).is_not(None),
        )
        .group_by(col(CaseMedia.case_id))
    ).all()
    return {case_id: int(media_id) for case_id, media_id in rows if media_id is not None}


def media(session: Session, media_id: int) -> CaseMedia | None:
    return session.get(CaseMedia, media_id)


def codes_of(session: Session, case_ids: Sequence[int]) -> dict[int, str]:
    if not case_ids:
        return {}
    rows = session.exec(select(Case.id, Case.code).where(col(Case.id).in_(list(case_ids))))
    return {int(i): c for i, c in rows if i is not None}
