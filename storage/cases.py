"""Case queries: codes, rows, media, supporting reports, state changes by compare-and-set."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage.db import affected
from storage.models import AuditEvent, Case, CaseCard, CaseCounter, CaseMedia, CaseState, SupportingReport

# Open or waiting: not over yet (the kinds are declared with the states).
OPEN_STATES = CaseState.NOT_FINAL


def next_sequence(session: Session, *, prefix: str, day: str) -> int:
    """The next number of the day for `prefix`, atomically (upsert … returning)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(CaseCounter)
        .values(prefix=prefix, day=day, last=1)
        .on_conflict_do_update(index_elements=["prefix", "day"], set_={"last": CaseCounter.last + 1})
        .returning(col(CaseCounter.last))
    )
    return int(session.execute(stmt).scalar_one())


def add_case(session: Session, case: Case) -> Case:
    session.add(case)
    session.flush()
    return case


def get_case(session: Session, case_id: int) -> Case | None:
    return session.get(Case, case_id)


def get_case_by_code(session: Session, code: str) -> Case | None:
    return session.exec(select(Case).where(Case.code == code.strip().upper())).first()


def add_media(session: Session, media: CaseMedia) -> CaseMedia:
    session.add(media)
    return media


def media_of(session: Session, case_id: int, *, stage: str | None = None, kind: str | None = None) -> list[CaseMedia]:
    stmt = select(CaseMedia).where(CaseMedia.case_id == case_id)
    if stage is not None:
        stmt = stmt.where(CaseMedia.stage == stage)
    if kind is not None:
        stmt = stmt.where(CaseMedia.kind == kind)
    return list(session.exec(stmt.order_by(col(CaseMedia.id))))


def keep_jpeg_file_ids(session: Session, *, case_id: int, uploaded: dict[str, str]) -> None:
    """Record the file_id Telegram gave each uploaded JPEG (by path) on the case's media."""
    for path, file_id in uploaded.items():
        session.execute(
            update(CaseMedia)
            .where(col(CaseMedia.case_id) == case_id, col(CaseMedia.jpeg_path) == path)
            .values(jpeg_file_id=file_id)
        )


def add_support(session: Session, support: SupportingReport) -> SupportingReport:
    session.add(support)
    session.flush()
    return support


def support_count(session: Session, case_id: int) -> int:
    stmt = select(func.count()).select_from(SupportingReport).where(SupportingReport.case_id == case_id)
    return int(session.exec(stmt).one())


def open_cases_in_box(
    session: Session,
    *,
    category_id: int,
    min_lat: float,
    max_lat: float,
    min_lon: float,
    max_lon: float,
    since: datetime,
    limit: int = 20,
) -> list[Case]:
    stmt = (
        select(Case)
        .where(
            Case.category_id == category_id,
            col(Case.state).in_(OPEN_STATES),
            col(Case.latitude).between(min_lat, max_lat),
            col(Case.longitude).between(min_lon, max_lon),
            col(Case.created_at) >= since,
        )
        .order_by(col(Case.created_at).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))


def cases_of_reporter(session: Session, user_id: int, *, limit: int = 10, offset: int = 0) -> list[Case]:
    stmt = (
        select(Case)
        .where(Case.reporter_user_id == user_id)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(session.exec(stmt))


def count_reports_since(session: Session, user_id: int, since: datetime) -> int:
    cases = (
        select(func.count()).select_from(Case).where(Case.reporter_user_id == user_id, col(Case.created_at) >= since)
    )
    supports = (
        select(func.count())
        .select_from(SupportingReport)
        .where(
            SupportingReport.reporter_user_id == user_id,
            SupportingReport.origin == "joined",
            col(SupportingReport.created_at) >= since,
        )
    )
    # One statement for both counts: /report asks this on every new report.
    return int(session.execute(select(cases.scalar_subquery() + supports.scalar_subquery())).scalar_one())


def change_state(session: Session, *, case_id: int, from_state: str, version: int, values: dict[str, Any]) -> bool:
    """Compare-and-set: move the case only if nobody moved it first. True if we won."""
    result = session.execute(
        update(Case)
        .where(col(Case.id) == case_id, col(Case.state) == from_state, col(Case.version) == version)
        .values(version=version + 1, **values)
    )
    return affected(result) == 1


def cards_of(session: Session, case_id: int) -> list[CaseCard]:
    return list(session.exec(select(CaseCard).where(CaseCard.case_id == case_id).order_by(col(CaseCard.id))))


def save_card(
    session: Session, *, case_id: int, chat_id: int, message_id: int, purpose: str, is_photo: bool, now: datetime
) -> None:
    """Remember where a case's card now is (one read; no write when nothing changed)."""
    existing = find_card(session, case_id=case_id, chat_id=chat_id, purpose=purpose)
    if existing is None:
        session.add(
            CaseCard(
                case_id=case_id,
                chat_id=chat_id,
                message_id=message_id,
                purpose=purpose,
                is_photo=is_photo,
                created_at=now,
            )
        )
    else:
        existing.message_id = message_id
        existing.is_photo = is_photo
        session.add(existing)


def find_card(session: Session, *, case_id: int, chat_id: int, purpose: str) -> CaseCard | None:
    return session.exec(
        select(CaseCard).where(CaseCard.case_id == case_id, CaseCard.chat_id == chat_id, CaseCard.purpose == purpose)
    ).first()


def recent_categories_of(session: Session, user_id: int, limit: int = 10) -> list[int]:
    stmt = (
        select(Case.category_id)
        .where(Case.reporter_user_id == user_id, col(Case.category_id).is_not(None))
        .order_by(col(Case.created_at).desc())
        .limit(limit)
    )
    return [int(c) for c in session.exec(stmt) if c is not None]


def last_case_event(session: Session, *, case_id: int, actions: tuple[str, ...]) -> AuditEvent | None:
    """The case's most recent audit event among `actions` (who dispatched it, who rejected it…)."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.case_id == case_id, col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def supporting_reporters(session: Session, case_id: int) -> list[int]:
    stmt = select(SupportingReport.reporter_user_id).where(
        SupportingReport.case_id == case_id, col(SupportingReport.reporter_user_id).is_not(None)
    )
    return sorted({int(u) for u in session.exec(stmt) if u is not None})


def cards_of_cases(session: Session, case_ids: Collection[int]) -> list[CaseCard]:
    """Every card posted for these cases (the outbox sender reads a claim's at once)."""
    if not case_ids:
        return []
    return list(session.exec(select(CaseCard).where(col(CaseCard.case_id).in_(sorted(case_ids)))))
