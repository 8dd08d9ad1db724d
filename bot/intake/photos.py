"""Photos a grid worker sends: validate, read where/when from EXIF, store, strip.

A plain-function domain module (no Telegram objects): the handler downloads the bytes and
calls :func:`process_photo` in a thread (``asyncio.to_thread``); everything here is
CPU-bound, touches no global state and is safe to run from several threads at once.

What gets stored, under a media root, content-addressed by the SHA-256 of the bytes::

    original/ab/abcdef….jpg   the bytes as received, EXIF included (evidence, never sent on)
    jpeg/ab/abcdef….jpg       normalized: upright, RGB, ≤ 2560 px, quality 85, no metadata
    thumb/ab/abcdef….jpg      the same, ≤ 320 px

Only the stripped JPEG and the thumbnail are ever passed on: they carry no EXIF, no GPS, no
camera model, no ICC profile, no comment, no XMP.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePath
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from bot.errors import DomainError

__all__ = [
    "JPEG_MAX_SIDE",
    "JPEG_QUALITY",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "THUMB_MAX_SIDE",
    "BadDimensions",
    "BrokenImage",
    "NotAnImage",
    "PhotoError",
    "PhotoTooLarge",
    "StoredPhoto",
    "absolute",
    "check_size",
    "process_photo",
    "read_exif",
]

MAX_BYTES = 20 * 1024 * 1024  # Telegram bots can download at most 20 MB
MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding
MIN_SIDE = 16  # px
JPEG_MAX_SIDE = 2560
THUMB_MAX_SIDE = 320
JPEG_QUALITY = 85

# Pillow format name -> (extension of the stored original, MIME type).
# MPO is what Pillow calls a phone JPEG carrying extra (depth / preview) frames.
_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
    "HEIF": ("heic", "image/heif"),  # only if a plugin (pillow-heif) registered it
}

# Register every built-in plugin now, once, instead of lazily inside the first calls
# (which may run in several threads at the same time).
Image.init()


# --------------------------------------------------------------------------- errors


class PhotoError(DomainError):
    """A photo we will not take. ``key`` names the localized answer; ``params`` fill it in.

    A :class:`bot.errors.DomainError` (hence an ``Exception``), so the global error handler
    answers with the translated ``key`` if a handler lets one through."""

    key = "photo.error"


class PhotoTooLarge(PhotoError):
    """More than :data:`MAX_BYTES`. Params: ``max_mb``, ``size_mb``."""

    key = "photo.too_large"


class NotAnImage(PhotoError):
    """Pillow cannot identify it, or it is a format we do not accept."""

    key = "photo.not_image"


class BrokenImage(PhotoError):
    """Looks like an image but is truncated or corrupt: it does not decode."""

    key = "photo.broken"


class BadDimensions(PhotoError):
    """0×0, a side under :data:`MIN_SIDE`, or over :data:`MAX_PIXELS` pixels.
    Params: ``min_side``, ``max_megapixels``; ``size`` is (width, height) when known."""

    key = "photo.bad_size"

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        super().__init__(min_side=MIN_SIDE, max_megapixels=MAX_PIXELS // 1_000_000)
        self.size = size


def _too_large(size: int) -> PhotoTooLarge:
    return PhotoTooLarge(max_mb=MAX_BYTES // (1024 * 1024), size_mb=round(size / (1024 * 1024), 1))


def _bad_dimensions(width: int, height: int) -> BadDimensions:
    return BadDimensions((width, height))


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    original_path: Path  # relative to the media root, like the two below
    jpeg_path: Path
    thumb_path: Path
    width: int  # of the normalized JPEG
    height: int
    size_bytes: int  # of the original
    mime: str  # of the original
    taken_at: datetime | None  # aware, UTC
    gps: tuple[float, float] | None  # (lat, lon), decimal degrees


# --------------------------------------------------------------------------- public API


def check_size(file_size: int | None) -> None:
    """Refuse before downloading: Telegram tells ``file_size`` (it may be unknown: None)."""
    if file_size is not None and file_size > MAX_BYTES:
        raise _too_large(file_size)


def absolute(media_root: Path, rel_path: Path | str) -> Path:
    """Where a stored relative path lives on disk. Refuses paths that would leave the root."""
    rel = PurePath(rel_path)
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        raise ValueError(f"not a media path: {str(rel_path)!r}")
    return Path(media_root) / rel


def process_photo(data: bytes, media_root: Path, *, default_tz: ZoneInfo | tzinfo) -> StoredPhoto:
    """Validate ``data``, read its EXIF GPS and capture time, store original + stripped JPEG +
    thumbnail under ``media_root`` and say where.

    Raises :class:`PhotoTooLarge`, :class:`NotAnImage`, :class:`BadDimensions`,
    :class:`BrokenImage` (checked in that order). Storing the same bytes again writes nothing
    and returns the same paths. ``default_tz`` interprets an EXIF time that has no offset.
    """
    data = bytes(data)
    check_size(len(data))

    # A header we can read ourselves says the size before Pillow parses anything.
    sniffed = _sniff_size(data)
    if sniffed is not None:
        width, height = sniffed
        if width == 0 or height == 0 or width * height > MAX_PIXELS:
            raise _bad_dimensions(width, height)

    img = _open(data)
    with img:
        fmt = img.format or ""
        if fmt not in _FORMATS:
            raise NotAnImage()
        width, height = img.size
        if min(width, height) < MIN_SIDE or width * height > MAX_PIXELS:
            raise _bad_dimensions(width, height)

        if fmt in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves at least
            # JPEG_MAX_SIDE: a 48 MP phone photo then costs a quarter of the memory.
            img.draft(None, (JPEG_MAX_SIDE, JPEG_MAX_SIDE))
        _decode(img)

        gps, taken_at = read_exif(img, default_tz=default_tz)

        sha = hashlib.sha256(data).hexdigest()
        ext, mime = _FORMATS[fmt]
        sub = sha[:2]
        original_rel = Path("original") / sub / f"{sha}.{ext}"
        jpeg_rel = Path("jpeg") / sub / f"{sha}.jpg"
        thumb_rel = Path("thumb") / sub / f"{sha}.jpg"
        root = Path(media_root)
        original_abs = absolute(root, original_rel)
        jpeg_abs = absolute(root, jpeg_rel)
        thumb_abs = absolute(root, thumb_rel)

        size = _existing_jpeg_size(jpeg_abs) if original_abs.exists() and thumb_abs.exists() else None
        if size is None:
            normalized = _normalize(img)
            thumb = normalized.copy()
            thumb.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE), Image.Resampling.LANCZOS)
            jpeg_bytes = _encode_jpeg(normalized)
            thumb_bytes = _encode_jpeg(thumb)
            size = normalized.size
            # Derived files first: the fast path above needs all three, and a crash between
            # writes just means the next call makes the missing ones.
            _write_once(jpeg_abs, jpeg_bytes)
            _write_once(thumb_abs, thumb_bytes)
            _write_once(original_abs, data)

    return StoredPhoto(
        sha256=sha,
        original_path=original_rel,
        jpeg_path=jpeg_rel,
        thumb_path=thumb_rel,
        width=size[0],
        height=size[1],
        size_bytes=len(data),
        mime=mime,
        taken_at=taken_at,
        gps=gps,
    )


def read_exif(img: Image.Image, *, default_tz: tzinfo = UTC) -> tuple[tuple[float, float] | None, datetime | None]:
    """``(gps, taken_at)`` from the image's EXIF; either is None when absent or nonsense.

    ``gps`` is (lat, lon) in decimal degrees, negative for S/W; (0, 0), out-of-range values,
    a missing hemisphere or a fix marked void give None. ``taken_at`` is aware UTC, from
    DateTimeOriginal (else DateTimeDigitized, else DateTime) with the matching OffsetTime*
    tag if present, else read as a wall-clock time in ``default_tz``. Never raises.
    """
    try:
        exif = img.getexif()
    except Exception:
        return None, None
    return _gps(exif), _taken_at(exif, default_tz)


# --------------------------------------------------------------------------- validation


def _open(data: bytes) -> Image.Image:
    formats = tuple(name for name in _FORMATS if name in Image.OPEN)
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is only raised when someone runs with warnings as errors.
        raise BadDimensions() from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage() from exc
    except MemoryError:
        raise
    except Exception as exc:
        raise BrokenImage() from exc


def _decode(img: Image.Image) -> None:
    try:
        img.load()
    except MemoryError:
        raise
    except Exception as exc:
        raise BrokenImage() from exc


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _sniff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header without Pillow; None if not one of
    those or not readable. Lets us refuse 0×0 and bomb headers before any decoder runs."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 4 <= len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                    continue
                if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
                    i += 2
                    continue
                if marker in (0xD9, 0xDA):  # end of image / start of scan: no frame seen
                    return None
                if marker in _JPEG_SOF:
                    height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                    return width, height
                (length,) = struct.unpack(">H", data[i + 2 : i + 4])
                if length < 2:
                    return None
                i += 2 + length
    except struct.error:
        return None
    return None


# --------------------------------------------------------------------------- normalizing


def _normalize(img: Image.Image) -> Image.Image:
    """Upright, sRGB, RGB on white, at most JPEG_MAX_SIDE, and a fresh ``info`` (nothing of the
    original's metadata can reach the encoder)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:
        pass
    out = _to_rgb(img)
    out.thumbnail((JPEG_MAX_SIDE, JPEG_MAX_SIDE), Image.Resampling.LANCZOS)
    out.info = {}
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    try:
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        if mode.startswith("I;16") or mode == "I":
            # 16-bit greyscale: scale to 8 bits instead of clipping to white.
            return img.convert("I").point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
        if mode in ("RGB", "CMYK"):
            srgb = _icc_to_srgb(img)
            if srgb is not None:
                return srgb
        return img.convert("RGB")
    except MemoryError:
        raise
    except Exception as exc:
        raise BrokenImage() from exc


def _icc_to_srgb(img: Image.Image) -> Image.Image | None:
    """Convert an image with an embedded colour profile (Display P3, Adobe RGB, a CMYK
    press profile) to sRGB, since the stripped JPEG will not carry the profile."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
            return None
        return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:
        return None


def _encode_jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    clean = img if img.mode == "RGB" else img.convert("RGB")
    clean.info = {}
    # Only pixels: no exif=, icc_profile=, comment= or xmp= are given, and info is empty.
    clean.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- storage


def _existing_jpeg_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path, formats=("JPEG",)) as existing:
            return existing.size
    except Exception:
        return None


def _write_once(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically unless it is there already (content-addressed:
    same name, same content). A temp file in the same folder, fsync, ``os.replace``."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- EXIF

_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME = 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_OFFSET_TIME_DIGITIZED = 0x9012
_GPS_LATITUDE_REF = 0x0001
_GPS_LATITUDE = 0x0002
_GPS_LONGITUDE_REF = 0x0003
_GPS_LONGITUDE = 0x0004
_GPS_STATUS = 0x0009

_TIME_RE = re.compile(r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T]+(\d{1,2}):(\d{1,2}):(\d{1,2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{1,2}):?(\d{2})\s*$")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").strip() or None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _degrees(value: Any) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals -> decimal degrees, or None."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    numbers = [_number(part) for part in parts]
    if any(number is None or number < 0 for number in numbers):
        return None
    degrees, minutes, seconds = (numbers + [0.0, 0.0])[:3]
    if minutes >= 60 or seconds >= 60:
        return None
    return degrees + minutes / 60 + seconds / 3600


def _gps(exif: Image.Exif) -> tuple[float, float] | None:
    try:
        info = exif.get_ifd(_IFD_GPS)
        if not info:
            return None
        status = _text(info.get(_GPS_STATUS))
        if status is not None and status.upper() == "V":  # "measurement void"
            return None
        lat = _degrees(info.get(_GPS_LATITUDE))
        lon = _degrees(info.get(_GPS_LONGITUDE))
        lat_ref = (_text(info.get(_GPS_LATITUDE_REF)) or "").upper()
        lon_ref = (_text(info.get(_GPS_LONGITUDE_REF)) or "").upper()
        if lat is None or lon is None or lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
            return None
        if lat > 90 or lon > 180 or (lat == 0 and lon == 0):
            return None
        return (-lat if lat_ref == "S" else lat, -lon if lon_ref == "W" else lon)
    except Exception:
        return None


def _taken_at(exif: Image.Exif, default_tz: tzinfo) -> datetime | None:
    try:
        try:
            sub = exif.get_ifd(_IFD_EXIF)
        except Exception:
            sub = {}
        candidates = (
            (sub.get(_TAG_DATETIME_ORIGINAL), sub.get(_TAG_OFFSET_TIME_ORIGINAL)),
            (sub.get(_TAG_DATETIME_DIGITIZED), sub.get(_TAG_OFFSET_TIME_DIGITIZED)),
            (exif.get(_TAG_DATETIME), sub.get(_TAG_OFFSET_TIME)),
        )
        for stamp, offset in candidates:
            when = _parse_time(stamp, offset, default_tz)
            if when is not None:
                return when
    except Exception:
        pass
    return None


def _parse_time(stamp: Any, offset: Any, default_tz: tzinfo) -> datetime | None:
    text = _text(stamp)
    if text is None:
        return None
    match = _TIME_RE.match(text)
    if match is None:
        return None
    try:
        naive = datetime(*(int(part) for part in match.groups()))
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None
    if naive.year < 1970:
        return None
    tz = _parse_offset(offset) or default_tz
    try:
        return naive.replace(tzinfo=tz).astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _parse_offset(value: Any) -> timezone | None:
    text = _text(value)
    if text is None:
        return None
    match = _OFFSET_RE.match(text)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)
