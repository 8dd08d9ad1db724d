"""Tiny image factories for tests: real JPEG/PNG bytes made with Pillow.

Photos in GridDesk carry evidence (where and when a problem was seen), so the tests need
JPEGs whose EXIF really contains GPS and capture time, written the way cameras write them
(GPS in its own IFD 0x8825, capture time in the Exif IFD 0x8769), so that the project's
reader (``Image.getexif().get_ifd(0x8825)``) is exercised as it would be on a phone photo.
"""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction

from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

# EXIF tag numbers (see the EXIF 2.32 spec / PIL.ExifTags.GPS and PIL.ExifTags.Base).
_GPS_VERSION_ID = 0x0000
_GPS_LATITUDE_REF = 0x0001
_GPS_LATITUDE = 0x0002
_GPS_LONGITUDE_REF = 0x0003
_GPS_LONGITUDE = 0x0004
_IFD0_DATETIME = 0x0132
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME_DIGITIZED = 0x9004

EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as the (degrees, minutes, seconds) rationals EXIF stores.

    Seconds keep 1/10000 precision (~3 mm), like phone cameras, so a round trip through
    ``get_ifd(0x8825)`` gives back the input to ~1e-7 degrees.
    """
    value = abs(value)
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    seconds = Fraction(round((minutes_full - minutes) * 60 * 10000), 10000)
    return (
        IFDRational(degrees, 1),
        IFDRational(minutes, 1),
        IFDRational(seconds.numerator, seconds.denominator),
    )


def dms_to_degrees(dms: tuple[float, float, float], ref: str) -> float:
    """Inverse of the EXIF encoding, for tests that want to check what they wrote."""
    degrees = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    return -degrees if ref in ("S", "W") else degrees


def _exif(exif_gps: tuple[float, float] | None, exif_time: datetime | str | None) -> Image.Exif:
    exif = Image.Exif()
    if exif_gps is not None:
        lat, lon = exif_gps
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"not a coordinate: {exif_gps!r}")
        # Assigning a dict to the GPSInfo tag makes Pillow write a real sub-IFD.
        exif[ExifTags.IFD.GPSInfo] = {
            _GPS_VERSION_ID: b"\x02\x03\x00\x00",
            _GPS_LATITUDE_REF: "N" if lat >= 0 else "S",
            _GPS_LATITUDE: _dms(lat),
            _GPS_LONGITUDE_REF: "E" if lon >= 0 else "W",
            _GPS_LONGITUDE: _dms(lon),
        }
    if exif_time is not None:
        stamp = exif_time.strftime(EXIF_TIME_FORMAT) if isinstance(exif_time, datetime) else exif_time
        exif[_IFD0_DATETIME] = stamp
        exif[ExifTags.IFD.Exif] = {
            _EXIF_DATETIME_ORIGINAL: stamp,
            _EXIF_DATETIME_DIGITIZED: stamp,
        }
    return exif


def _canvas(width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (width, height), color)
    # A diagonal stripe so the picture is not uniform (JPEG of a flat colour is degenerate
    # enough that some decoders/thumbnailers treat it specially).
    for i in range(min(width, height)):
        image.putpixel((i, i), (255 - color[0], 255 - color[1], 255 - color[2]))
    return image


def make_jpeg(
    width: int = 800,
    height: int = 600,
    exif_gps: tuple[float, float] | None = None,
    exif_time: datetime | str | None = None,
    *,
    color: tuple[int, int, int] = (40, 120, 200),
    quality: int = 85,
) -> bytes:
    """A real JPEG. ``exif_gps=(lat, lon)`` writes the GPS IFD; ``exif_time`` (datetime, or an
    EXIF string ``"YYYY:MM:DD HH:MM:SS"``) writes DateTime/DateTimeOriginal (no time zone, as
    cameras do)."""
    buffer = io.BytesIO()
    image = _canvas(width, height, color)
    exif = _exif(exif_gps, exif_time)
    if len(exif):
        image.save(buffer, format="JPEG", quality=quality, exif=exif.tobytes())
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def make_png(width: int = 640, height: int = 480, *, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    _canvas(width, height, color).save(buffer, format="PNG")
    return buffer.getvalue()


def corrupt_jpeg() -> bytes:
    """Starts like a JPEG (SOI + APP0 marker) but is garbage after that: sniffers that only
    look at magic bytes think it is a JPEG, Pillow cannot open it."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(7, 250)) * 4


def truncated_jpeg(width: int = 800, height: int = 600) -> bytes:
    """A JPEG cut in half: Pillow opens the header (so size is known) but ``load()`` fails."""
    data = make_jpeg(width, height)
    return data[: len(data) // 2]


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if Pillow can fully decode ``data``, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except Exception:
        return None


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    """The (r, g, b) of one pixel of an RGB(A) image (Pillow types ``getpixel`` loosely)."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple) and len(pixel) >= 3, f"not an RGB pixel at {xy}: {pixel!r}"
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def rgb_colours(image: Image.Image) -> list[tuple[int, tuple[int, int, int]]]:
    """``getcolors`` of an RGB(A) image as (count, (r, g, b)) pairs ([] if none)."""
    out: list[tuple[int, tuple[int, int, int]]] = []
    for count, colour in image.getcolors(maxcolors=image.width * image.height) or []:
        assert isinstance(colour, tuple) and len(colour) >= 3, f"not an RGB colour: {colour!r}"
        out.append((count, (int(colour[0]), int(colour[1]), int(colour[2]))))
    return out
