"""The figures kept per case (case_figures, summed by SQL) equal the reference walk over
every case and its timeline (figures.reference), for cases made by random walks through the
real services on the controllable clock: reports, dispatch, claims, releases, reassignment,
returns, whistles and report-ins, extensions, resolving, verification, ratings, follow-ups
that reopen, duplicates, rejections and corrected categories, across nights, weekends and
the National Day holiday. Then a rebuild from scratch gives the very same rows."""

from __future__ import annotations

import dataclasses
import os
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from bot.cases import casework, claim, deadlines
from bot.cases import dispatch as decide
from bot.clock import ManualClock
from bot.desk import corrections, figures, periods, scopes
from bot.errors import DomainError
from bot.intake import submit as intake
from bot.intake.photos import process_photo
from bot.org.org_file import DEFAULT_ORG_FILE, OrgSpec, load_org_file
from bot.people import identity as people
from bot.people import onboarding
from bot.people.roles import Person
from bot.rating import ratings
from bot.runtime import Runtime
from griddesk.cli import main as cli_main
from griddesk.startup import fill_figures, import_organisation
from storage import desk_figures
from storage import ratings as rating_rows
from storage.db import Database
from storage.models import (
    Case,
    CaseDepartmentFigures,
    CaseFigures,
    CaseState,
    Category,
    ExtensionRequest,
    Grid,
    RatingRequest,
    Street,
    Unit,
    UnitKind,
    Whistle,
    pk,
)
from tests.images import make_jpeg

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 9, 24, 9, 0, tzinfo=SH)  # a Thursday: Mid-autumn, a weekend and National Day ahead
STREETS = ("330102001", "330102002")  # QB dispatches by hand, HB automatically
DEPARTMENTS = ("HOUSING", "WATER")


class World:
    """The people of the walk and the cases it made."""

    def __init__(self, rt: Runtime, rng: random.Random) -> None:
        self.rt, self.rng = rt, rng
        self.next_tg = 81_000
        with rt.db.read() as s:
            self.grids = list(s.exec(select(Grid)))
            self.categories = list(s.exec(select(Category)))
            units = list(s.exec(select(Unit)))
        self.teams = [u for u in units if u.kind == UnitKind.TEAM]
        self.departments = {u.code: u for u in units if u.code in DEPARTMENTS}
        self.staff = {pk(t): [self.member("staff", t.code) for _ in range(2)] for t in self.teams}
        self.dispatchers = {code: self.member("dispatcher", code) for code in STREETS}
        self.officers = {code: self.member("department", code) for code in DEPARTMENTS}
        self.residents = [self.join() for _ in range(4)]
        self.cases: list[int] = []
        stored = process_photo(make_jpeg(), rt.settings.media_dir, default_tz=SH)
        self.photo = intake.PhotoIn(
            "f", stored.sha256, str(stored.original_path), str(stored.jpeg_path), str(stored.thumb_path),
            stored.width, stored.height,
        )  # fmt: skip

    def join(self) -> Person:
        self.next_tg += 1
        profile = people.Profile(telegram_id=self.next_tg, first_name=f"p{self.next_tg}", language_code="zh-hans")
        return people.identify(self.rt, profile)

    def member(self, role: str, scope: str) -> Person:
        person = self.join()
        made = onboarding.create_invite(self.rt, role=role, scope_code=scope, created_by=None)
        onboarding.redeem_invite(self.rt, code=made.code, user_id=person.user_id)
        return people.identify(self.rt, people.Profile(telegram_id=person.telegram_id, first_name=person.name))

    def case(self, case_id: int) -> Case:
        with self.rt.db.read() as s:
            found = s.get(Case, case_id)
            assert found is not None
            return found

    def street_code(self, case: Case) -> str:
        return STREETS[0] if case.street_id == self.grids[0].street_id else STREETS[1]

    def owner(self, case: Case) -> Person:
        return next(p for p in self.staff[case.unit_id or 0] if p.user_id == case.owner_user_id)

    def input(self, who: Person, case: Case, action: str, **extra: Any) -> None:
        """An action that waits for words (and photos, departments, more time), then finishes."""
        casework.start_input(self.rt, person=who, case_id=pk(case), action=action)
        casework.add_text(self.rt, user_id=who.user_id, text="随机步骤")
        if action == casework.RESOLVE:
            casework.add_photo(self.rt, user_id=who.user_id, photo=self.photo)
        for unit_id in extra.get("departments", ()):
            casework.toggle_department(self.rt, user_id=who.user_id, unit_id=unit_id)
        if "more" in extra:
            amount, unit = extra["more"]
            casework.set_more_time(self.rt, user_id=who.user_id, amount=amount, unit=unit)
        pending = casework.pending(self.rt, who.user_id)
        assert pending is not None
        casework.finish(self.rt, person=who, pending_id=pending.id)

    # --- the steps -----------------------------------------------------------------------

    def report(self) -> None:
        grid = self.rng.choice(self.grids)
        category = self.rng.choice(self.categories)
        assert grid.centre_lat is not None and grid.centre_lon is not None
        done = intake.submit_report(
            self.rt,
            intake.ReportIn(
                reporter_user_id=self.rng.choice(self.residents).user_id, source="resident",
                latitude=grid.centre_lat, longitude=grid.centre_lon, grid_id=pk(grid), category_id=pk(category),
                description="随机案件", photos=(),
            ),
        )  # fmt: skip
        if not done.joined:
            self.cases.append(done.case_id)

    def steps(self, case: Case) -> list[Callable[[], object]]:
        """What may be done next to this case, as calls to the services."""
        rt, rng, cid = self.rt, self.rng, pk(case)
        room = self.dispatchers[self.street_code(case)]
        team = self.staff.get(case.unit_id or 0, [])
        state = case.state
        out: list[Callable[[], object]] = []
        if state in (CaseState.REPORTED, CaseState.RETURNED):
            mine = [t for t in self.teams if t.street_id == case.street_id]
            out.append(lambda: decide.dispatch_case(rt, room, case_id=cid, unit_id=pk(rng.choice(mine))))
            out.append(lambda: decide.dispatch_case(rt, room, case_id=cid, unit_id=pk(rng.choice(mine))))
            out.append(lambda: decide.reject_case(rt, room, case_id=cid, text="不属于受理范围"))
        if state in (CaseState.REPORTED, CaseState.RETURNED, CaseState.DISPATCHED):
            others = [c for c in self.cases if c != cid]
            if others:
                out.append(lambda: decide.mark_duplicate(rt, room, case_id=cid, original_id=rng.choice(others)))
        if state in (CaseState.DISPATCHED, CaseState.REOPENED) and team:
            for _ in range(3):
                out.append(lambda: claim.claim(rt, person=rng.choice(team), case_id=cid))
        if state in (CaseState.CLAIMED, CaseState.DISPATCHED, CaseState.REOPENED) and team:
            out.append(lambda: claim.reassign(rt, person=room, case_id=cid, user_id=rng.choice(team).user_id))
        if state in (CaseState.DISPATCHED, CaseState.CLAIMED, CaseState.REOPENED):
            cats = self.categories
            out.append(lambda: corrections.recategorize(rt, room, cid, pk(rng.choice(cats))))
        if state == CaseState.CLAIMED:
            owner = self.owner(case)
            out += [lambda: self.input(owner, case, casework.RESOLVE)] * 3
            out.append(lambda: claim.release(rt, person=owner, case_id=cid))
            out.append(lambda: self.input(owner, case, casework.RETURN))
            depts = [pk(d) for d in rng.sample(list(self.departments.values()), rng.randint(1, 2))]
            out.append(lambda: self.input(owner, case, casework.ESCALATE, departments=depts))
            out.append(lambda: self.extend(owner, case))
        if state == CaseState.ESCALATED:
            out.append(lambda: self.input(self.owner(case), case, casework.RESOLVE))
        if state in (CaseState.ESCALATED, CaseState.CLAIMED, CaseState.RESOLVED, CaseState.REOPENED):
            out.append(lambda: self.report_in(cid))
        if state == CaseState.RESOLVED:
            out += [lambda: casework.confirm(rt, person=room, case_id=cid)] * 2
            out.append(lambda: self.input(room, case, casework.NOT_FIXED))
        if state == CaseState.CLOSED and self.unrated(case) is not None:
            out.append(lambda: self.rate(case, room))
        return out

    def extend(self, owner: Person, case: Case) -> None:
        unit = deadlines.more_time_unit(self.rt, case)
        self.input(owner, case, casework.EXTEND, more=(self.rng.choice(deadlines.MORE_TIME_CHOICES[unit]), unit))
        with self.rt.db.read() as s:
            request = s.exec(
                select(col(ExtensionRequest.id))
                .where(ExtensionRequest.case_id == case.id)
                .order_by(col(ExtensionRequest.id))
            ).all()[-1]
        room = self.dispatchers[self.street_code(case)]
        casework.decide_extension(self.rt, person=room, request_id=int(request or 0), approve=self.rng.random() < 0.7)

    def report_in(self, case_id: int) -> None:
        with self.rt.db.read() as s:
            open_ = list(
                s.exec(select(Whistle).where(Whistle.case_id == case_id, col(Whistle.reported_in_at).is_(None)))
            )
        if open_:
            whistle = self.rng.choice(open_)
            code = next(c for c, u in self.departments.items() if u.id == whistle.unit_id)
            casework.report_in(self.rt, person=self.officers[code], whistle_id=pk(whistle))

    def unrated(self, case: Case) -> RatingRequest | None:
        """The reporter's request to rate the case, while they have not."""
        with self.rt.db.read() as s:
            request = rating_rows.request_for(s, case_id=pk(case), user_id=case.reporter_user_id or 0)
        return request if request is not None and request.rated_at is None else None

    def rate(self, case: Case, room: Person) -> None:
        request = self.unrated(case)
        assert request is not None
        reporter = next(p for p in self.residents if p.user_id == case.reporter_user_id)
        rated = ratings.rate(self.rt, person=reporter, request_id=pk(request), level=self.rng.randint(1, 5))
        if rated.followup_id is not None and self.rng.random() < 0.6:
            ratings.followup_action(self.rt, person=room, followup_id=rated.followup_id, op="o")

    def walk(self, clock: ManualClock, steps: int) -> None:
        for _ in range(steps):
            # minutes to days: claims in and out of the limit, due times met and missed,
            # lunch breaks, nights, weekends and the holiday in between
            clock.advance(timedelta(minutes=self.rng.choice((1, 3, 10, 15, 25, 40, 60, 90, 240, 600, 1500))))
            if len(self.cases) < 3 or self.rng.random() < 0.12:
                self.report()
                continue
            for _try in range(4):  # a case something can still happen to
                case = self.case(self.rng.choice(self.cases))
                options = self.steps(case)
                if options:
                    break
            if not options:
                continue
            try:
                self.rng.choice(options)()
            except DomainError:
                pass  # a move this state or person may not make: refused, nothing written


ADMIN = Person(user_id=0, telegram_id=0, name="admin", language="zh_CN", is_admin=True)


def same(fast: figures.Figures, slow: figures.Figures, where: str) -> None:
    for f in dataclasses.fields(figures.Figures):
        a, b = getattr(fast, f.name), getattr(slow, f.name)
        if isinstance(b, float) or isinstance(a, float):
            assert a == pytest.approx(b, abs=1e-9), (where, f.name)
        else:
            assert a == b, (where, f.name, a, b)


def check_all(rt: Runtime, world: World) -> int:
    """Every scope kind, every breakdown, two periods: the kept figures equal the walk."""
    now = rt.clock.now()
    codes = [None, STREETS[0], "HB-ZZ", "HOUSING", world.grids[-1].code]
    checked = 0
    for code in codes:
        scope = scopes.resolve(rt, ADMIN, code)
        for text in ("2026-09-20..2026-12-31", "2026-10"):
            period = periods.parse(text, now, SH)
            for breakdown in (None, *figures.BREAKDOWNS):
                fast = figures.compute(rt, scope, period, breakdown)
                slow = figures.reference(rt, scope, period, breakdown)
                where = f"{code} {text} {breakdown}"
                same(fast.total, slow.total, where)
                assert {g.key for g in fast.groups} == {g.key for g in slow.groups}, where
                slow_groups = {g.key: g for g in slow.groups}
                for g in fast.groups:
                    same(g.figures, slow_groups[g.key].figures, f"{where} {g.key}")
                    assert g.names == slow_groups[g.key].names
                checked += 1
    return checked


def kept_rows(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with db.read() as s:
        cases = [tuple(r) for r in s.execute(select(CaseFigures.__table__).order_by(col(CaseFigures.case_id)))]  # type: ignore[attr-defined]
        depts = [tuple(r) for r in s.execute(select(CaseDepartmentFigures.__table__).order_by("case_id", "unit_id"))]  # type: ignore[attr-defined]
    return cases, depts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_figures_equal_the_walk_over_every_case(rt: Runtime, clock: ManualClock, seed: int) -> None:
    clock.set(START)
    world = World(rt, random.Random(seed))
    for _ in range(3):
        world.walk(clock, 80)
        assert check_all(rt, world) > 0
        clock.advance(timedelta(days=2))  # later: more claim limits and due times have passed
        check_all(rt, world)
    with rt.db.read() as s:
        states = {c.state for c in s.exec(select(Case))}
        whistles = s.exec(select(Whistle)).all()
    # the walk went everywhere the figures look
    assert {CaseState.CLOSED, CaseState.DUPLICATE, CaseState.REJECTED, CaseState.CLAIMED} <= states
    assert whistles
    before = kept_rows(rt.db)
    assert figures.rebuild(rt, slice_size=7) == len(before[0])
    assert kept_rows(rt.db) == before


def test_an_upgraded_database_is_filled_at_its_first_start(rt: Runtime, clock: ManualClock) -> None:
    """Migration 0008 leaves the rows of existing cases to the first start (the rules live in
    bot/): before it the database has cases and no rows; after it, the sums are the walk's."""
    clock.set(START)
    World(rt, random.Random(4)).walk(clock, 40)
    with rt.db.read() as s:
        assert desk_figures.any_stale(s)  # the database marked every change
    assert figures.catch_up(rt) > 0
    with rt.db.read() as s:
        assert not desk_figures.any_stale(s)
    before = kept_rows(rt.db)
    with rt.db.engine.begin() as conn:  # as migration 0008 leaves a database that had cases
        conn.execute(CaseDepartmentFigures.__table__.delete())  # type: ignore[attr-defined]
        conn.execute(CaseFigures.__table__.delete())  # type: ignore[attr-defined]
    with rt.db.read() as s:
        assert desk_figures.never_filled(s)
    assert fill_figures(rt) == len(before[0]) > 0
    assert fill_figures(rt) == 0  # once
    assert kept_rows(rt.db) == before


def _org_with(tmp_path: Path, old: str, new: str) -> OrgSpec:
    text = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "org.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_org_file(path)


def test_an_import_that_changes_a_calendar_or_claim_limit_derives_those_figures_again(
    rt: Runtime, clock: ManualClock, tmp_path: Path
) -> None:
    """The figures measure working time on the street's calendar and response on its claim
    limit: an import that changes either derives the street's cases again (all of them when the
    district's defaults change); an import that changes neither derives nothing."""
    clock.set(START)
    World(rt, random.Random(5)).walk(clock, 60)
    figures.catch_up(rt)
    with rt.db.read() as s:
        per_street = Counter(c.street_id for c in s.exec(select(Case)))
        hubin = s.exec(select(Street).where(Street.code == "330102002")).one().id
    assert per_street[hubin] > 0 and len(per_street) > 1

    _, _, refigured = import_organisation(rt, load_org_file(DEFAULT_ORG_FILE))
    assert refigured == 0

    before = kept_rows(rt.db)
    slower = _org_with(tmp_path, "claim_minutes: 20 ", "claim_minutes: 1440 ")
    _, _, refigured = import_organisation(rt, slower)
    assert refigured == per_street[hubin]  # that street's cases, no other
    after_import = kept_rows(rt.db)
    assert after_import != before  # a claim late after 20 minutes is in time within a day
    figures.rebuild(dataclasses.replace(rt, cache={}))  # a runtime that never saw the old file
    assert kept_rows(rt.db) == after_import

    with rt.db.read() as s:
        stale_clock = deadlines.street_clock(rt, s, hubin)
    shorter_days = _org_with(
        tmp_path, 'working_hours: ["08:30-12:00", "14:00-18:00"]', 'working_hours: ["09:00-12:00"]'
    )
    _, _, refigured = import_organisation(rt, shorter_days)
    assert refigured == sum(per_street.values())  # the district's calendar: every case
    with rt.db.read() as s:
        assert deadlines.street_clock(rt, s, hubin) != stale_clock  # read again after the import
    after_import = kept_rows(rt.db)
    figures.rebuild(dataclasses.replace(rt, cache={}))
    assert kept_rows(rt.db) == after_import


def test_griddesk_org_import_says_which_figures_it_derived_again(
    rt: Runtime,
    clock: ManualClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's command goes through the same import: it tells how many cases' figures
    followed the new claim limit, and the rows are then those of a fresh rebuild."""
    clock.set(START)
    World(rt, random.Random(6)).walk(clock, 40)
    figures.catch_up(rt)
    with rt.db.read() as s:
        hubin = s.exec(select(Street).where(Street.code == "330102002")).one().id
        in_hubin = len(s.exec(select(Case.id).where(Case.street_id == hubin)).all())
    assert in_hubin > 0
    for key in [k for k in os.environ if k.startswith("GRIDDESK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", rt.db.url)
    monkeypatch.chdir(tmp_path)  # no .env here
    slower = tmp_path / "slower.yaml"
    slower.write_text(
        DEFAULT_ORG_FILE.read_text(encoding="utf-8").replace("claim_minutes: 20 ", "claim_minutes: 1440 ")
    )
    assert cli_main(["org", "import", str(slower)]) == 0
    assert f"the desk's figures of {in_hubin:,} cases derived again" in capsys.readouterr().out
    after_import = kept_rows(rt.db)
    figures.rebuild(dataclasses.replace(rt, cache={}))
    assert kept_rows(rt.db) == after_import
