"""A hand-computed month for the desk's tests: 2026-09 in 清波街道 (QB), across the
Mid-autumn holiday (Fri 25 Sep), a weekend and National Day (1-7 Oct). Working hours
08:30-12:00 and 14:00-18:00 (7.5 h a day); claim limit 30 working minutes.

  A  Thu 24 Sep 16:00 parking (4h)  claimed 16:20 (in time); due Mon 28 10:30; resolved
     Mon 10:00 (on time), closed 11:00; handling 2 h + 1.5 h = 3.5 h; rated 4
  B  Wed 30 Sep 17:00 parking (4h)  claimed Thu 8 Oct 09:00 (late); due 8 Oct 11:30;
     resolved 10:00, not fixed 10:30, resolved again 15:00 (late), closed 16:00;
     handling 1 h + 3.5 h + 1 h = 5.5 h; rated 2
  C  Sat 26 Sep 10:00 e-bike (1d)   claimed Mon 28 08:50 (in time: the limit runs from
     Mon 08:30); due Mon 28 18:00; still claimed: overdue now
  D  Tue 29 Sep 09:00 rejected
  E  Tue 29 Sep 10:00 duplicate (not counted)
  F  Tue 29 Sep 11:00 dispatched, never claimed; due 17:00: overdue now; whistled to
     HOUSING 14:00, reported in Wed 30 09:00 (4 h + 0.5 h = 4.5 h)
  G  Fri 2 Oct 10:00 (outside the period)
Now: Fri 9 Oct 2026 10:00.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import select

from storage.db import Database
from storage.models import (
    AuditEvent,
    Case,
    CaseState,
    Category,
    Grid,
    Rating,
    RatingRequest,
    Street,
    Unit,
    User,
    Whistle,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 9, 10, 0, tzinfo=SH)


def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def build(db: Database) -> dict[str, int]:
    """Insert the example; returns the case ids by letter."""
    with db.session() as s:
        street = s.exec(select(Street).where(Street.code == "330102001")).one()
        grid = s.exec(select(Grid).where(Grid.code == "33010200100101")).one()
        grid2 = s.exec(select(Grid).where(Grid.code == "33010200100102")).one()
        zf = s.exec(select(Unit).where(Unit.code == "QB-ZF")).one()
        zz = s.exec(select(Unit).where(Unit.code == "QB-ZZ")).one()
        housing = s.exec(select(Unit).where(Unit.code == "HOUSING")).one()
        parking = s.exec(select(Category).where(Category.code == "TRAFFIC-PARKING")).one()
        ebike = s.exec(select(Category).where(Category.code == "TRAFFIC-EBIKE")).one()
        worker = User(telegram_id=555001, first_name="王", last_name="五")
        resident = User(telegram_id=555002, first_name="Res")
        s.add(worker)
        s.add(resident)
        s.flush()
        ids: dict[str, int] = {}

        def case(letter: str, created: datetime, state: str, **kw: Any) -> Case:
            c = Case(
                code=f"QB-2609{letter}-000{len(ids) + 1}",
                state=state,
                street_id=street.id,
                grid_id=kw.pop("grid_id", grid.id),
                category_id=kw.pop("category_id", parking.id),
                description=f"案例{letter} 劳动路{len(ids) + 1}号 占道",
                created_at=created,
                **kw,
            )
            s.add(c)
            s.flush()
            assert c.id is not None
            ids[letter] = c.id
            return c

        def ev(c: Case, action: str, at: datetime, to: str | None = None) -> None:
            s.add(AuditEvent(at=at, action=action, subject_type="case", subject_id=c.id, case_id=c.id, to_state=to))

        a = case("A", t(9, 24, 16), CaseState.CLOSED, unit_id=zf.id, owner_user_id=worker.id,
                 dispatched_at=t(9, 24, 16), claimed_at=t(9, 24, 16, 20), due_at=t(9, 28, 10, 30),
                 resolved_at=t(9, 28, 10), closed_at=t(9, 28, 11))  # fmt: skip
        ev(a, "case.dispatched", t(9, 24, 16))
        ev(a, "case.claimed", t(9, 24, 16, 20))
        ev(a, "case.resolved", t(9, 28, 10))
        ev(a, "case.closed", t(9, 28, 11))
        b = case("B", t(9, 30, 17), CaseState.CLOSED, unit_id=zf.id, owner_user_id=worker.id, grid_id=grid2.id,
                 dispatched_at=t(9, 30, 17), claimed_at=t(10, 8, 9), due_at=t(10, 8, 12),
                 resolved_at=t(10, 8, 15), closed_at=t(10, 8, 16))  # fmt: skip
        ev(b, "case.dispatched", t(9, 30, 17))
        ev(b, "case.claimed", t(10, 8, 9))
        ev(b, "case.resolved", t(10, 8, 10))
        ev(b, "case.not_fixed", t(10, 8, 10, 30), CaseState.REOPENED)
        ev(b, "case.resolved", t(10, 8, 15))
        ev(b, "case.closed", t(10, 8, 16))
        c = case("C", t(9, 26, 10), CaseState.CLAIMED, unit_id=zz.id, owner_user_id=worker.id, category_id=ebike.id,
                 dispatched_at=t(9, 26, 10), claimed_at=t(9, 28, 8, 50), due_at=t(9, 28, 18))  # fmt: skip
        ev(c, "case.dispatched", t(9, 26, 10))
        ev(c, "case.claimed", t(9, 28, 8, 50))
        d = case("D", t(9, 29, 9), CaseState.REJECTED, closed_at=t(9, 29, 9, 30))
        ev(d, "case.rejected", t(9, 29, 9, 30))
        case("E", t(9, 29, 10), CaseState.DUPLICATE)
        f = case("F", t(9, 29, 11), CaseState.DISPATCHED, unit_id=zf.id, dispatched_at=t(9, 29, 11),
                 due_at=t(9, 29, 17))  # fmt: skip
        ev(f, "case.dispatched", t(9, 29, 11))
        s.add(Whistle(case_id=f.id, unit_id=housing.id, created_at=t(9, 29, 14), reported_in_at=t(9, 30, 9)))  # type: ignore[arg-type]
        case("G", t(10, 2, 10), CaseState.REPORTED)
        for cid, level in ((a.id, 4), (b.id, 2)):
            req = RatingRequest(case_id=cid, user_id=resident.id, origin="reporter")  # type: ignore[arg-type]
            s.add(req)
            s.flush()
            s.add(Rating(case_id=cid, user_id=resident.id, request_id=req.id, level=level))  # type: ignore[arg-type]
    return ids
