"""/find's text index (migrations 0007 and 0009, storage/search_index.py): SQLite's FTS5 trigram
table kept in step by triggers, PostgreSQL's pg_trgm GIN indexes and its index of characters
and pairs; and the scan when neither is there (no FTS5 trigram, no pg_trgm): the same answers
either way, Chinese substrings and texts of one or two characters included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from bot.runtime import Runtime
from storage import desk_queue, search_index
from storage.db import Database
from storage.models import Case
from tests import desk_example as ex

QUERIES = {
    "劳动路": 7,  # every example case's description (duplicate E included: search shows all)
    "劳动路3号": 1,  # a Chinese substring inside the text
    "案例F": 1,
    "2609f-0006": 1,  # inside a code, any case
    "占道": 7,  # shorter than a trigram, and the end of the text
    "占": 7,
    "道": 7,  # one character, the last of the text
    "案例": 7,  # the start of the text
    "06": 1,  # inside a code
    "f": 1,  # a letter in any case: case F (its code and its text)
    "钢琴": 0,
    "琴": 0,
    "不存在的地址": 0,
    "100%_": 0,  # LIKE's wildcards are plain characters
    '劳动"路': 0,  # a quote in the text is plain too
    "劳动'路": 0,  # and an apostrophe, though the text is written into the statement
    "路\\": 0,
}


def found(rt: Runtime, q: str) -> list[str]:
    with rt.db.read() as s:
        return [c.code for c in desk_queue.search(s, q, street_ids=None, unit_ids=(), limit=50)]


@pytest.fixture
def example(rt: Runtime) -> Iterator[Runtime]:
    ex.build(rt.db)
    yield rt
    with rt.db.engine.begin() as conn:  # a test that took the index away gives it back
        search_index.install(conn)


def uses_index(db: Database, q: str = "劳动路3号") -> bool:
    with db.session() as s:  # SET LOCAL: a transaction's (a read is none on PostgreSQL)
        if s.get_bind().dialect.name == "sqlite":
            return desk_queue._fts_ids(s, q) is not None
        s.execute(text("SET LOCAL enable_seqscan = off"))
        with_table, with_grams = search_index.text_ready(s)
        if not with_table:
            return False
        if len(q) <= search_index.SHORT:
            if not with_grams:
                return False
            where = search_index.SHORT_GRAMS_MATCH.replace(":gram", ":q")
            wanted = search_index.SHORT_GRAMS_INDEX
        else:
            where, wanted = "description LIKE '%' || :q || '%'", "ix_case_trgm_description"
        explain = f"EXPLAIN SELECT case_id FROM {search_index.TEXT_TABLE} WHERE {where}"
        plan = "\n".join(r for (r,) in s.execute(text(explain), {"q": q}))
        return wanted in plan


def pg_trgm_available(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar())


def test_index_answers_like_the_scan(example: Runtime) -> None:
    rt = example
    if rt.db.engine.dialect.name == "postgresql" and not pg_trgm_available(rt.db):
        pytest.skip("pg_trgm is not available on this server")
    assert uses_index(rt.db)
    assert uses_index(rt.db, "占道") and uses_index(rt.db, "道")
    with_index = {q: found(rt, q) for q in QUERIES}
    for q, n in QUERIES.items():
        assert len(with_index[q]) == n, (q, with_index[q])
    assert with_index["2609f-0006"] == ["QB-2609F-0006"]
    with rt.db.engine.begin() as conn:
        search_index.uninstall(conn)
    assert not uses_index(rt.db) and not uses_index(rt.db, "占道")
    assert {q: found(rt, q) for q in QUERIES} == with_index  # the scan: the same answers, same order


def test_triggers_keep_the_index_in_step(example: Runtime) -> None:
    rt = example
    with rt.db.session() as s:
        c = s.exec(select(Case).where(col(Case.code).startswith("QB-2609A"))).one()
        c.description = "井盖缺失 解放路口"
        c.address = "上城区望江路88号"
        s.add(c)
    assert found(rt, "解放路口") == [c.code]
    assert found(rt, "口") == found(rt, "路口") == [c.code]  # one and two characters, the text's end
    assert found(rt, "望江路88") == [c.code]
    assert found(rt, "劳动路1号") == []  # the old description is gone from the index
    with rt.db.session() as s:
        extra = Case(code="QB-2609Z-0099", state=c.state, street_id=c.street_id, description="新建 清泰街口 积水")
        s.add(extra)
        s.flush()
        extra_id = extra.id
    assert found(rt, "清泰街口") == ["QB-2609Z-0099"]
    assert found(rt, "积水") == ["QB-2609Z-0099"]
    with rt.db.session() as s:
        s.delete(s.get(Case, extra_id))
    assert found(rt, "清泰街口") == []
    assert found(rt, "积水") == []


def test_migration_without_the_extension_creates_nothing(db: Database) -> None:
    # pg_trgm missing (or no right to create it): the migration goes on, /find scans
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            search_index.uninstall(conn)
            conn.exec_driver_sql("SELECT 1")
        else:
            assert search_index.install(conn, extension="no_such_extension_j11") is False
            conn.exec_driver_sql("SELECT 1")  # the transaction is still usable
    if db.engine.dialect.name == "sqlite":
        with db.read() as s:
            assert not search_index.fts_ready(s)
        with db.engine.begin() as conn:
            assert search_index.install(conn) is True
        with db.read() as s:
            assert search_index.fts_ready(s)


def test_sqlite_without_a_trigger_does_not_use_a_stale_index(example: Runtime) -> None:
    rt = example
    if rt.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's triggers")
    with rt.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER case_search_au")  # as a later migration copying `cases` would
    with rt.db.read() as s:
        assert not search_index.fts_ready(s)
    assert len(found(rt, "劳动路3号")) == 1


def test_postgresql_moves_leave_the_searched_text_alone(example: Runtime) -> None:
    """Migration 0011: a move rewrites the case's row, not its searched text, and `cases` carries
    no GIN index for PostgreSQL to add the new row version to."""
    rt = example
    if rt.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's indexes")
    with rt.db.session() as s:
        gin = s.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'cases' "
                "AND indexdef LIKE '%USING gin%'"
            )
        )
        assert list(gin) == []
        c = s.exec(select(Case).where(col(Case.code).startswith("QB-2609A"))).one()
        case_id = c.id
    copy = text(f"SELECT xmin::text, description FROM {search_index.TEXT_TABLE} WHERE case_id = :id")
    with rt.db.session() as s:
        before = s.execute(copy, {"id": case_id}).one()
    with rt.db.session() as s:
        s.execute(text("UPDATE cases SET version = version + 1, due_at = now() WHERE id = :id"), {"id": case_id})
    with rt.db.session() as s:
        assert s.execute(copy, {"id": case_id}).one() == before  # the same row version: not written
        s.execute(text("UPDATE cases SET description = '窨井盖松动' WHERE id = :id"), {"id": case_id})
    with rt.db.read() as s:
        assert s.execute(copy, {"id": case_id}).one()[1] == "窨井盖松动"
    assert found(rt, "窨井盖") == [c.code]


def test_the_searched_text_is_written_into_the_statement(example: Runtime) -> None:
    """A statement PostgreSQL has prepared is given one generic plan for any parameter after
    five runs: the plan for a rare character then joins every case that holds a common one.
    Each text is written into its own statement instead (storage/desk_queue.py _written)."""
    from tests.flows import statements_of

    rt = example
    if rt.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's prepared statements (SQLite's index answers by MATCH)")
    with statements_of(rt.db) as seen:
        for q in ("路", "麒麟", "劳动'路"):
            found(rt, q)
    searches = [sql for sql in seen if "LIKE" in sql.upper()]
    assert len(searches) == 3
    assert "%路%" in searches[0] and "%麒麟%" in searches[1] and "劳动''路" in searches[2]
