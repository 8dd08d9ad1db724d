"""Rows moved by Core statements on the hot paths (storage/one_per_user.py, storage/db.py
CoreInsert, storage/people.py chats_of): what they hold within a unit of work, what a
rollback makes them forget, and the statements they cost. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from storage import cases, casework, drafts, people
from storage.db import Database
from storage.models import Case, CaseState, ReportDraft, User, pk
from tests.flows import statements_of

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """tests/flows.statements_of without SQLite's BEGIN IMMEDIATE (PostgreSQL's BEGIN is no
    statement of ours), so both databases count alike."""
    with statements_of(db) as seen:
        kept: list[str] = []
        yield kept
    kept.extend(sql for sql in seen if not sql.startswith("BEGIN"))


def _user(db: Database, telegram_id: int, *, can_message: bool = True) -> int:
    with db.session() as s:
        user = User(telegram_id=telegram_id, first_name="居民", language="zh_CN", can_message=can_message)
        s.add(user)
        s.flush()
        return pk(user)


def test_a_draft_written_then_read_again_costs_no_statement_and_the_database_has_it(db: Database) -> None:
    user_id = _user(db, 99001)
    with db.session() as s:
        first = drafts.create(s, user_id=user_id, step="location", data={"token": 7}, now=NOW)
        with counted(db) as statements:
            saved = drafts.save(s, first, step="photos", data={"token": 7, "n": 1}, now=NOW)
            again = drafts.by_id(s, first.id)
        assert len(statements) == 1  # the UPDATE; the read by id is the row just written
        assert again == saved and saved.version == 2 and first.version == 1  # what was read stays as read
    with db.session() as s:
        (row,) = s.exec(select(ReportDraft).where(col(ReportDraft.user_id) == user_id)).all()
        assert (row.step, row.data, row.version) == ("photos", {"token": 7, "n": 1}, 2)


def test_a_new_draft_replaces_the_old_one(db: Database) -> None:
    user_id = _user(db, 99002)
    with db.session() as s:
        old = drafts.create(s, user_id=user_id, step="location", data={"token": 1}, now=NOW)
        new = drafts.create(s, user_id=user_id, step="location", data={"token": 2}, now=NOW)
        assert drafts.by_id(s, old.id) is None or old.id == new.id  # SQLite may reuse the id
        assert drafts.get(s, user_id) == new
    with db.session() as s:
        assert [r.data for r in s.exec(select(ReportDraft).where(col(ReportDraft.user_id) == user_id))] == [
            {"token": 2}
        ]


def test_a_rollback_forgets_the_rows_its_unit_of_work_held(db: Database) -> None:
    user_id = _user(db, 99003)
    with db.session() as s:
        row = drafts.create(s, user_id=user_id, step="location", data={"token": 3}, now=NOW)
    with Session(db.engine) as s:
        s.begin()
        held = drafts.get(s, user_id, for_update=True)
        assert held is not None
        drafts.save(s, held, step="photos", data={"token": 3, "lost": True}, now=NOW)
        s.rollback()
        with counted(db) as statements:
            again = drafts.by_id(s, row.id)
        s.commit()
    assert statements  # read again, not the held row the rollback undid
    assert again is not None and again.step == "location" and "lost" not in again.data


def test_a_pending_input_is_saved_and_dropped(db: Database) -> None:
    user_id = _user(db, 99004)
    with db.session() as s:
        case_id = pk(_case(s, user_id))
        pending = casework.start_pending(s, user_id=user_id, action="note", case_id=case_id, data={}, now=NOW)
        changed = casework.save_pending(s, pending, data={"text": "已到现场"}, now=NOW)
        assert changed.data == {"text": "已到现场"} and pending.data == {}
    with db.session() as s:
        assert casework.pending_of(s, user_id) == changed
        casework.drop_pending(s, user_id)
        assert casework.pending_of(s, user_id) is None


def _case(s: Session, reporter_user_id: int) -> Case:
    return cases.add_case(
        s,
        code=f"ZZ-{reporter_user_id}",
        state=CaseState.REPORTED,
        source="resident",
        reporter_user_id=reporter_user_id,
        description="测试",
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_case_inserted_by_core_is_held_as_if_read_and_its_changes_are_written(db: Database) -> None:
    user_id = _user(db, 99005)
    with db.session() as s:
        case = _case(s, user_id)
        case_id = pk(case)
        with counted(db) as statements:
            held = cases.get_case(s, case_id)
        assert statements == [] and held is case  # the session holds it: no read
        assert held is not None
        held.description = "改过的描述"
        held.state = CaseState.DISPATCHED
        assert cases.change_state(s, held)  # the compare-and-set sees what changed since the insert
    with db.session() as s:
        stored = cases.get_case(s, case_id)
        assert stored is not None
        assert (stored.state, stored.description, stored.version) == (CaseState.DISPATCHED, "改过的描述", 2)


def test_the_chats_of_those_told_are_read_in_one_statement_once_per_unit_of_work(db: Database) -> None:
    reachable, blocked = _user(db, 99006), _user(db, 99007, can_message=False)
    with db.session() as s:
        with counted(db) as statements:
            chats = people.chats_of(s, (reachable, blocked, None, 424242))
            again = people.chat_of(s, reachable)
        assert len(statements) == 1
        assert chats == {reachable: 99006, blocked: None, 424242: None} and again == 99006
    with db.session() as s:
        user = people.get_user(s, blocked)
        assert user is not None
        with counted(db) as statements:
            assert people.chat_of(s, blocked) is None  # a user already loaded costs no statement
        assert statements == []


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_media_go_in_one_statement(db: Database, rows: int) -> None:
    user_id = _user(db, 99010 + rows)
    with db.session() as s:
        case_id = pk(_case(s, user_id))
        media = [
            {"case_id": case_id, "stage": "report", "jpeg_path": f"p{i}.jpg", "created_at": NOW} for i in range(rows)
        ]
        with counted(db) as statements:
            cases.add_media(s, media)
        assert len(statements) == (1 if rows else 0)
    with db.read() as s:
        assert [m.jpeg_path for m in cases.media_of(s, case_id)] == [f"p{i}.jpg" for i in range(rows)]


def test_asking_marks_the_unrated_reachable_requests_and_gives_one_reminder_ever(db: Database) -> None:
    from datetime import timedelta

    from storage import ratings
    from storage.models import RatingRequest

    reachable, blocked, rated, other = (
        _user(db, 99020),
        _user(db, 99021, can_message=False),
        _user(db, 99022),
        _user(db, 99023),
    )
    later = NOW + timedelta(hours=24)
    with db.session() as s:
        case_id = pk(_case(s, reachable))
        for u in (reachable, blocked, rated, other):
            ratings.attach(s, case_id=case_id, user_id=u, origin="link", now=NOW)
        ratings.attach_residents(  # its reporter, attached already
            s, case_id=case_id, reporter_user_id=reachable, resident_reported=True, now=NOW
        )
        (rated_request,) = [r for r in s.exec(select(RatingRequest)) if r.user_id == rated]
        assert ratings.claim_rating(s, request_id=pk(rated_request), now=NOW)
    with db.session() as s:
        asked = ratings.ask(s, case_id=case_id, now=NOW, remind_at=later)
    assert sorted(user for _, user in asked) == sorted([reachable, other])  # not the blocked, not the rated
    with db.session() as s:  # its reminder went, as the reminder job marks it
        for r in s.exec(select(RatingRequest).where(col(RatingRequest.user_id) == reachable)):
            r.remind_at, r.reminded_at = None, later
            s.add(r)
    with db.session() as s:  # the case closes again (after a reopen): asked again
        again = ratings.ask(s, case_id=case_id, now=later, remind_at=later + timedelta(hours=24), user_id=reachable)
    assert [user for _, user in again] == [reachable]
    with db.read() as s:
        rows = {r.user_id: r for r in s.exec(select(RatingRequest).where(col(RatingRequest.case_id) == case_id))}
    assert (rows[reachable].asks, rows[reachable].first_asked_at, rows[reachable].asked_at) == (2, NOW, later)
    assert rows[reachable].remind_at is None  # its one reminder has gone
    assert (rows[other].asks, rows[other].remind_at) == (1, later)
    assert rows[blocked].asks == 0 and rows[rated].asks == 0
    assert len(rows) == 4  # attaching again added nobody


@pytest.mark.parametrize("resident_reported", [True, False])
def test_a_closing_attaches_its_reporter_and_the_residents_who_supported_it_in_one_statement(
    db: Database, resident_reported: bool
) -> None:
    from storage import ratings
    from storage.models import Membership, RatingRequest, SupportingReport

    reporter, resident, twice, staff, revoked, already = (_user(db, 99030 + i) for i in range(6))
    with db.session() as s:
        case = _case(s, reporter)
        case.source = "resident" if resident_reported else "patrol"
        s.add(case)
        case_id = pk(case)
        supports = [reporter, resident, twice, twice, staff, revoked, already, None]
        s.add_all(SupportingReport(case_id=case_id, reporter_user_id=u, created_at=NOW) for u in supports)
        s.add(Membership(user_id=staff, role="worker", scope_kind="grid", scope_code="G1"))
        s.add(Membership(user_id=revoked, role="worker", scope_kind="grid", scope_code="G2", active=False))
        ratings.attach(s, case_id=case_id, user_id=already, origin="link", now=NOW)
    with db.session() as s, counted(db) as statements:
        ratings.attach_residents(
            s, case_id=case_id, reporter_user_id=reporter, resident_reported=resident_reported, now=NOW
        )
    assert len(statements) == 1
    with db.session() as s:  # a second closing (after a reopen) attaches nobody again
        ratings.attach_residents(
            s, case_id=case_id, reporter_user_id=reporter, resident_reported=resident_reported, now=NOW
        )
    with db.read() as s:
        found = s.exec(select(RatingRequest).where(col(RatingRequest.case_id) == case_id)).all()
    origins = {r.user_id: r.origin for r in found}
    expected = {resident: "supporter", twice: "supporter", revoked: "supporter", already: "link"}
    if resident_reported:
        expected[reporter] = "reporter"  # a grid worker's own report is not theirs to rate
    assert origins == expected  # not the staff member; the reporter not as a supporter; each once
    assert all(r.asks == 0 and r.created_at is not None for r in found)
