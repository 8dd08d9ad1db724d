"""Open311 GeoReport v2 over httpx: services, requests found and posted, the spec's errors,
privacy, and a POST that becomes a case a team claims in Telegram."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from sqlmodel import select
from telegram.ext import Application

from bot.intake.submit import PhotoIn, ReportIn, submit_report
from bot.interop import apikeys
from bot.org import index
from bot.runtime import Runtime
from griddesk.http.app import build_http_app
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import Case, Category, ExternalTicket
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.rows import fetch
from tests.test_claim import join_directly

GRID = "33010200100101"  # 清波街道, the command room decides
BASE = "/open311/v2"


@pytest.fixture
async def http(app: Application) -> AsyncIterator[httpx.AsyncClient]:
    asgi = build_http_app(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://griddesk.test") as client:
        yield client


@pytest.fixture
def key(rt: Runtime) -> str:
    return apikeys.create(rt, "fixmystreet")


def point(db: Database) -> dict[str, str]:
    lat, lon = grid_centre(db, GRID)
    return {"lat": str(lat), "long": str(lon)}


async def test_services_list_only_public_categories(http: httpx.AsyncClient) -> None:
    services = (await http.get(f"{BASE}/services.json")).json()
    codes = {s["service_code"] for s in services}
    assert "ROAD-DAMAGE" in codes and "SECURITY-HAZARD" in codes
    assert not codes & {"SECURITY-KEY-PERSON", "SECURITY-GATHERING", "SECURITY-FRAUD"}
    road = next(s for s in services if s["service_code"] == "ROAD-DAMAGE")
    assert road["service_name"] == "道路破损" and road["type"] == "realtime" and road["metadata"] is True
    assert "坑洼" in road["keywords"].split(",")
    english = (await http.get(f"{BASE}/services.json", headers={"Accept-Language": "en-GB,en;q=0.8"})).json()
    assert next(s for s in english if s["service_code"] == "ROAD-DAMAGE")["service_name"] == "Damaged road or pavement"
    tree = ET.fromstring((await http.get(f"{BASE}/services.xml")).text)
    assert tree.tag == "services" and tree.find("service/service_code") is not None
    definition = (await http.get(f"{BASE}/services/ROAD-DAMAGE.json")).json()
    assert definition["attributes"][0]["code"] == "SIZE"
    assert [v["key"] for v in definition["attributes"][0]["values"]] == ["small", "medium", "large"]
    hidden = await http.get(f"{BASE}/services/SECURITY-KEY-PERSON.xml")
    assert hidden.status_code == 404 and ET.fromstring(hidden.text).findtext("error/code") == "404"
    assert (await http.get(f"{BASE}/discovery.json")).json()["endpoints"][0]["formats"]


async def test_jurisdiction(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{BASE}/services.json?jurisdiction_id=330102")).status_code == 200
    assert (await http.get(f"{BASE}/services.json?jurisdiction_id=")).status_code == 200  # empty means absent
    wrong = await http.get(f"{BASE}/services.json?jurisdiction_id=110101")
    assert wrong.status_code == 404 and wrong.json()[0]["code"] == 404


async def test_post_errors_follow_the_spec(http: httpx.AsyncClient, key: str, db: Database, rt: Runtime) -> None:
    where = point(db)
    no_key = await http.post(f"{BASE}/requests.json", data={"service_code": "ROAD-DAMAGE", **where})
    assert no_key.status_code == 403 and no_key.json()[0]["code"] == 403
    wrong = await http.post(f"{BASE}/requests.xml", data={"api_key": "gd_nope", "service_code": "ROAD-DAMAGE"})
    assert wrong.status_code == 403 and ET.fromstring(wrong.text).tag == "errors"
    cases = [
        ({"service_code": "NO-SUCH", **where}, 404),
        ({"service_code": "SECURITY-KEY-PERSON", **where}, 404),  # not public: as if unknown
        ({**where}, 400),
        ({"service_code": "ROAD-DAMAGE"}, 400),
        ({"service_code": "ROAD-DAMAGE", "address_string": "清波街道"}, 400),  # a street alone is too coarse
        ({"service_code": "ROAD-DAMAGE", "lat": "north", "long": "120"}, 400),
        ({"service_code": "ROAD-DAMAGE", "lat": "91", "long": "120"}, 400),
        ({"service_code": "ROAD-DAMAGE", "lat": "39.9", "long": "116.4"}, 400),  # Beijing: outside every grid
        ({"service_code": "ROAD-DAMAGE", **where, "attribute[SIZE]": "huge"}, 400),
        ({"service_code": "ROAD-DAMAGE", **where, "attribute[COLOUR]": "red"}, 400),
        ({"service_code": "ROAD-DAMAGE", **where, "media_url": "file:///etc/passwd"}, 400),
        ({"service_code": "ROAD-DAMAGE", **where, "description": "x" * 8001}, 400),
        ({"service_code": "ROAD-DAMAGE", **where, "jurisdiction_id": "999"}, 404),
    ]
    for fields, status in cases:
        answer = await http.post(f"{BASE}/requests.json", data={"api_key": key, **fields})
        assert answer.status_code == status, (fields, answer.text)
        assert answer.json()[0]["code"] == status and answer.json()[0]["description"]
    malformed = await http.post(
        f"{BASE}/requests.json?api_key={key}",
        content=b'{"service_code": ',
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()[0]["code"] == 400
    odd = await http.post(f"{BASE}/requests.json", content=b"<x/>", headers={"content-type": "text/xml"})
    assert odd.status_code == 400
    with db.session() as s:
        assert s.exec(select(Case)).first() is None  # nothing refused became a case


async def test_searching_requests_refuses_bad_filters(http: httpx.AsyncClient) -> None:
    for query, status in [
        ("start_date=yesterday", 400),
        ("status=pending", 400),
        ("service_code=NO-SUCH", 404),
        ("page=0", 400),
        ("page_size=5000", 400),
        ("start_date=2026-11-20T00:00:00Z&end_date=2026-11-01T00:00:00Z", 400),
    ]:
        answer = await http.get(f"{BASE}/requests.json?{query}")
        assert answer.status_code == status, (query, answer.text)
        assert answer.json()[0]["code"] == status
    assert (await http.get(f"{BASE}/requests.json?page=99")).json() == []  # past the end: nothing
    assert (await http.get(f"{BASE}/requests/QB-000000-0001.json")).status_code == 404
    assert (await http.get(f"{BASE}/tokens/nope.json")).status_code == 404
    assert (await http.get(f"{BASE}/nothing.json")).status_code == 404


async def test_rate_limit_per_key(app: Application, key: str, db: Database, rt: Runtime) -> None:
    from griddesk.http import open311 as glue

    api = glue.Open311(app, limiter=apikeys.RateLimiter(limit=2, window_s=60))
    api.authorize(key)
    api.authorize(key)
    with pytest.raises(glue.ApiError) as refused:
        api.authorize(key)
    assert refused.value.status == 429
    other = apikeys.create(rt, "hotline")
    api.authorize(other)  # another key has its own budget


async def test_a_posted_request_is_claimed_in_telegram_and_followed(
    http: httpx.AsyncClient,
    key: str,
    app: Application,
    tg: FakeTelegram,
    admin: FakeUser,
    rt: Runtime,
    db: Database,
) -> None:
    dispatcher = tg.user(9002, "指挥员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    room = await bound_group(tg, admin, -100901, "QB-CMD")
    team = await bound_group(tg, admin, -100902, "QB-ZF")
    join_directly(rt, 9100, "执法一", "staff", "QB-ZF")
    staff = tg.user(9100, "执法一", language_code="zh-hans")

    posted = await http.post(
        f"{BASE}/requests.json",
        data={
            "api_key": key,
            "service_code": "ROAD-DAMAGE",
            **point(db),
            "description": "人行道地砖松动，老人差点绊倒",
            "attribute[SIZE]": "medium",
            "email": "someone@example.org",
            "first_name": "Ada",
            "phone": "13800000000",
        },
    )
    assert posted.status_code == 201, posted.text
    [answer] = posted.json()
    code, token = answer["service_request_id"], answer["token"]
    with db.session() as s:
        case = s.exec(select(Case).where(Case.code == code)).one()
        ticket = s.exec(select(ExternalTicket).where(ExternalTicket.case_id == case.id)).one()
    assert case.source == "open311" and case.reporter_user_id is None and case.state == "reported"
    assert ticket.attributes == {"SIZE": "medium"} and ticket.token == token
    await drain(app)
    card = room.last_message()
    assert code in (card.caption if card.caption else card.body)
    assert (await http.get(f"{BASE}/tokens/{token}.json")).json() == [{"service_request_id": code, "token": token}]

    shown = (await http.get(f"{BASE}/requests/{code}.json")).json()[0]
    assert shown["status"] == "open" and shown["status_notes"] == "已受理，等待派遣"
    assert shown["service_code"] == "ROAD-DAMAGE" and shown["description"].startswith("人行道")
    assert "Ada" not in str(shown) and "13800000000" not in str(shown) and "example.org" not in str(shown)

    await dispatcher.press(card, buttons(card)[0][0], chat=room)
    team_card = team.last_message()
    await staff.press(team_card, "🙋 认领", chat=team)
    with db.session() as s:
        assert fetch(s, Case, case.id).state == "claimed"
    english = await http.get(f"{BASE}/requests/{code}.json", headers={"Accept-Language": "en"})
    assert english.json()[0]["status_notes"].endswith("is working on it")
    listed = (await http.get(f"{BASE}/requests.json?status=open&service_code=ROAD-DAMAGE")).json()
    assert [r["service_request_id"] for r in listed] == [code]
    assert (await http.get(f"{BASE}/requests.json?status=closed")).json() == []
    by_id = ET.fromstring((await http.get(f"{BASE}/requests.xml?service_request_id={code},QB-000000-0009")).text)
    assert by_id.tag == "service_requests" and by_id.findtext("request/service_request_id") == code


async def test_private_categories_and_photos(http: httpx.AsyncClient, rt: Runtime, db: Database) -> None:
    from bot.intake import photos as pipeline

    lat, lon = grid_centre(db, GRID)
    known = index.org(rt)
    grid = next(g for g in known.grids.values() if g.code == GRID)
    with db.session() as s:
        secret = s.exec(select(Category).where(Category.code == "SECURITY-KEY-PERSON")).one()
        road = s.exec(select(Category).where(Category.code == "ROAD-DAMAGE")).one()
    kept = pipeline.process_photo(make_jpeg(exif_gps=(30.25, 120.17)), rt.settings.media_dir, default_tz=rt.settings.tz)
    stored = PhotoIn(
        "file-1",
        kept.sha256,
        str(kept.original_path),
        str(kept.jpeg_path),
        str(kept.thumb_path),
        kept.width,
        kept.height,
    )
    hidden = submit_report(
        rt,
        ReportIn(None, "patrol", lat, lon, grid.id, secret.id, "某重点人员失联", photos=()),  # type: ignore[arg-type]
    )
    visible = submit_report(
        rt,
        ReportIn(None, "patrol", lat, lon, grid.id, road.id, "路面塌陷", photos=(stored,)),  # type: ignore[arg-type]
    )
    listed = (await http.get(f"{BASE}/requests.json")).json()
    assert [r["service_request_id"] for r in listed] == [visible.code]
    assert (await http.get(f"{BASE}/requests/{hidden.code}.json")).status_code == 404
    url = listed[0]["media_url"]
    assert url and "/open311/v2/media/" in url
    photo = await http.get(url.replace("http://griddesk.test", ""))
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert not Image.open(io.BytesIO(photo.content)).getexif()  # the EXIF-free JPEG, never the original
    forged = url.replace("http://griddesk.test", "")[:-8] + "00000000.jpg"
    assert (await http.get(forged)).status_code == 404


async def test_address_string_is_located_by_grid_or_community(
    http: httpx.AsyncClient, key: str, db: Database, rt: Runtime
) -> None:
    from bot.interop.intake import geocode

    assert geocode(rt, "劳动路社区第1网格 3 号楼下") == grid_centre(db, GRID)
    assert geocode(rt, "某市某路") is None
    posted = await http.post(
        f"{BASE}/requests.json",
        data={"api_key": key, "service_code": "ROAD-DAMAGE", "address_string": "杭州市劳动路社区第1网格 3 号楼下"},
    )
    assert posted.status_code == 201, posted.text
    code = posted.json()[0]["service_request_id"]
    shown = (await http.get(f"{BASE}/requests/{code}.json")).json()[0]
    assert shown["address"] == "杭州市劳动路社区第1网格 3 号楼下"
    with db.session() as s:
        case = s.exec(select(Case).where(Case.code == code)).one()
    assert (case.latitude, case.longitude) == grid_centre(db, GRID)
    community = await http.post(
        f"{BASE}/requests.json", data={"api_key": key, "service_code": "ROAD-DAMAGE", "address_string": "劳动路社区"}
    )
    assert community.status_code == 201, community.text
