"""The 12345 hotline's intake: `POST /intake/12345` turns a ticket into a case (source
hotline, routed and dispatched like any report); `GET /intake/12345/{case_code}/rating-link`
gives the hotline system a rating link to send its caller. `Authorization: Bearer <api key>`."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from telegram.ext import Application

from bot.errors import DomainError
from bot.intake.submit import MAX_DESCRIPTION
from bot.interop import apikeys, intake
from bot.interop.apikeys import Client, RateLimiter
from bot.rating import ratings
from bot.runtime import Runtime
from griddesk.http.errors import ApiError, bad_request, forbidden, not_found
from handlers.outbox_sender import flush
from storage import cases, external
from storage.models import CaseSource, pk


def _text(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 500) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} is required")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise bad_request(f"{name} must be a string")
    text = str(value).strip()
    if len(text) > limit:
        raise bad_request(f"{name} is longer than {limit} characters")
    return text


class Hotline:
    def __init__(self, application: Application, limiter: RateLimiter | None = None) -> None:
        self.application = application
        self.rt: Runtime = application.bot_data["rt"]
        self.limiter = limiter or RateLimiter(limit=600)

    def authorize(self, request: Request) -> Client:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        found = apikeys.client(self.rt, key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise forbidden("Authorization: Bearer <api key> is required")
        wait = self.limiter.check(found.id)
        if wait is not None:
            raise ApiError(429, "too many requests for this key; slow down", code=str(max(1, round(wait))))
        return found

    async def post(self, request: Request) -> Response:
        client = await asyncio.to_thread(self.authorize, request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise bad_request("send application/json")
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise bad_request("malformed JSON body") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        ticket_no = _text(body, "ticket_no", required=True, limit=64)
        assert ticket_no is not None
        seen = await asyncio.to_thread(intake.existing_ticket, self.rt, api_key_id=client.id, ticket_no=ticket_no)
        if seen is not None:  # idempotent: the same ticket is the same case
            return JSONResponse({"case_code": seen.code, "service_request_id": seen.code}, status_code=200)
        words = _text(body, "category", required=True, limit=200)
        assert words is not None
        category = intake.category_for(self.rt, words)
        if category is None:
            raise not_found(f"no category matches {words!r}")
        address = _text(body, "address")
        given_lat, given_lon = body.get("lat"), body.get("lon")
        if given_lat is None and given_lon is None and address:
            point = intake.geocode(self.rt, address)
            if point is None:
                raise bad_request("the address names no grid or community we know; send lat and lon")
            given_lat, given_lon = point
        if given_lat is None or given_lon is None:
            raise bad_request("lat and lon (or an address naming a grid or community) are required")
        if isinstance(given_lat, bool) or isinstance(given_lon, bool):
            raise bad_request("lat and lon must be numbers")
        try:
            lat, lon = intake.coordinates(given_lat, given_lon)
        except intake.Refused as exc:
            raise bad_request(exc.description) from None
        description = _text(body, "description", required=True, limit=MAX_DESCRIPTION)
        deadline = None
        raw_deadline = _text(body, "deadline", limit=64)
        if raw_deadline:
            try:
                deadline = datetime.fromisoformat(raw_deadline.replace("Z", "+00:00"))
            except ValueError:
                raise bad_request("deadline must be an ISO 8601 date and time") from None
            if deadline.tzinfo is None:
                deadline = deadline.replace(tzinfo=self.rt.settings.tz)
        caller = body.get("caller") or {}
        if not isinstance(caller, dict):
            raise bad_request("caller must be an object {name, phone}")
        report = intake.Incoming(
            source=CaseSource.HOTLINE,
            api_key_id=client.id,
            category=category,
            latitude=lat,
            longitude=lon,
            description=description or "",
            address=address,
            ticket_no=ticket_no,
            caller_name=_text(caller, "name", limit=100),
            caller_phone=_text(caller, "phone", limit=32),
            deadline=deadline,
        )
        try:
            accepted = await asyncio.to_thread(intake.submit, self.rt, report)
        except intake.Refused as exc:
            raise ApiError(exc.status, exc.description) from None
        except IntegrityError:  # the same ticket, twice at once: the first one won
            seen = await asyncio.to_thread(intake.existing_ticket, self.rt, api_key_id=client.id, ticket_no=ticket_no)
            if seen is None:
                raise
            return JSONResponse({"case_code": seen.code, "service_request_id": seen.code}, status_code=200)
        await flush(self.application)
        return JSONResponse({"case_code": accepted.code, "service_request_id": accepted.code}, status_code=201)

    async def rating_link(self, request: Request) -> Response:
        client = await asyncio.to_thread(self.authorize, request)
        code = request.path_params["code"][:32]
        if not await asyncio.to_thread(self._ours, client.id, code):
            raise not_found(f"unknown case {code}")
        try:
            made = await asyncio.to_thread(ratings.make_link, self.rt, person=None, code=code)
        except DomainError as exc:
            raise bad_request(f"no rating link for this case ({exc.key})") from None
        return JSONResponse(
            {"case_code": made.code, "url": made.link, "expires_at": made.expires_at.isoformat(timespec="seconds")}
        )

    def _ours(self, api_key_id: int, code: str) -> bool:
        """A client may ask only about the cases it sent."""
        with self.rt.db.read() as s:
            case = cases.get_case_by_code(s, code)
            ticket = external.ticket_of_case(s, pk(case)) if case is not None else None
        return ticket is not None and ticket.api_key_id == api_key_id


def routes(application: Application) -> list[BaseRoute]:
    api = Hotline(application)
    return [
        Route("/intake/12345", api.post, methods=["POST"]),
        Route("/intake/12345/{code}/rating-link", api.rating_link, methods=["GET"]),
    ]
