"""The HTTP app: health, readiness, metrics and Telegram's webhook route, driven by httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select
from telegram.ext import Application

from griddesk import inbox
from griddesk.http.app import SECRET_HEADER, build_http_app
from storage.models import InboxUpdate
from tests.fakebot import FakeTelegram, FakeUser

SECRET = "hook-secret_1"


@pytest.fixture
async def http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = build_http_app(app, webhook_path="/telegram/hook", webhook_secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://griddesk.test") as client:
        yield client


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"database": "ok", "bot_api": "ok"}


async def test_metrics_count_updates_and_read_the_database(
    http: httpx.AsyncClient, tg: FakeTelegram, admin: FakeUser
) -> None:
    await admin.send("/whoami")
    text = (await http.get("/metrics")).text
    assert 'griddesk_updates_total{kind="message"}' in text
    assert "griddesk_handler_seconds_bucket" in text
    assert "griddesk_outbox_depth 0.0" in text
    assert 'griddesk_open_cases{state="reported"} 0.0' in text
    assert "griddesk_overdue_cases 0.0" in text
    assert "griddesk_telegram_429_total" in text


UPDATE = {
    "update_id": 77,
    "message": {
        "message_id": 1,
        "date": 1764000000,
        "text": "/start",
        "chat": {"id": 4242, "type": "private", "first_name": "Li"},
        "from": {"id": 4242, "is_bot": False, "first_name": "Li"},
    },
}


async def test_telegram_webhook_checks_the_secret_then_stores(http: httpx.AsyncClient, app: Application) -> None:
    rt = app.bot_data["rt"]

    def stored() -> list[InboxUpdate]:
        with rt.db.read() as s:
            return list(s.exec(select(InboxUpdate)))

    assert (await http.post("/telegram/hook", json=UPDATE)).status_code == 403
    assert (await http.post("/telegram/hook", json=UPDATE, headers={SECRET_HEADER: "wrong"})).status_code == 403
    bad = await http.post("/telegram/hook", content=b"{not json", headers={SECRET_HEADER: SECRET})
    assert bad.status_code == 400
    assert stored() == []
    ok = await http.post("/telegram/hook", json=UPDATE, headers={SECRET_HEADER: SECRET})
    assert ok.status_code == 200
    # Answered only once stored (the inbox), then handled; Telegram's retry of it is a no-op.
    again = await http.post("/telegram/hook", json=UPDATE, headers={SECRET_HEADER: SECRET})
    assert again.status_code == 200
    await inbox.wait_idle(app)
    rows = stored()
    assert [r.update_id for r in rows] == [77] and rows[0].payload["message"]["text"] == "/start"
    assert rows[0].processed_at is not None


async def test_oversized_bodies_are_refused(http: httpx.AsyncClient) -> None:
    big = b"x" * (1024 * 1024 + 1)
    answer = await http.post("/telegram/hook", content=big, headers={SECRET_HEADER: SECRET})
    assert answer.status_code == 413
    assert answer.json()[0]["code"] == 413
