"""Errors in GeoReport v2's format: a list of {code, description}, in JSON or XML by the
path's suffix. 403 a missing or wrong key, 404 an unknown service, jurisdiction or request,
400 everything else (never a framework's 422)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    def __init__(self, status: int, description: str, code: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.code = code


def wants_xml(path: str) -> bool:
    return path.endswith(".xml")


def error_response(path: str, status: int, code: str | None, description: str, headers: dict | None = None) -> Response:
    if wants_xml(path):
        body = (
            '<?xml version="1.0" encoding="utf-8"?><errors><error>'
            f"<code>{status}</code><description>{escape(description)}</description>"
            "</error></errors>"
        )
        return Response(body, status_code=status, media_type="text/xml; charset=utf-8", headers=headers)
    return JSONResponse([{"code": status, "description": description}], status_code=status, headers=headers)


def bad_request(description: str) -> ApiError:
    return ApiError(400, description)


def forbidden(description: str = "a valid api_key is required") -> ApiError:
    return ApiError(403, description)


def not_found(description: str) -> ApiError:
    return ApiError(404, description)
