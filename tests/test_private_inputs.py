"""What a person owes the bot in private chat (bot/awaiting.py), and the words and photos owed
to a case action when an album's photos arrive at the same moment, each handled in its own
thread and transaction: every one must land (on PostgreSQL a read-modify-write without a row
lock kept only some of them)."""

from __future__ import annotations

import threading

from sqlmodel import select

from bot.awaiting import NOTHING, awaiting
from bot.cases import casework
from bot.intake import drafts
from bot.intake.submit import PhotoIn, ReportIn, submit_report
from bot.people.roles import MembershipView, Person
from bot.runtime import Runtime
from storage import casework as casework_store
from storage.db import Database
from storage.models import Category, Grid, PendingInput, User, pk
from tests.flows import grid_centre, statements_of

GRID = "33010200100101"
ALBUM = 8


def _case_and_worker(rt: Runtime, db: Database) -> tuple[int, int]:
    lat, lon = grid_centre(db, GRID)
    with db.session() as s:
        category_id = pk(s.exec(select(Category).where(Category.code == "CLEAN-EXPOSED-GARBAGE")).one())
        grid_id = pk(s.exec(select(Grid).where(Grid.code == GRID)).one())
        user = User(telegram_id=777001, first_name="网格员")
        s.add(user)
        s.flush()
        user_id = pk(user)
    done = submit_report(
        rt,
        ReportIn(
            reporter_user_id=user_id, source="patrol", latitude=lat, longitude=lon,
            grid_id=grid_id, category_id=category_id, description="井盖破损", photos=(),
        ),
    )  # fmt: skip
    return done.case_id, user_id


def test_album_photos_all_land_in_the_pending_input(rt: Runtime, db: Database) -> None:
    case_id, user_id = _case_and_worker(rt, db)
    with db.session() as s:
        casework_store.start_pending(s, user_id=user_id, action="note", case_id=case_id, data={}, now=rt.clock.now())
    start = threading.Barrier(ALBUM)
    failures: list[BaseException] = []

    def send(n: int) -> None:
        photo = PhotoIn(f"file-{n}", f"{n:064x}", f"o/{n}.jpg", f"j/{n}.jpg", f"t/{n}.jpg", 1600, 1200)
        start.wait()
        try:
            casework.add_photo(rt, user_id=user_id, photo=photo)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(ALBUM)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with db.read() as s:
        row = s.exec(select(PendingInput).where(PendingInput.user_id == user_id)).one()
        kept = sorted(p["file_id"] for p in row.data["photos"])
    assert kept == sorted(f"file-{n}" for n in range(ALBUM))


def test_what_is_owed_is_read_at_once_and_a_case_input_comes_before_the_draft(rt: Runtime, db: Database) -> None:
    case_id, user_id = _case_and_worker(rt, db)
    worker = Person(
        user_id, 777001, "网格员", "zh_CN", False, (MembershipView("worker", "grid", GRID, "网格", "grid"),)
    )
    assert awaiting(rt, worker) == NOTHING
    drafts.start(rt, user_id=user_id, source="patrol")
    with db.session() as s:
        casework_store.start_pending(s, user_id=user_id, action="note", case_id=case_id, data={}, now=rt.clock.now())
    owed = awaiting(rt, worker)
    assert owed.case_input is not None and owed.case_input.case_id == case_id
    assert owed.draft.draft is not None and owed.rating_comment is None  # staff never rate


def test_a_staff_members_command_costs_no_lookup(rt: Runtime, db: Database) -> None:
    worker = Person(1, 777002, "网格员", "zh_CN", False, (MembershipView("worker", "grid", GRID, "网格", "grid"),))
    with statements_of(db) as statements:
        assert awaiting(rt, worker, command=True) == NOTHING
    assert statements == []
