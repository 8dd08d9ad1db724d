"""The 12345 hotline: a ticket becomes a case, travels the whole loop in Telegram, and the
hotline hears of every step through signed webhooks; the caller stays private."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlmodel import select
from telegram.ext import Application

from bot.clock import ManualClock
from bot.interop import apikeys, webhooks
from bot.runtime import Runtime
from griddesk.http.app import build_http_app
from griddesk.webhook_sender import TRANSPORT_KEY, deliver_now
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import Case, ExternalTicket
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.rows import fetch
from tests.test_claim import join_directly
from tests.test_webhooks import QB, Receiver, subscribe

GRID = "33010200100101"


@pytest.fixture
async def http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_http_app(app)), base_url="http://gd.test"
    ) as c:
        yield c


def ticket(db: Database, **over: object) -> dict:
    lat, lon = grid_centre(db, GRID)
    body = {
        "ticket_no": "12345-20261123-0042",
        "category": "路面坑洼",
        "address": "清波街道河坊街 18 号门口",
        "lat": lat,
        "lon": lon,
        "description": "市民来电：门口路面坑洼，已有电动车摔倒",
        "caller": {"name": "王女士", "phone": "13912345678"},
    }
    body.update(over)
    return body


async def test_bad_tickets_are_refused(http: httpx.AsyncClient, rt: Runtime, db: Database) -> None:
    key = apikeys.create(rt, "hotline")
    auth = {"Authorization": f"Bearer {key}"}
    assert (await http.post("/intake/12345", json=ticket(db))).status_code == 403
    assert (
        await http.post("/intake/12345", json=ticket(db), headers={"Authorization": "Bearer nope"})
    ).status_code == 403
    assert (
        await http.post("/intake/12345", json=ticket(db), headers={"Authorization": f"Basic {key}"})
    ).status_code == 403
    for body, status in [
        (ticket(db, ticket_no=None), 400),
        (ticket(db, category="完全无关的话"), 404),
        (ticket(db, lat=None), 400),
        (ticket(db, lat="north"), 400),
        (ticket(db, lat=True), 400),
        (ticket(db, lat=39.9, lon=116.4), 400),  # outside every grid
        (ticket(db, deadline="tomorrow"), 400),
        (ticket(db, caller="王女士"), 400),
        (ticket(db, description=None), 400),
        (ticket(db, ticket_no="x" * 65), 400),
        ([1, 2], 400),
    ]:
        answer = await http.post("/intake/12345", json=body, headers=auth)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()[0]["code"] == status
    malformed = await http.post("/intake/12345", content=b"{", headers={**auth, "content-type": "application/json"})
    assert malformed.status_code == 400
    with db.session() as s:
        assert s.exec(select(Case)).first() is None


async def test_a_ticket_travels_the_whole_loop(
    http: httpx.AsyncClient,
    app: Application,
    tg: FakeTelegram,
    admin: FakeUser,
    rt: Runtime,
    db: Database,
    clock: ManualClock,
) -> None:
    sub = subscribe(rt, scope=QB)
    receiver = Receiver(sub.secret, clock)
    app.bot_data[TRANSPORT_KEY] = httpx.MockTransport(receiver)
    dispatcher = tg.user(9002, "指挥员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    room = await bound_group(tg, admin, -100901, "QB-CMD")
    team = await bound_group(tg, admin, -100902, "QB-ZF")
    join_directly(rt, 9100, "执法一", "staff", "QB-ZF")
    owner = tg.user(9100, "执法一", language_code="zh-hans")
    key = apikeys.create(rt, "hotline")
    auth = {"Authorization": f"Bearer {key}"}

    # 1. the ticket, with a deadline earlier than the category's three days
    deadline = (clock.now() + timedelta(hours=20)).isoformat()
    made = await http.post("/intake/12345", json=ticket(db, deadline=deadline), headers=auth)
    assert made.status_code == 201, made.text
    code = made.json()["case_code"]
    assert made.json() == {"case_code": code, "service_request_id": code}
    again = await http.post("/intake/12345", json=ticket(db, description="重复推送"), headers=auth)
    assert again.status_code == 200 and again.json()["case_code"] == code  # idempotent on ticket_no
    with db.session() as s:
        case = s.exec(select(Case).where(Case.code == code)).one()
        row = s.exec(select(ExternalTicket)).one()
    assert case.source == "hotline" and case.reporter_user_id is None
    assert row.caller_phone == "13912345678" and row.ticket_no == "12345-20261123-0042"
    await drain(app)
    card = room.last_message()
    assert code in card.body and "13912345678" not in card.body and "王女士" not in card.body

    # 2. dispatched: the hotline's deadline wins over the category's (ROAD-DAMAGE: 3 days)
    await dispatcher.press(card, buttons(card)[0][0], chat=room)
    with db.session() as s:
        due = fetch(s, Case, case.id).due_at
    assert due == datetime.fromisoformat(deadline)
    team_card = team.last_message()
    assert "13912345678" not in team_card.body and "王女士" not in team_card.body

    # 3. the caller's contact: dispatchers see it in /case, the team does not
    await dispatcher.send(f"/case {code}")
    assert "13912345678" in dispatcher.last_text() and "王女士" in dispatcher.last_text()
    await owner.send(f"/case {code}")
    assert "13912345678" not in owner.last_text()

    # 4. claim, resolve with the after photo, the command room confirms
    await owner.press(team_card, "🙋 认领", chat=team)
    await owner.press(team.message(team_card.message_id), "✅ 处置完毕", chat=team)
    await owner.send_photo(make_jpeg(color=(30, 200, 30)), caption="坑洼已修补")
    await owner.press(owner.last_message(), "✅ 完成")
    verify = room.last_message()
    await dispatcher.press(verify, buttons(verify)[0][0], chat=room)
    with db.session() as s:
        assert fetch(s, Case, case.id).state == "closed"

    # 5. the hotline heard every step, signed and verifiable, nothing personal in it
    await deliver_now(app)
    assert [e["event"] for e in receiver.events] == [
        "case.created",
        "case.dispatched",
        "case.claimed",
        "case.resolved",
        "case.closed",
    ]
    assert receiver.refused == 0
    assert all(e["case"]["ticket_no"] == "12345-20261123-0042" for e in receiver.events)
    assert "13912345678" not in json.dumps(receiver.events, ensure_ascii=False)
    open311 = (await http.get(f"/open311/v2/requests/{code}.json")).json()[0]
    assert open311["status"] == "closed" and "13912345678" not in json.dumps(open311, ensure_ascii=False)

    # 6. a rating link for the caller, through the API; only for this client's own tickets
    link = await http.get(f"/intake/12345/{code}/rating-link", headers=auth)
    assert link.status_code == 200 and link.json()["url"].startswith("https://t.me/GridDeskTestBot?start=rate-")
    other = apikeys.create(rt, "another-hotline")
    refused = await http.get(f"/intake/12345/{code}/rating-link", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 404
    assert (await http.get("/intake/12345/QB-000000-0000/rating-link", headers=auth)).status_code == 404
    assert webhooks.verify(sub.secret, webhooks.sign(sub.secret, 1, b"x"), b"x", now=1)
