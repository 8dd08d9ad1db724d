"""Open311 GeoReport v2 under /open311/v2/ (HTTP glue; the rules are bot/interop/open311.py).

Formats by suffix (`.json`, `.xml`; none means JSON). Errors: 403 a missing or wrong
api_key, 404 an unknown service_code, jurisdiction_id or request, 400 the rest (429 when a
key exceeds its rate), always a list of {code, description}.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from telegram.ext import Application

from bot.intake.photos import absolute
from bot.intake.submit import MAX_DESCRIPTION
from bot.interop import apikeys, intake, open311
from bot.interop.apikeys import Client, RateLimiter
from bot.org import index
from bot.runtime import Runtime
from griddesk.http import xml
from griddesk.http.errors import ApiError, bad_request, forbidden, not_found
from handlers.outbox_sender import flush
from storage import external
from storage.models import Case

PREFIX = "/open311/v2"
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000
MAX_IDS = 200
MAX_PARAM = 10_000


def split_format(name: str) -> tuple[str, str]:
    if name.endswith(".xml"):
        return name[:-4], "xml"
    if name.endswith(".json"):
        return name[:-5], "json"
    return name, "json"


def respond(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(xml.document(root, value), status_code=status, media_type="text/xml; charset=utf-8")
    return JSONResponse(value, status_code=status)


async def read_params(request: Request) -> dict[str, list[str]]:
    """Query string and body (form-urlencoded or JSON) as lists of strings, body last."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    if request.method != "POST":
        return params
    raw = await request.body()
    if not raw:
        return params
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8") from None
    if kind == "application/json":
        try:
            body = json.loads(text)
        except ValueError:
            raise bad_request("malformed JSON body") from None
        if not isinstance(body, dict):
            raise bad_request("the JSON body must be an object")
        for key, value in body.items():
            if isinstance(value, dict) and key == "attribute":
                for code, answer in value.items():
                    answers = answer if isinstance(answer, list) else [answer]
                    params.setdefault(f"attribute[{code}]", []).extend("" if a is None else str(a) for a in answers)
            elif isinstance(value, list):
                params.setdefault(key, []).extend("" if v is None else str(v) for v in value)
            else:
                params.setdefault(key, []).append("" if value is None else str(value))
    elif kind in ("application/x-www-form-urlencoded", ""):
        try:
            parsed = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=500)
        except ValueError:
            raise bad_request("malformed form body") from None
        for key, values in parsed.items():
            params.setdefault(key, []).extend(values)
    else:
        raise bad_request("send application/x-www-form-urlencoded or application/json")
    return params


def one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    value = values[-1]
    if len(value) > MAX_PARAM:
        raise bad_request(f"{name} is too long")
    return value


def check_jurisdiction(rt: Runtime, params: dict[str, list[str]]) -> None:
    given = one(params, "jurisdiction_id")
    district = index.org(rt).district
    if given and (district is None or given != district.code):
        raise not_found(f"unknown jurisdiction_id {given}")


def parse_time(rt: Runtime, name: str, value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 date and time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=rt.settings.tz)
    return at


def positive(params: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    raw = one(params, name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise bad_request(f"{name} must be a whole number from 1 to {maximum}")
    return int(raw)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class Open311:
    def __init__(self, application: Application, limiter: RateLimiter | None = None) -> None:
        self.application = application
        self.rt: Runtime = application.bot_data["rt"]
        self.limiter = limiter or RateLimiter()

    # -- routing ------------------------------------------------------------------------

    async def top(self, request: Request) -> Response:
        resource, fmt = split_format(request.path_params["resource"])
        params = await read_params(request)
        check_jurisdiction(self.rt, params)
        lang = open311.language(self.rt, request.headers.get("accept-language"))
        if resource == "discovery" and request.method == "GET":
            return respond(fmt, "discovery", self.discovery(request))
        if resource == "services" and request.method == "GET":
            services = [open311.service(self.rt, c, lang) for c in open311.public_categories(self.rt)]
            return respond(fmt, "services", services)
        if resource == "requests" and request.method == "GET":
            return respond(fmt, "service_requests", await self.find(request, params, lang))
        if resource == "requests" and request.method == "POST":
            return respond(fmt, "service_requests", await self.post(params), status=201)
        raise not_found(f"no such resource: {resource}")

    async def item(self, request: Request) -> Response:
        resource = request.path_params["resource"]
        name, fmt = split_format(request.path_params["item"])
        params = await read_params(request)
        check_jurisdiction(self.rt, params)
        lang = open311.language(self.rt, request.headers.get("accept-language"))
        if resource == "services":
            cat = open311.public_category(self.rt, name)
            if cat is None:
                raise not_found(f"unknown service_code {name}")
            return respond(fmt, "service_definition", open311.definition(cat, lang))
        if resource == "requests":
            found = await asyncio.to_thread(self.views, codes=[name])
            if not found:
                raise not_found(f"unknown service_request_id {name}")
            return respond(
                fmt, "service_requests", [open311.request(self.rt, v, lang, base_url(request)) for v in found]
            )
        if resource == "tokens":
            code = await asyncio.to_thread(self.code_of_token, name)
            if code is None:
                raise not_found("unknown token")
            return respond(fmt, "service_requests", [{"service_request_id": code, "token": name}])
        raise not_found(f"no such resource: {resource}")

    # -- resources -------------------------------------------------------------------------

    def discovery(self, request: Request) -> dict[str, Any]:
        url = base_url(request) + PREFIX + "/"
        return {
            "changeset": open311.iso(self.rt, self.rt.clock.now()),
            "contact": "",
            "key_service": "griddesk apikey create NAME (ask the district's administrator)",
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": url,
                    "changeset": open311.iso(self.rt, self.rt.clock.now()),
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }

    async def find(self, request: Request, params: dict[str, list[str]], lang: str) -> list[dict[str, Any]]:
        ids_raw = one(params, "service_request_id")
        codes = [c.strip() for c in ids_raw.split(",") if c.strip()] if ids_raw else None
        if codes is not None and len(codes) > MAX_IDS:
            raise bad_request(f"at most {MAX_IDS} service_request_id values")
        cats = open311.public_categories(self.rt)
        service = one(params, "service_code")
        if service:
            wanted = {s.strip() for s in service.split(",") if s.strip()}
            by_code = {c.code: c for c in cats}
            missing = sorted(wanted - set(by_code))
            if missing:
                raise not_found(f"unknown service_code {missing[0]}")
            cats = [by_code[c] for c in sorted(wanted)]
        states: tuple[str, ...] | None = None
        status = one(params, "status")
        if status:
            parts = {p.strip() for p in status.split(",") if p.strip()}
            if not parts <= {"open", "closed"}:
                raise bad_request("status must be open or closed")
            states = tuple(st for p in sorted(parts) for st in open311.states_for(p))
        now = self.rt.clock.now()
        start = (
            parse_time(self.rt, "start_date", one(params, "start_date") or "") if one(params, "start_date") else None
        )
        end = parse_time(self.rt, "end_date", one(params, "end_date") or "") if one(params, "end_date") else None
        if codes is None:  # the spec's defaults apply to a search, not to a list of ids
            if end is None:
                end = now
            if start is None:
                start = end - timedelta(days=DEFAULT_DAYS)
        if start is not None and end is not None and start > end:
            raise bad_request("start_date is after end_date")
        street_id = None
        street_code = one(params, "street")
        if street_code:
            street = next((st for st in index.org(self.rt).streets.values() if st.code == street_code), None)
            if street is None:
                raise not_found(f"unknown street {street_code}")
            street_id = street.id
        page_size = positive(params, "page_size", MAX_REQUESTS, MAX_REQUESTS)
        page = positive(params, "page", 1, 1_000_000)
        views = await asyncio.to_thread(
            self.views,
            codes=codes,
            category_ids=[c.id for c in cats if c.id is not None],
            states=states,
            street_id=street_id,
            since=start,
            until=end,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        notes: dict[tuple[str, Any, Any], str] = {}
        base = base_url(request)
        return [open311.request(self.rt, v, lang, base, notes) for v in views]

    def views(
        self,
        *,
        codes: list[str] | None = None,
        category_ids: list[int] | None = None,
        states: tuple[str, ...] | None = None,
        street_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = MAX_REQUESTS,
        offset: int = 0,
    ) -> list[open311.RequestView]:
        if category_ids is None:
            category_ids = [c.id for c in open311.public_categories(self.rt) if c.id is not None]
        with self.rt.db.read() as s:
            found = external.find_requests(
                s,
                category_ids=category_ids,
                codes=codes,
                states=states,
                street_id=street_id,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )
            dupes = external.codes_of(s, [c.duplicate_of_id for c in found if c.duplicate_of_id])
        return [
            open311.RequestView(c, c.photo_id, dupes.get(c.duplicate_of_id) if c.duplicate_of_id else None)
            for c in found
        ]

    def code_of_token(self, token: str) -> str | None:
        if len(token) > 64:
            return None
        with self.rt.db.read() as s:
            case = external.case_of_token(s, token)
            if case is None:
                return None
            cat = index.org(self.rt).category(case.category_id)
            return case.code if cat is not None and cat.public else None

    def authorize(self, key: str | None) -> Client:
        found = apikeys.client(self.rt, key)
        if found is None:
            raise forbidden()
        wait = self.limiter.check(found.id)
        if wait is not None:
            raise ApiError(429, "too many requests for this api_key; slow down", code=str(max(1, round(wait))))
        return found

    async def post(self, params: dict[str, list[str]]) -> list[dict[str, Any]]:
        client = await asyncio.to_thread(self.authorize, one(params, "api_key"))
        code = one(params, "service_code")
        if not code:
            raise bad_request("service_code is required")
        cat = open311.public_category(self.rt, code)
        if cat is None:
            raise not_found(f"unknown service_code {code}")
        lat, lon, address = one(params, "lat"), one(params, "long"), one(params, "address_string")
        if lat is None and lon is None:
            if not address:
                raise bad_request("lat and long (or address_string) are required")
            point = intake.geocode(self.rt, address)
            if point is None:
                raise bad_request("address_string names no grid or community we know; send lat and long")
            lat, lon = str(point[0]), str(point[1])
        try:
            latitude, longitude = intake.coordinates(lat, lon)
        except intake.Refused as exc:
            raise bad_request(exc.description) from None
        description = one(params, "description") or ""
        if len(description) > MAX_DESCRIPTION:
            raise bad_request(f"description is longer than {MAX_DESCRIPTION} characters")
        media_url = one(params, "media_url")
        if media_url and (not media_url.startswith(("http://", "https://")) or len(media_url) > 2000):
            raise bad_request("media_url must be an http(s) URL")
        answers: dict[str, list[str]] = {}
        for key, values in params.items():
            if key.startswith("attribute[") and "]" in key:
                answers.setdefault(key[len("attribute[") : key.index("]")], []).extend(values)
        try:
            checked = open311.check_attributes(cat, answers)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if media_url:
            checked["media_url"] = media_url  # kept for staff, never fetched nor shown back
        report = intake.Incoming(
            source=intake.OPEN311,
            api_key_id=client.id,
            category=cat,
            latitude=latitude,
            longitude=longitude,
            description=description,
            address=(address or None) and address[:500],
            attributes=checked,
        )
        try:
            accepted = await asyncio.to_thread(intake.submit, self.rt, report)
        except intake.Refused as exc:
            raise ApiError(exc.status, exc.description) from None
        await flush(self.application)
        return [
            {"service_request_id": accepted.code, "token": accepted.token, "service_notice": "", "account_id": None}
        ]

    async def media(self, request: Request) -> Response:
        name = request.path_params["name"]
        media_id, _, signature = name.removesuffix(".jpg").partition("-")
        if not media_id.isdigit() or len(media_id) > 18:
            raise not_found("no such media")
        expected = open311.media_signature(self.rt, int(media_id))
        if not hmac.compare_digest(expected, signature):
            raise not_found("no such media")
        path = await asyncio.to_thread(self.public_jpeg, int(media_id))
        if path is None:
            raise not_found("no such media")
        return FileResponse(path, media_type="image/jpeg")

    def public_jpeg(self, media_id: int) -> str | None:
        with self.rt.db.read() as s:
            row = external.media(s, media_id)
            case = s.get(Case, row.case_id) if row else None
        if row is None or case is None or not row.jpeg_path:
            return None
        cat = index.org(self.rt).category(case.category_id)
        if cat is None or not cat.public:
            return None
        return str(absolute(self.rt.settings.media_dir, row.jpeg_path))


def routes(application: Application) -> list[BaseRoute]:
    api = Open311(application)
    return [
        Route(PREFIX + "/media/{name}", api.media, methods=["GET"]),
        Route(PREFIX + "/{resource}", api.top, methods=["GET", "POST"]),
        Route(PREFIX + "/{resource}/{item}", api.item, methods=["GET"]),
    ]
