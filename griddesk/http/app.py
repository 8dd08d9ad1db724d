"""The HTTP application: one Starlette app beside the PTB Application (same process, same
event loop, same runtime and database)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from telegram.error import TelegramError
from telegram.ext import Application

from bot.metrics import HTTP_REQUESTS, REGISTRY
from bot.runtime import Runtime
from griddesk.http import telegram
from griddesk.http.dbmetrics import render_db_metrics

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # no route takes more (Telegram's updates are far smaller; media come by URL)
READY_CACHE_S = 5.0  # /readyz asks the Bot API at most this often
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """Refuse a body over MAX_BODY before reading it (Content-Length) or while reading it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_large(scope)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await too_large(scope)(scope, receive, send)


def too_large(scope: Scope) -> Response:
    from griddesk.http import errors

    return errors.error_response(scope.get("path", ""), 413, "body_too_large", f"the body exceeds {MAX_BODY} bytes")


class Ready:
    """The last answer of the Bot API, kept briefly so a probe every second costs nothing."""

    def __init__(self) -> None:
        self.at = 0.0
        self.ok = False
        self.lock = asyncio.Lock()

    async def bot_api(self, application: Application) -> bool:
        async with self.lock:
            if time.monotonic() - self.at > READY_CACHE_S:
                try:
                    await asyncio.wait_for(application.bot.get_me(), timeout=5)
                    self.ok = True
                except (TelegramError, TimeoutError, OSError):
                    self.ok = False
                self.at = time.monotonic()
            return self.ok


def build_http_app(
    application: Application, *, webhook_path: str | None = None, webhook_secret: str | None = None
) -> Starlette:
    rt: Runtime = application.bot_data["rt"]
    ready = Ready()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.to_thread(rt.db.check)
            database = True
        except Exception:
            log.warning("readiness: the database is unreachable", exc_info=True)
            database = False
        bot_api = await ready.bot_api(application)
        body = {"database": "ok" if database else "unreachable", "bot_api": "ok" if bot_api else "unreachable"}
        return JSONResponse(body, status_code=200 if database and bot_api else 503)

    async def metrics(request: Request) -> Response:
        own = generate_latest(REGISTRY)
        db_part = await asyncio.to_thread(render_db_metrics, rt)
        return Response(own + db_part, media_type=CONTENT_TYPE_LATEST)

    async def telegram_webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not webhook_secret or not hmac.compare_digest(given.encode(), webhook_secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            payload: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return PlainTextResponse("malformed JSON", status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return PlainTextResponse("not an update", status_code=400)
        await telegram.accept_update(application, payload)
        return PlainTextResponse("ok")

    async def openapi(request: Request) -> Response:
        from griddesk.http.openapi import document

        return JSONResponse(document())

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    if webhook_path:
        routes.append(Route("/" + webhook_path.strip("/"), telegram_webhook, methods=["POST"]))
    from griddesk.http import routes as api_routes

    routes.extend(api_routes.all_routes(application))
    app = Starlette(routes=routes, exception_handlers=api_routes.exception_handlers())
    app.add_middleware(CountRequests)
    app.add_middleware(LimitBody)
    app.state.application = application
    return app


class CountRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            HTTP_REQUESTS.labels(_route_label(scope["path"]), str(status)).inc()


def _route_label(path: str) -> str:
    # A bounded label set: the first two segments only (ids and tokens never become labels).
    parts = [p for p in path.split("/") if p][:2]
    if parts[:1] == ["open311"]:
        parts = ["open311"]
    return "/" + "/".join(parts) if parts else "/"
