"""Every API route and how errors leave them."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from telegram.ext import Application

from griddesk.http.errors import ApiError, error_response


def all_routes(application: Application) -> list[BaseRoute]:
    from griddesk.http import hotline, open311

    return [*open311.routes(application), *hotline.routes(application)]


def exception_handlers() -> dict[Any, Any]:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"Retry-After": exc.code} if exc.status == 429 and exc.code else None
        return error_response(request.url.path, exc.status, exc.code, exc.description, headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(request.url.path, exc.status_code, None, str(exc.detail))

    return {ApiError: api_error, HTTPException: http_error}
