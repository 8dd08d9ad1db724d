"""Outbound webhooks: events written with the change, signed deliveries a receiver can
verify, retries with backoff, a failing subscriber paused and the administrators told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import col, select
from telegram.ext import Application

from bot.clock import ManualClock
from bot.intake.submit import ReportIn, submit_report
from bot.interop import apikeys, webhooks
from bot.org import index
from bot.runtime import Runtime
from griddesk import interop_cli
from griddesk.cli import _parser
from griddesk.http.app import build_http_app
from griddesk.webhook_sender import TRANSPORT_KEY, deliver_now
from storage import webhooks as subscription_rows
from storage.db import Database
from storage.models import Category, WebhookEvent, WebhookSubscription
from tests.conftest import ADMIN_ID
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.rows import fetch
from tests.test_claim import join_directly

GRID = "33010200100101"
QB = "330102001"


class Receiver:
    """A subscriber's endpoint, verifying what it is sent as the docs tell receivers to."""

    def __init__(self, secret: str, clock: ManualClock, status: int = 200) -> None:
        self.secret, self.clock, self.status = secret, clock, status
        self.events: list[dict] = []
        self.refused = 0
        self.seen: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = request.content
        ok = webhooks.verify(self.secret, request.headers.get(webhooks.HEADER), raw, now=self.clock.now().timestamp())
        if not ok:
            self.refused += 1
            return httpx.Response(400)
        if self.status != 200:
            return httpx.Response(self.status)
        body = json.loads(raw)
        if body["id"] not in self.seen:  # de-duplicated by the event id
            self.seen.add(body["id"])
            self.events.append(body)
        return httpx.Response(204)


def subscribe(
    rt: Runtime, scope: str = QB, events: list[str] | None = None, url: str = "https://hook.test/in"
) -> WebhookSubscription:
    with rt.db.session() as s:
        return webhooks.subscribe(rt, s, url=url, scope_code=scope, events=events, now=rt.clock.now())


def file_case(rt: Runtime, db: Database, category: str = "ROAD-DAMAGE") -> str:
    lat, lon = grid_centre(db, GRID)
    grid = next(g for g in index.org(rt).grids.values() if g.code == GRID)
    with db.session() as s:
        cat = s.exec(select(Category).where(Category.code == category)).one()
    return submit_report(rt, ReportIn(None, "patrol", lat, lon, grid.id, cat.id, "路面塌陷", photos=())).code  # type: ignore[arg-type]


def test_signatures_and_the_replay_window() -> None:
    raw = b'{"id":"e1"}'
    header = webhooks.sign("s3cret", 1_700_000_000, raw)
    assert header.startswith("t=1700000000,v1=")
    assert webhooks.verify("s3cret", header, raw, now=1_700_000_100)
    assert not webhooks.verify("s3cret", header, raw, now=1_700_000_000 + 301)  # replayed too late
    assert not webhooks.verify("other", header, raw, now=1_700_000_100)  # forged
    assert not webhooks.verify("s3cret", header, raw + b" ", now=1_700_000_100)  # body changed
    assert not webhooks.verify("s3cret", "t=abc,v1=00", raw, now=1_700_000_100)
    assert not webhooks.verify("s3cret", None, raw, now=1_700_000_100)


def test_subscriptions_are_checked(rt: Runtime) -> None:
    with pytest.raises(webhooks.BadSubscription):
        subscribe(rt, scope="NOWHERE")
    with pytest.raises(webhooks.BadSubscription):
        subscribe(rt, events=["case.exploded"])
    with pytest.raises(webhooks.BadSubscription):
        subscribe(rt, url="ftp://x")


def test_events_go_with_the_change_and_not_without_it(rt: Runtime, db: Database) -> None:
    sub = subscribe(rt)
    other_street = subscribe(rt, scope="330102002", url="https://other.test/in")
    district_closed_only = subscribe(rt, scope="330102", events=["case.closed"])
    file_case(rt, db)
    file_case(rt, db, "SECURITY-KEY-PERSON")  # not public: nobody outside hears of it
    with db.session() as s:
        rows = s.exec(select(WebhookEvent)).all()
    assert [(r.subscription_id, r.event) for r in rows] == [(sub.id, "case.created")]
    assert other_street.id and district_closed_only.id

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.session() as s:  # a change that rolls back sends nothing
        case = s.exec(select(WebhookEvent)).first()
        assert case is not None
        from storage.models import Case

        webhooks.case_event(rt, s, fetch(s, Case, case.case_id), webhooks.RESOLVED, rt.clock.now())
        raise Boom()
    with db.session() as s:
        assert len(s.exec(select(WebhookEvent)).all()) == 1


def test_who_listens_is_kept_a_few_seconds_and_another_process_is_heard_within_them(
    rt: Runtime, db: Database, clock: ManualClock
) -> None:
    """Every change asks who listens to its street: a process keeps the answer for
    LISTENERS_TTL. Its own subscriptions count at once; one the command line adds (another
    process, which cannot tell this one) counts once that time has passed."""
    asked: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM webhooksubscription" in statement:
            asked.append(statement)

    here = subscribe(rt)
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        file_case(rt, db)
        file_case(rt, db)
        assert len(asked) == 1  # the second change asked nobody
        with db.session() as s:  # the command line's process adds a subscriber
            there = subscription_rows.add_subscription(
                s, WebhookSubscription(url="https://cli.test/in", scope_code=QB, secret="x" * 64)
            )
        file_case(rt, db)  # within the time: not yet heard of
        clock.advance(webhooks.LISTENERS_TTL)
        file_case(rt, db)
        assert len(asked) == 2
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    with db.session() as s:
        rows = s.exec(select(WebhookEvent).order_by(col(WebhookEvent.id))).all()
    assert [r.subscription_id for r in rows] == [here.id, here.id, here.id, here.id, there.id]


@pytest.fixture
async def http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_http_app(app)), base_url="http://gd.test"
    ) as c:
        yield c


async def test_a_case_loop_arrives_signed_in_order(
    http: httpx.AsyncClient,
    app: Application,
    tg: FakeTelegram,
    admin: FakeUser,
    rt: Runtime,
    db: Database,
    clock: ManualClock,
) -> None:
    sub = subscribe(rt)
    receiver = Receiver(sub.secret, clock)
    app.bot_data[TRANSPORT_KEY] = httpx.MockTransport(receiver)
    dispatcher = tg.user(9002, "指挥员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    room = await bound_group(tg, admin, -100901, "QB-CMD")
    team = await bound_group(tg, admin, -100902, "QB-ZF")
    join_directly(rt, 9100, "执法一", "staff", "QB-ZF")
    staff = tg.user(9100, "执法一", language_code="zh-hans")
    key = apikeys.create(rt, "fms")
    lat, lon = grid_centre(db, GRID)
    posted = await http.post(
        "/open311/v2/requests.json", data={"api_key": key, "service_code": "ROAD-DAMAGE", "lat": lat, "long": lon}
    )
    code = posted.json()[0]["service_request_id"]
    from handlers.outbox_sender import drain

    await drain(app)
    card = room.last_message()
    await dispatcher.press(card, buttons(card)[0][0], chat=room)
    await staff.press(team.last_message(), "🙋 认领", chat=team)
    await deliver_now(app)  # (the running sender, woken by each change, may have posted them already)
    assert [e["event"] for e in receiver.events] == ["case.created", "case.dispatched", "case.claimed"]
    assert all(e["case"]["service_request_id"] == code for e in receiver.events)
    assert receiver.events[-1]["case"]["status"] == "open" and receiver.events[-1]["case"]["state"] == "claimed"
    assert receiver.refused == 0 and len({e["id"] for e in receiver.events}) == 3
    await deliver_now(app)
    assert len(receiver.events) == 3  # each event once


async def test_a_failing_subscriber_is_retried_then_paused(
    app: Application, tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database, clock: ManualClock
) -> None:
    await admin.send("/start")
    sub = subscribe(rt)
    receiver = Receiver(sub.secret, clock, status=500)
    app.bot_data[TRANSPORT_KEY] = httpx.MockTransport(receiver)
    file_case(rt, db)
    assert await deliver_now(app) == 0
    with db.session() as s:
        row = s.exec(select(WebhookEvent)).one()
        first_retry = row.next_attempt_at
    assert row.state == "pending" and row.attempts == 1 and first_retry == clock.now() + timedelta(seconds=5)
    assert await deliver_now(app) == 0  # not due yet: nothing tried
    for _ in range(webhooks.PAUSE_AFTER_FAILURES - 1):
        clock.advance(timedelta(hours=1))
        await deliver_now(app)
    with db.session() as s:
        sub_now = fetch(s, WebhookSubscription, sub.id)
        row = s.exec(select(WebhookEvent)).one()
    assert sub_now.paused_at is not None and row.attempts == webhooks.PAUSE_AFTER_FAILURES
    from handlers.outbox_sender import drain

    await drain(app)
    assert "暂停" in admin.last_text() and str(sub.id) in admin.last_text()
    clock.advance(timedelta(hours=1))
    assert await deliver_now(app) == 0  # paused: nothing is tried
    receiver.status = 200
    with db.session() as s:
        from storage import webhooks as store

        store.resume(s, subscription_id=sub.id, now=clock.now())  # type: ignore[arg-type]
    await deliver_now(app)
    assert [e["event"] for e in receiver.events] == ["case.created"]


def test_cli_add_list_remove(rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(
        ["webhook", "add", "https://district.example/hook", "--scope", QB, "--events", "case.created,case.closed"]
    )
    assert interop_cli.run(rt.settings, args) == 0
    out = capsys.readouterr().out
    assert "secret" in out and "case.closed,case.created" in out
    assert interop_cli.run(rt.settings, _parser().parse_args(["webhook", "list"])) == 0
    listed = capsys.readouterr().out
    assert "active" in listed and "https://district.example/hook" in listed
    sub_id = listed.split("\t")[0]
    assert interop_cli.run(rt.settings, _parser().parse_args(["webhook", "remove", sub_id])) == 0
    assert interop_cli.run(rt.settings, _parser().parse_args(["webhook", "list"])) == 0
    assert "removed" in capsys.readouterr().out
    bad = _parser().parse_args(["webhook", "add", "https://x.example", "--scope", "NOPE"])
    assert interop_cli.run(rt.settings, bad) == 2
    assert interop_cli.run(rt.settings, _parser().parse_args(["apikey", "create", "hotline"])) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("gd_")
    assert interop_cli.run(rt.settings, _parser().parse_args(["apikey", "create", "hotline"])) == 2
    assert ADMIN_ID


def test_subscriptions_declared_in_the_organisation_file(
    rt: Runtime, db: Database, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.org.org_file import DEFAULT_ORG_FILE, OrgFileError, load_org_file
    from storage.org_import import OrgImportRefused, import_org

    base = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    declared = base + (
        "\nwebhooks:\n"
        "  - url: https://platform.example/griddesk\n"
        '    scope: "330102"\n'
        "    events: [case.closed, case.created]\n"
        "    secret_env: PLATFORM_HOOK_SECRET\n"
    )
    path = tmp_path / "org.yaml"
    path.write_text(declared, encoding="utf-8")
    spec = load_org_file(path)
    with pytest.raises(OrgImportRefused, match="PLATFORM_HOOK_SECRET"), db.session() as s:
        import_org(s, spec)
    monkeypatch.setenv("PLATFORM_HOOK_SECRET", "from-the-environment")
    with db.session() as s:
        report = import_org(s, spec)
    assert report.created["webhook"] == 1
    with db.session() as s:
        again = import_org(s, spec)  # idempotent
        [row] = s.exec(select(WebhookSubscription)).all()
    assert again.created["webhook"] == 0 and row.secret == "from-the-environment" and row.origin == "org"
    assert row.events == ["case.closed", "case.created"] and row.scope_code == "330102"
    path.write_text(base, encoding="utf-8")  # removed from the file: deactivated
    with db.session() as s:
        gone = import_org(s, load_org_file(path))
        assert s.exec(select(WebhookSubscription)).one().active is False
    assert gone.deactivated["webhook"] == 1
    path.write_text(declared.replace('scope: "330102"', 'scope: "999"'), encoding="utf-8")
    with pytest.raises(OrgFileError, match="neither a street nor the district"):
        load_org_file(path)
    path.write_text(declared.replace("case.closed,", "case.exploded,"), encoding="utf-8")
    with pytest.raises(OrgFileError, match="case.exploded"):
        load_org_file(path)


def test_an_overdue_case_is_an_event_once(rt: Runtime, db: Database, clock: ManualClock) -> None:
    from bot.cases import deadlines, lifecycle
    from storage.models import Case, Unit

    subscribe(rt, events=["case.overdue"])
    code = file_case(rt, db)
    with db.session() as s:
        case = s.exec(select(Case).where(Case.code == code)).one()
        team = s.exec(select(Unit).where(Unit.code == "QB-ZF")).one()
        lifecycle.dispatch_to(rt, s, case, team, None, clock.now())
    clock.advance(timedelta(days=10))
    deadlines.sweep(rt)
    clock.advance(timedelta(days=10))
    deadlines.sweep(rt)  # higher rungs: no second overdue event
    with db.session() as s:
        events = [(r.event, r.body["case"]["service_request_id"]) for r in s.exec(select(WebhookEvent)).all()]
    assert events == [("case.overdue", code)]


async def test_a_rating_is_an_event(
    app: Application, tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database, clock: ManualClock
) -> None:
    from types import SimpleNamespace

    from tests import test_rating as rating_steps

    worker = tg.user(9501, "网格员甲", language_code="zh-hans")
    dispatcher = tg.user(9502, "调度员乙", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", QB)
    room = await bound_group(tg, admin, -100951, "QB-CMD")
    team = await bound_group(tg, admin, -100952, "QB-ZF")
    join_directly(rt, 9510, "执法丙", "staff", "QB-ZF")
    staff = tg.user(9510, "执法丙", language_code="zh-hans")
    w = SimpleNamespace(tg=tg, db=db, rt=rt, worker=worker, dispatcher=dispatcher, room=room, team=team, staff=staff)
    sub = subscribe(rt, events=["case.rated", "case.closed"])
    receiver = Receiver(sub.secret, clock)
    app.bot_data[TRANSPORT_KEY] = httpx.MockTransport(receiver)
    lin = tg.user(9550, "Ms Lin", language_code="en")
    case = await rating_steps.report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await rating_steps.close_residents_case(w, case)
    await lin.press(lin.last_message(), "🙁")
    await deliver_now(app)
    assert [e["event"] for e in receiver.events] == ["case.closed", "case.rated"]
    assert receiver.events[1]["rating"] == {"level": 2} and "Lin" not in json.dumps(receiver.events)
