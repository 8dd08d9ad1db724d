"""Statements run straight on the driver (storage/direct.py) and the model objects made from
their rows (storage/db.py AsLoaded, Loads, ById, CoreInsert): the same answers as SQLAlchemy
gives for the same statement, every listener sees them, a driver's error is SQLAlchemy's
exception, and a statement that cannot be run this way says so when first run. Both
databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import object_session
from sqlmodel import col

from storage import cases
from storage.db import CoreInsert, Database, Loads
from storage.direct import Direct, NotDirect
from storage.models import Case, CaseState, Outbox, User, pk
from tests.flows import statements_of

NOW = datetime(2026, 12, 4, 9, 0, 0, 123456, tzinfo=UTC)
_USERS = User.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


def _new_case(db: Database, code: str, **values: object) -> int:
    with db.session() as s:
        return pk(
            cases.add_case(
                s, code=code, description="路灯不亮", created_at=NOW, updated_at=NOW, reminders_done=[1, 2], **values
            )
        )


def test_a_select_gives_what_sqlalchemy_gives_types_converted(db: Database) -> None:
    case_id = _new_case(db, "DX-1", due_at=NOW + timedelta(hours=4), urgent=True)
    statement = select(*Case.__table__.columns).where(Case.__table__.c.id == bindparam("id"))  # type: ignore[attr-defined]
    with db.read() as s:
        mine = Direct(statement)(s, {"id": case_id})
        theirs = s.connection().execute(statement, {"id": case_id}).all()
    assert [tuple(r) for r in theirs] == mine.rows and len(mine.rows) == 1
    row = dict(zip(mine.keys, mine.rows[0], strict=True))
    assert row["due_at"] == NOW + timedelta(hours=4) and row["due_at"].tzinfo is not None  # UTC, aware
    assert row["reminders_done"] == [1, 2] and row["urgent"] is True  # JSON and booleans decoded


def test_constants_in_the_statement_are_expanded_once_and_give_what_sqlalchemy_gives(db: Database) -> None:
    """A list of constants (IN) and a literal rendered into the SQL (what SQLite's partial
    indexes need: tests/test_tasks.py checks the plans) are fixed when first compiled."""
    _new_case(db, "DX-IN-1")
    _new_case(db, "DX-IN-2", state=CaseState.CLAIMED)
    _new_case(db, "DX-IN-3", state=CaseState.CLOSED)
    open_states: Any = bindparam("open", ("reported", "claimed"), expanding=True, literal_execute=True, unique=True)
    c = Case.__table__.c  # type: ignore[attr-defined]
    statement = (
        select(c.code)
        .where(c.code.like("DX-IN-%"), c.state.in_(open_states), c.state.in_(["claimed", "closed"]))
        .order_by(c.code)
        .limit(bindparam("limit"))
    )
    direct = Direct(statement)
    with db.read() as s:
        assert direct(s, {"limit": 5}).scalars() == ["DX-IN-2"]
        assert [code for (code,) in s.connection().execute(statement, {"limit": 5})] == ["DX-IN-2"]
        assert "'reported'" in direct.compiled(s.get_bind().dialect).sql  # the literal, in the SQL
        with pytest.raises(KeyError, match="limit"):
            direct(s, {})


def test_writes_count_their_rows_and_every_listener_sees_each_statement(db: Database) -> None:
    insert = Direct(_USERS.insert().returning(_USERS.c.id))
    rename = Direct(_USERS.update().where(_USERS.c.id == bindparam("user_id")).values(first_name=bindparam("name")))
    forget = Direct(delete(User).where(col(User.id) == bindparam("user_id")))
    values = {"telegram_id": 77001, "first_name": "甲", "language": "zh_CN", "can_message": True}
    with db.session() as s, statements_of(db) as seen:
        user_id = insert(s, CoreInsert(User).values(values | {"created_at": NOW, "updated_at": NOW})).scalar_one()
        assert rename(s, {"user_id": user_id, "name": "乙"}).rowcount == 1
        assert rename(s, {"user_id": user_id + 1000, "name": "丙"}).rowcount == 0
        name = s.execute(select(_USERS.c.first_name).where(_USERS.c.id == user_id)).scalar_one()
        assert forget(s, {"user_id": user_id}).rowcount == 1
    assert name == "乙"
    ours = [sql.split()[0] for sql in seen if not sql.startswith("BEGIN")]
    assert ours == ["INSERT", "UPDATE", "UPDATE", "SELECT", "DELETE"]


def test_several_rows_go_in_one_statement(db: Database) -> None:
    add = Direct(_OUTBOX.insert())
    rows = [
        {
            "chat_id": 5000 + i,
            "kind": "text",
            "case_id": None,
            "purpose": "test",
            "payload": {"text": f"第{i}条"},
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": NOW,
            "created_at": NOW,
            "sent_at": None,
            "message_id": None,
            "error": None,
        }
        for i in range(3)
    ]
    with db.session() as s, statements_of(db) as seen:
        add.many(s, rows)
    assert len([sql for sql in seen if sql.startswith("INSERT")]) == 1
    with db.read() as s:
        found = s.execute(select(_OUTBOX.c.payload).where(_OUTBOX.c.purpose == "test").order_by(_OUTBOX.c.id))
        assert [p["text"] for (p,) in found] == ["第0条", "第1条", "第2条"]


def test_what_people_typed_is_cleaned_on_its_way_in_as_for_any_statement(db: Database) -> None:
    """storage/db.py's listener removes NUL, which PostgreSQL refuses: it sees these too."""
    with db.session() as s:
        case = cases.add_case(s, code="DX-NUL", description="井盖\x00丢了", created_at=NOW, updated_at=NOW)
        case_id = pk(case)
    with db.read() as s:
        stored = s.execute(select(col(Case.description)).where(col(Case.id) == case_id)).scalar_one()
    assert stored == "井盖丢了"


def test_a_drivers_error_is_sqlalchemys_and_the_unit_of_work_rolls_back(db: Database) -> None:
    _new_case(db, "DX-TWICE")
    with pytest.raises(IntegrityError), db.session() as s:
        cases.add_case(s, code="DX-TWICE", created_at=NOW, updated_at=NOW)  # the code is unique
    with db.session() as s:  # the connection is fine afterwards
        assert cases.get_case_by_code(s, "DX-TWICE") is not None


def test_a_read_may_not_write_this_way_either(db: Database) -> None:
    with pytest.raises(RuntimeError, match="may not write"), db.read() as s:
        Direct(update(User).where(col(User.id) == bindparam("user_id")).values(first_name="x"))(s, {"user_id": 1})


def test_a_list_for_an_in_takes_a_place_per_item(db: Database) -> None:
    """The SQL is compiled once per length of the list (none, one, several items)."""
    ids = [_new_case(db, f"DX-LIST-{i}") for i in range(3)]
    c = Case.__table__.c  # type: ignore[attr-defined]
    statement = select(c.code).where(c.id.in_(bindparam("ids", expanding=True))).order_by(c.code)
    direct = Direct(statement)
    with db.read() as s:
        for chosen in ([], ids[:1], ids, [*ids, 10**9]):
            theirs = [code for (code,) in s.connection().execute(statement, {"ids": chosen})]
            assert direct(s, {"ids": chosen}).scalars() == theirs
        assert direct(s, {"ids": ids}).scalars() == ["DX-LIST-0", "DX-LIST-1", "DX-LIST-2"]


def test_a_statement_decided_per_run_is_refused_at_its_first_run(db: Database) -> None:
    """An INSERT leaving out a column whose default SQLAlchemy supplies at each run (the
    outbox's state and attempts), or a list for an IN in rows of an executemany, is not a
    fixed statement: refused at once rather than run wrong."""
    partial = Direct(_OUTBOX.insert())
    with db.session() as s, pytest.raises(NotDirect):
        partial(s, {"chat_id": 1, "kind": "text", "payload": {}, "created_at": NOW, "next_attempt_at": NOW})
    forget = Direct(delete(User).where(col(User.id).in_(bindparam("ids", expanding=True))))
    with db.session() as s, pytest.raises(NotDirect):
        forget.many(s, [{"ids": [1]}, {"ids": [2]}])


def test_loaded_objects_are_the_sessions_and_track_their_changes(db: Database) -> None:
    case_id = _new_case(db, "DX-LOAD")
    by_code = Loads(Case, col(Case.code) == bindparam("code"))
    with db.session() as s:
        first = by_code.first(s, {"code": "DX-LOAD"})
        assert first is not None and object_session(first) is s
        assert by_code.first(s, {"code": "DX-LOAD"}) is first  # held: the same object, as the ORM gives
        assert cases.get_case(s, case_id) is first
        assert first.reminders_done == [1, 2] and first.created_at == NOW
        first.state = CaseState.DISPATCHED
        assert cases.change_state(s, first)
    with db.read() as s:
        again = by_code.first(s, {"code": "DX-LOAD"})
        assert again is not None and (again.state, again.version) == (CaseState.DISPATCHED, 2)


def test_a_read_of_objects_sees_what_the_session_changed_and_did_not_write_yet(db: Database) -> None:
    """As the session's own execute (autoflush): tests/test_desk_corrections.py found a card
    refreshed as if it had not been moved when this was missing."""
    _new_case(db, "DX-FLUSH")
    by_state = Loads(Case, col(Case.code) == "DX-FLUSH", col(Case.state) == bindparam("state"))
    with db.session() as s:
        case = cases.get_case_by_code(s, "DX-FLUSH")
        assert case is not None
        case.state = CaseState.CLAIMED
        assert by_state.first(s, {"state": CaseState.CLAIMED}) is case
        case.state = CaseState.RESOLVED
        with s.no_autoflush:  # unless asked not to
            assert by_state.first(s, {"state": CaseState.RESOLVED}) is None


def test_an_insert_takes_the_models_defaults_for_what_it_is_not_given(db: Database) -> None:
    new = CoreInsert(Case)
    with db.session() as s:
        case = new.one(s, code="DX-DEFAULTS", created_at=NOW, updated_at=NOW)
        case_id = pk(case)
        assert (case.state, case.version, case.description, case.reminders_done) == (CaseState.REPORTED, 1, "", [])
    with db.read() as s:
        stored = s.execute(select(Case).where(col(Case.id) == case_id)).scalar_one()
        assert (stored.state, stored.version, stored.description, stored.reminders_done, stored.urgent) == (
            CaseState.REPORTED,
            1,
            "",
            [],
            False,
        )


def test_an_insert_makes_a_mutable_default_for_each_row_and_refuses_what_is_not_a_column(db: Database) -> None:
    new = CoreInsert(Case)
    first = new.values({"code": "DX-A", "created_at": NOW, "updated_at": NOW})
    second = new.values({"code": "DX-B", "created_at": NOW, "updated_at": NOW})
    assert first["reminders_done"] == second["reminders_done"] == []
    assert first["reminders_done"] is not second["reminders_done"]  # one row's list is not another's
    assert first["state"] == CaseState.REPORTED and first["version"] == 1
    with pytest.raises(KeyError, match="code"):  # no default: a value is needed
        new.values({"created_at": NOW, "updated_at": NOW})
    with pytest.raises(KeyError):  # a misspelt attribute is not silently dropped
        new.values({"code": "DX-C", "created_at": NOW, "updated_at": NOW, "descripton": "x"})
