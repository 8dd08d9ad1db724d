"""Routing by the responsibility list (权责清单), for every category of the sample organisation.

For each category and each street a report is suggested to (or, on an auto-dispatch
street, dispatched at once to) the street's team of the category's platform; where the
street has no such team it goes to the command room. Expected teams are derived from the
organisation file itself (its header: a street's teams are ``{abbr}-{platform}``), not
from the routing code under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from telegram.ext import Application

from bot.intake.submit import ReportIn, Submitted, submit_report
from bot.org import index
from bot.org.org_file import DEFAULT_ORG_FILE, OrgSpec, load_org_file
from bot.people.identity import Profile, identify
from bot.runtime import Runtime
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import AuditEvent, Case, CaseCard, Category, Grid, Outbox, Street, Unit, pk
from storage.org_import import import_org
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, receipt
from tests.images import make_jpeg

SPEC: OrgSpec = load_org_file(DEFAULT_ORG_FILE)
STREETS = {street.abbr: street for street in SPEC.streets}


# --------------------------------------------------------------------------- helpers


def reporter(rt: Runtime, telegram_id: int = 7001) -> int:
    return identify(rt, Profile(telegram_id=telegram_id, first_name="巡查员")).user_id


def ids_by_code(db: Database, model: type[Any]) -> dict[str, int]:
    with db.session() as s:
        return {row.code: row.id for row in s.exec(select(model))}


def first_grid(street_abbr: str) -> str:
    return STREETS[street_abbr].communities[0].grids[0].code


def expected_team(street_abbr: str, platform: str) -> str | None:
    """The team the file gives this street for the platform (None: the street has none)."""
    street = STREETS[street_abbr]
    codes = [u.code for u in SPEC.teams() if u.street_code == street.code and u.platform_code == platform]
    assert len(codes) <= 1
    return codes[0] if codes else None


def report(db: Database, user_id: int, grid: str, category_code: str, description: str = "测试") -> ReportIn:
    lat, lon = grid_centre(db, grid)
    return ReportIn(
        reporter_user_id=user_id,
        source="patrol",
        latitude=lat,
        longitude=lon,
        grid_id=ids_by_code(db, Grid)[grid],
        category_id=ids_by_code(db, Category)[category_code],
        description=description,
        photos=(),
    )


def case_of(db: Database, done: Submitted) -> Case:
    with db.session() as s:
        case = s.get(Case, done.case_id)
        assert case is not None
        return case


def actions_of(db: Database, case_id: int) -> list[str]:
    with db.session() as s:
        return [
            e.action
            for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(col(AuditEvent.id)))
        ]


def cards_of(db: Database, case_id: int) -> dict[str, int]:
    """purpose -> chat id of the cards posted for a case."""
    with db.session() as s:
        return {c.purpose: c.chat_id for c in s.exec(select(CaseCard).where(CaseCard.case_id == case_id))}


# --------------------------------------------------------------------------- the sample file


def test_the_sample_covers_what_routing_needs(db: Database) -> None:
    assert {s.abbr: s.auto_dispatch for s in SPEC.streets} == {"QB": False, "HB": True}
    with db.session() as s:
        active = {c.code for c in s.exec(select(Category).where(Category.active))}
    assert active == {c.code for c in SPEC.categories}  # every category of the file is in use
    assert {c.platform for c in SPEC.categories} == {"ZZ", "SC", "ZF", "BM"}
    for street in SPEC.streets:  # every street has a team for every platform
        for platform in ("ZZ", "SC", "ZF", "BM"):
            assert expected_team(street.abbr, platform) == f"{street.abbr}-{platform}"


@pytest.mark.parametrize("street", list(STREETS))
def test_every_category_is_routed_to_the_streets_team_of_its_platform(rt: Runtime, db: Database, street: str) -> None:
    user = reporter(rt)
    units = ids_by_code(db, Unit)
    auto = STREETS[street].auto_dispatch
    grid = first_grid(street)
    seen = []
    for category in SPEC.categories:
        done = submit_report(rt, report(db, user, grid, category.code, f"{category.name.zh}：测试"))
        case = case_of(db, done)
        team = expected_team(street, category.platform)
        assert team is not None
        assert case.suggested_unit_id == units[team], (street, category.code)
        assert case.street_id == ids_by_code(db, Street)[STREETS[street].code]
        assert case.code.startswith(f"{street}-")
        assert case.urgent == (category.urgency == "urgent")
        if auto:
            assert (case.state, case.unit_id, done.state, done.unit_id) == (
                "dispatched",
                units[team],
                "dispatched",
                units[team],
            )
            assert case.dispatched_at is not None
            assert done.unit_name("zh_CN") is not None
            actions = actions_of(db, pk(case))
            assert actions.index("case.reported") < actions.index("case.dispatched")
        else:
            assert (case.state, case.unit_id, done.state, done.unit_id) == ("reported", None, "reported", None)
            assert case.dispatched_at is None
            assert "case.dispatched" not in actions_of(db, pk(case))
        seen.append(category.code)
    assert len(seen) == len(SPEC.categories) == len(set(seen))


def test_a_category_without_a_team_in_the_street_goes_to_the_command_room(
    rt: Runtime, db: Database, tmp_path: Path
) -> None:
    """A modified organisation: 清波 (QB) keeps no convenience-services (BM) team."""
    text = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    assert text.count("platforms: [ZZ, SC, ZF, BM]") == 1
    modified = tmp_path / "org.yaml"
    modified.write_text(text.replace("platforms: [ZZ, SC, ZF, BM]", "platforms: [ZZ, SC, ZF]"), encoding="utf-8")
    spec = load_org_file(modified)
    with db.session() as s:
        result = import_org(s, spec)
    assert result.deactivated["team"] == 1
    with db.session() as s:
        assert s.exec(select(Unit).where(Unit.code == "QB-BM")).one().active is False
    user = reporter(rt)
    units = ids_by_code(db, Unit)
    bm = [c.code for c in SPEC.categories if c.platform == "BM"]
    assert bm
    for code in bm:
        case = case_of(db, submit_report(rt, report(db, user, first_grid("QB"), code)))
        assert (case.suggested_unit_id, case.unit_id, case.state) == (None, None, "reported")
        # …while in 湖滨 the same category still goes straight to its team
        case = case_of(db, submit_report(rt, report(db, user, first_grid("HB"), code)))
        assert (case.state, case.unit_id) == ("dispatched", units["HB-BM"])
    # other platforms of QB are untouched
    case = case_of(db, submit_report(rt, report(db, user, first_grid("QB"), "TRAFFIC-PARKING")))
    assert case.suggested_unit_id == units["QB-ZF"]


# --------------------------------------------------------------------------- cards in the groups


@pytest.fixture
async def hubin(tg: FakeTelegram, admin: FakeUser) -> dict[str, object]:
    """湖滨's command room and its law-enforcement (ZF) team are bound; its other teams are not."""
    return {
        "HB-CMD": await bound_group(tg, admin, -100700, "HB-CMD"),
        "HB-ZF": await bound_group(tg, admin, -100701, "HB-ZF"),
    }


async def test_auto_dispatch_posts_to_the_team_and_the_command_room(
    app: Application, rt: Runtime, db: Database, tg: FakeTelegram, hubin: dict[str, object]
) -> None:
    user = reporter(rt)
    done = submit_report(rt, report(db, user, first_grid("HB"), "CITY-STREET-VENDOR", "岳王路口流动摊贩占道"))
    await drain(app)
    case = case_of(db, done)
    assert case.state == "dispatched" and case.unit_id == ids_by_code(db, Unit)["HB-ZF"]
    assert cards_of(db, pk(case)) == {"team": -100701, "command": -100700}
    team_card = tg.chat(-100701).last_message()
    room_card = tg.chat(-100700).last_message()
    assert team_card is not None and case.code in team_card.body and "占道" in team_card.body
    assert room_card is not None and case.code in room_card.body
    # the command room's card is for information: nothing left to dispatch
    assert not any("派遣至" in label for row in buttons(room_card) for label in row)
    with db.session() as s:
        assert {o.state for o in s.exec(select(Outbox).where(Outbox.case_id == case.id))} == {"sent"}


async def test_auto_dispatch_to_a_team_without_a_group(
    app: Application, rt: Runtime, db: Database, tg: FakeTelegram, hubin: dict[str, object]
) -> None:
    user = reporter(rt)
    done = submit_report(rt, report(db, user, first_grid("HB"), "DISPUTE-NEIGHBOUR"))
    await drain(app)
    case = case_of(db, done)
    assert case.state == "dispatched" and case.unit_id == ids_by_code(db, Unit)["HB-ZZ"]
    assert cards_of(db, pk(case)) == {"command": -100700}  # the room still sees it
    with db.session() as s:
        missing = s.exec(
            select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == "notify.no_chat")
        ).all()
    assert [e.data["purpose"] for e in missing] == ["team"]


async def test_auto_dispatch_street_without_the_team_leaves_it_to_the_command_room(
    app: Application, rt: Runtime, db: Database, tg: FakeTelegram, hubin: dict[str, object]
) -> None:
    with db.session() as s:
        team = s.exec(select(Unit).where(Unit.code == "HB-SC")).one()
        team.active = False
        s.add(team)
    index.forget(rt)  # as an organisation import does: the process reads the organisation again
    user = reporter(rt)
    for category in (c for c in SPEC.categories if c.platform == "SC"):
        done = submit_report(rt, report(db, user, first_grid("HB"), category.code))
        await drain(app)
        case = case_of(db, done)
        assert (case.state, case.unit_id, case.suggested_unit_id) == ("reported", None, None)
        assert cards_of(db, pk(case)) == {"command": -100700}
        room_card = tg.chat(-100700).last_message()
        assert room_card is not None and case.code in room_card.body
        labels = [label for row in buttons(room_card) for label in row]
        assert labels and not any("派遣至" in label for label in labels)  # no team to suggest


async def test_a_resident_in_hubin_is_told_which_team_has_it(
    tg: FakeTelegram, db: Database, hubin: dict[str, object]
) -> None:
    """End to end through the Application: the reporter hears where the case went."""
    resident = tg.user(6101, "Mr Qian", language_code="en")
    await resident.send_photo(make_jpeg(), caption="Street vendor blocking the pavement")
    await resident.send_location(*grid_centre(db, first_grid("HB")))
    card = resident.last_message()
    await resident.press(card, "Street vending and shop spill-over")
    await resident.press(resident.last_message(), "✅ Submit")
    with db.session() as s:
        case = s.exec(select(Case)).one()
    assert case.state == "dispatched" and case.unit_id == ids_by_code(db, Unit)["HB-ZF"]
    assert case.code in receipt(resident) and "Hubin Subdistrict comprehensive law enforcement team" in receipt(
        resident
    )
    team_card = tg.chat(-100701).last_message()
    assert team_card is not None and team_card.photo and case.code in team_card.caption_text
    assert case.code in (tg.chat(-100700).last_message().caption or "")
