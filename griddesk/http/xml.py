"""GeoReport v2's XML: the same documents as the JSON, element by element."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

# A list under this key holds elements of this name.
ITEM = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


def element(tag: str, value: Any) -> str:
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, bool):
        return f"<{tag}>{'true' if value else 'false'}</{tag}>"
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(element(k, v) for k, v in value.items()) + f"</{tag}>"
    if isinstance(value, list):
        item = ITEM.get(tag, "item")
        return f"<{tag}>" + "".join(element(item, v) for v in value) + f"</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def document(root: str, value: Any) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>' + element(root, value)
