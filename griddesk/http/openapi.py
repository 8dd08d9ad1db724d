"""An OpenAPI 3.0 description of our own routes (served at /openapi.json; the tests fuzz
the API from it with schemathesis)."""

from __future__ import annotations

from typing import Any

ERRORS = {"$ref": "#/components/schemas/Errors"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "errors", "content": {"application/json": {"schema": ERRORS}}} for c in codes}


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


JURISDICTION = {"name": "jurisdiction_id", "in": "query", "required": False, "schema": {"type": "string"}}
LANG = {"name": "Accept-Language", "in": "header", "required": False, "schema": {"type": "string"}}
REQUESTS = {"type": "array", "items": {"$ref": "#/components/schemas/ServiceRequest"}}


def _q(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}


def document() -> dict[str, Any]:
    nullable_str = {"type": "string", "nullable": True}
    return {
        "openapi": "3.0.3",
        "info": {"title": "GridDesk HTTP API", "version": "1"},
        "paths": {
            "/healthz": {"get": {"responses": {"200": _json({"type": "object"})}}},
            "/open311/v2/discovery.json": {
                "get": {"parameters": [JURISDICTION], "responses": {"200": _json({"type": "object"}), **_errors(404)}}
            },
            "/open311/v2/services.json": {
                "get": {
                    "parameters": [JURISDICTION, LANG],
                    "responses": {
                        "200": _json({"type": "array", "items": {"$ref": "#/components/schemas/Service"}}),
                        **_errors(404),
                    },
                }
            },
            "/open311/v2/services/{service_code}.json": {
                "get": {
                    "parameters": [
                        {"name": "service_code", "in": "path", "required": True, "schema": {"type": "string"}},
                        JURISDICTION,
                        LANG,
                    ],
                    "responses": {"200": _json({"type": "object"}), **_errors(400, 404)},
                }
            },
            "/open311/v2/requests.json": {
                "get": {
                    "parameters": [
                        JURISDICTION,
                        LANG,
                        _q("service_request_id"),
                        _q("service_code"),
                        _q("start_date", {"type": "string", "format": "date-time"}),
                        _q("end_date", {"type": "string", "format": "date-time"}),
                        _q("status", {"type": "string", "enum": ["open", "closed"]}),
                        _q("street"),
                        _q("page", {"type": "integer", "minimum": 1}),
                        _q("page_size", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    ],
                    "responses": {"200": _json(REQUESTS), **_errors(400, 404)},
                },
                "post": {
                    "parameters": [_q("api_key")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {"$ref": "#/components/schemas/NewRequest"}
                            },
                            "application/json": {"schema": {"$ref": "#/components/schemas/NewRequest"}},
                        },
                    },
                    "responses": {
                        "201": _json({"type": "array", "items": {"type": "object"}}),
                        **_errors(400, 403, 404, 413, 429),
                    },
                },
            },
            "/open311/v2/requests/{service_request_id}.json": {
                "get": {
                    "parameters": [
                        {"name": "service_request_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        JURISDICTION,
                        LANG,
                    ],
                    "responses": {"200": _json(REQUESTS), **_errors(400, 404)},
                }
            },
            "/open311/v2/tokens/{token}.json": {
                "get": {
                    "parameters": [
                        {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                        JURISDICTION,
                    ],
                    "responses": {"200": _json({"type": "array", "items": {"type": "object"}}), **_errors(400, 404)},
                }
            },
            "/intake/12345": {
                "post": {
                    "parameters": [
                        {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ticket"}}},
                    },
                    "responses": {
                        "200": _json({"type": "object"}),
                        "201": _json({"type": "object"}),
                        **_errors(400, 403, 404, 413, 429),
                    },
                }
            },
            "/intake/12345/{code}/rating-link": {
                "get": {
                    "parameters": [
                        {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json({"type": "object"}), **_errors(400, 403, 404, 429)},
                }
            },
        },
        "components": {
            "schemas": {
                "Errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["code", "description"],
                        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
                    },
                },
                "Service": {
                    "type": "object",
                    "required": ["service_code", "service_name", "metadata", "type", "keywords", "group"],
                    "properties": {
                        "service_code": {"type": "string"},
                        "service_name": {"type": "string"},
                        "description": {"type": "string"},
                        "metadata": {"type": "boolean"},
                        "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
                        "keywords": {"type": "string"},
                        "group": {"type": "string"},
                    },
                },
                "ServiceRequest": {
                    "type": "object",
                    "required": ["service_request_id", "status"],
                    "properties": {
                        "service_request_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["open", "closed"]},
                        "status_notes": {"type": "string"},
                        "service_code": {"type": "string"},
                        "media_url": nullable_str,
                        "expected_datetime": nullable_str,
                    },
                },
                "NewRequest": {
                    "type": "object",
                    "properties": {
                        "api_key": {"type": "string"},
                        "jurisdiction_id": {"type": "string"},
                        "service_code": {"type": "string"},
                        "lat": {"type": "number"},
                        "long": {"type": "number"},
                        "address_string": {"type": "string"},
                        "description": {"type": "string"},
                        "media_url": {"type": "string"},
                    },
                },
                "Ticket": {
                    "type": "object",
                    "required": ["ticket_no", "category", "description"],
                    "properties": {
                        "ticket_no": {"type": "string"},
                        "category": {"type": "string"},
                        "address": {"type": "string"},
                        "lat": {"type": "number"},
                        "lon": {"type": "number"},
                        "description": {"type": "string"},
                        "deadline": {"type": "string", "format": "date-time"},
                        "caller": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
                        },
                    },
                },
            }
        },
    }
