"""Optional base tiles under /map: only when the operator sets GRIDDESK_MAP_TILE_URL (an XYZ
template with {z}, {x} and {y}); off by default, and any failure leaves the map as it is
drawn offline. Tiles are Web Mercator; over a district's few kilometres they are placed
linearly in latitude (the error is far below a pixel at these zooms)."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable

import httpx
from PIL import Image

log = logging.getLogger(__name__)
TILE = 256
MAX_TILES = 16  # at most 4 × 4 tiles a map
TIMEOUT_S = 5.0


def fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=TIMEOUT_S, headers={"User-Agent": "GridDesk (/map base tiles)"})
    response.raise_for_status()
    return response.content


def _x(lon: float, n: int) -> float:
    return (lon + 180.0) / 360.0 * n


def _y(lat: float, n: int) -> float:
    return (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n


def _lat(y: float, n: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))


def base(
    template: str,
    lon_min: float,
    lon_max: float,
    lat_min: float,
    lat_max: float,
    get: Callable[[str], bytes] | None = None,
) -> tuple[Image.Image, tuple[float, float, float, float]] | None:
    """The stitched tiles covering the box and their extent (left, right, bottom, top), or None."""
    get = get or fetch
    try:
        for z in range(18, -1, -1):
            n = 2**z
            x0, x1 = int(_x(lon_min, n)), int(_x(lon_max, n))
            y0, y1 = int(_y(lat_max, n)), int(_y(lat_min, n))
            if (x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES:
                break
        canvas = Image.new("RGB", ((x1 - x0 + 1) * TILE, (y1 - y0 + 1) * TILE), "white")
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                tile = Image.open(io.BytesIO(get(template.format(z=z, x=x, y=y)))).convert("RGB")
                canvas.paste(tile.resize((TILE, TILE)), ((x - x0) * TILE, (y - y0) * TILE))
    except Exception as exc:  # a tile server's trouble never stops the map
        log.warning("no base tiles for /map: %s", exc)
        return None
    extent = (x0 / n * 360.0 - 180.0, (x1 + 1) / n * 360.0 - 180.0, _lat(y1 + 1, n), _lat(y0, n))
    return canvas, extent
