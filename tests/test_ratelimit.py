"""The report rate limit counts what a person filed, not what a dispatcher did with it."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.cases import dispatch
from bot.intake import submit as intake
from bot.people import identity as people
from bot.people import onboarding
from bot.runtime import Runtime
from storage.db import Database
from storage.models import Category, Grid, pk

GRID = "33010200100101"


def resident_report(rt: Runtime, db: Database, user_id: int, dlat: float) -> int:
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == GRID)).one()
        category = s.exec(select(Category).where(Category.code == "CLEAN-EXPOSED-GARBAGE")).one()
        assert grid.centre_lat is not None and grid.centre_lon is not None
    intake.check_rate(rt, user_id=user_id, resident=True)
    done = intake.submit_report(
        rt,
        intake.ReportIn(
            reporter_user_id=user_id,
            source="resident",
            latitude=grid.centre_lat + dlat,
            longitude=grid.centre_lon,
            grid_id=pk(grid),
            category_id=pk(category),
            description="垃圾",
            photos=(),
        ),
    )
    return done.case_id


def test_a_duplicate_marked_by_the_command_room_is_not_counted_twice(rt: Runtime, db: Database) -> None:
    resident = people.identify(rt, people.Profile(telegram_id=9801, first_name="r"))
    dispatcher = people.identify(rt, people.Profile(telegram_id=9802, first_name="d"))
    made = onboarding.create_invite(rt, role="dispatcher", scope_code="QB-CMD", created_by=None)
    onboarding.redeem_invite(rt, code=made.code, user_id=dispatcher.user_id)
    dispatcher = people.identify(rt, people.Profile(telegram_id=9802, first_name="d"))
    limit = rt.settings.resident_reports_per_hour
    ids = [resident_report(rt, db, resident.user_id, 0.001 * i) for i in range(limit - 1)]
    dispatch.mark_duplicate(rt, dispatcher, case_id=ids[1], original_id=ids[0])
    resident_report(rt, db, resident.user_id, 0.01)  # the last one allowed this hour
    with pytest.raises(intake.RateLimited):
        intake.check_rate(rt, user_id=resident.user_id, resident=True)
