"""Photos a grid worker sends: validate, read where/when from EXIF, store, strip.

A plain-function domain module (no Telegram objects, no global state). The handler downloads
the bytes and runs :func:`process_photo` in a small process pool (``handlers/media.py``), so
decoding holds neither the event loop, the database's threads nor the GIL; the function is
top-level and its arguments, results and errors pickle, as a spawned worker needs. It is as
safe to call directly, from any number of threads at once.

What gets stored, under a media root, content-addressed by the SHA-256 of the bytes::

    original/ab/abcdef….jpg   the bytes as received, EXIF included (evidence, never sent on)
    jpeg/ab/abcdef….jpg       normalized: upright, RGB, ≤ 1600 px, quality 85, no metadata
    thumb/ab/abcdef….jpg      the same, ≤ 320 px, made from the normalized one

Only the stripped JPEG and the thumbnail are ever passed on: they carry no EXIF, no GPS, no
camera model, no ICC profile, no comment, no XMP.

Memory: what one call may hold is bounded before anything is decoded. Headers are read first
(ours, then Pillow's); a JPEG decodes at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode) so its
size barely matters, but PNG, WebP, TIFF, GIF and BMP decode at full size, so each of those
formats has a pixel budget (:data:`MAX_DECODED_PIXELS`), and so do JPEGs that libjpeg must
buffer whole (progressive or multi-scan). A big decoded image is converted and shrunk band by
band, never copied whole.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageCms,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
)

try:
    from PIL import WebPImagePlugin
except ImportError:  # a Pillow built without libwebp
    WebPImagePlugin = None  # type: ignore[assignment]

from bot.errors import DomainError

__all__ = [
    "BUFFERED_JPEG_BUDGET",
    "JPEG_MAX_SIDE",
    "JPEG_QUALITY",
    "MAX_BYTES",
    "MAX_DECODED_PIXELS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "THUMB_MAX_SIDE",
    "BadDimensions",
    "BrokenImage",
    "NotAnImage",
    "PhotoError",
    "PhotoTooLarge",
    "StoredPhoto",
    "TooManyPixels",
    "absolute",
    "check_size",
    "process_photo",
    "read_exif",
]

MAX_BYTES = 20 * 1024 * 1024  # Telegram bots can download at most 20 MB
MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding
MIN_SIDE = 16  # px
JPEG_MAX_SIDE = 1600  # longest side of the normalized JPEG
THUMB_MAX_SIDE = 320
JPEG_QUALITY = 85

# What one decode may hold is kept to ~180 MB (a photo worker's own ~25 MB included), so the
# pool's two workers plus the bot stay under 600 MB whatever ten people send at once
# (benchmarks/photo_pipeline.py measures it). A JPEG decodes at a reduced scale, so pixels
# cost it little; these formats decode at full size, and each gets the pixels that fit,
# measured with Pillow 13: PNG, TIFF, BMP and GIF cost up to 4 bytes a pixel (Pillow keeps
# RGB as 4 bytes), 36 MP (6000 × 6000) ~145 MB; WebP costs ~15 bytes a pixel (libwebp's
# animation decoder keeps two canvases, Pillow copies the frame out and in), 11 MP ~170 MB.
MAX_DECODED_PIXELS: dict[str, int] = {
    "PNG": 36_000_000,
    "TIFF": 36_000_000,
    "BMP": 36_000_000,
    "GIF": 36_000_000,
    "HEIF": 36_000_000,
    "WEBP": 11_000_000,
}
# A progressive (or multi-scan) JPEG decodes from a buffer of every DCT coefficient of the
# whole image, whatever the draft scale: 2 bytes × 64 per 8×8 block and component, i.e. 3 bytes
# a pixel for 4:2:0 (42 MP fit), 6 for 4:4:4 (21 MP). Those are refused above this many bytes.
BUFFERED_JPEG_BUDGET = 128_000_000

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
_DRAFTABLE = ("JPEG", "MPO")
_BAND_ROWS = 64  # rows converted at a time when a big decoded image is shrunk

# The plugins of the formats we take are registered by these imports, now and once, not lazily
# inside the first calls (which may run in several threads at the same time); Image.open is
# only ever asked for registered formats, so it never loads the other plugins (a photo worker
# process stays ~4 MB smaller).
_PLUGINS: tuple[ModuleType, ...] = (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin)
_PLUGINS += (TiffImagePlugin, *([WebPImagePlugin] if WebPImagePlugin is not None else []))


# --------------------------------------------------------------------------- errors


class PhotoError(DomainError):
    """A photo we will not take. ``key`` names the localized answer; ``params`` fill it in.

    A :class:`bot.errors.DomainError` (hence an ``Exception``), so the global error handler
    answers with the translated ``key`` if a handler lets one through. Pickles (a pool
    worker raises it in another process)."""

    key = "photo.error"

    def __reduce__(self) -> tuple[Any, ...]:
        # DomainError's constructor takes keywords only, so the default (cls(*args)) cannot
        # rebuild it; rebuild from the attributes instead (params, size, ...).
        return (_rebuild_error, (type(self), self.__dict__.copy()))


def _rebuild_error(cls: type[PhotoError], state: dict[str, Any]) -> PhotoError:
    error = cls.__new__(cls)
    Exception.__init__(error, f"{cls.key} {state.get('params', {})}")
    error.__dict__.update(state)
    return error


class StorageFull(PhotoError):
    """The media disk is full (or refuses writes): nothing the sender can fix."""

    key = "photo.storage_full"


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

    def __init__(self, size: tuple[int, int] | None = None, *, max_megapixels: int | None = None) -> None:
        super().__init__(
            min_side=MIN_SIDE, max_megapixels=MAX_PIXELS // 1_000_000 if max_megapixels is None else max_megapixels
        )
        self.size = size


class TooManyPixels(BadDimensions):
    """Over the decoded-size budget of its format (:data:`MAX_DECODED_PIXELS`, or
    :data:`BUFFERED_JPEG_BUDGET`): answered like :class:`BadDimensions`, with that format's
    limit as ``max_megapixels``."""


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


def process_photo(
    data: bytes | bytearray | memoryview, media_root: Path | str, *, default_tz: ZoneInfo | tzinfo
) -> StoredPhoto:
    """Validate ``data``, read its EXIF GPS and capture time, store original + stripped JPEG +
    thumbnail under ``media_root`` and say where.

    Raises :class:`PhotoTooLarge`, :class:`NotAnImage`, :class:`BadDimensions` (including
    :class:`TooManyPixels`), :class:`BrokenImage` (checked in that order). Storing the same
    bytes again decodes and writes nothing and returns the same paths. ``default_tz``
    interprets an EXIF time that has no offset.
    """
    data = bytes(data)
    check_size(len(data))

    # A header we can read ourselves says the size before Pillow parses anything.
    sniffed = _sniff(data)
    if sniffed is not None:
        _check_dimensions(*sniffed, data)

    img = _open(data)
    try:
        fmt = img.format or ""
        if fmt not in _FORMATS:
            raise NotAnImage()
        width, height = img.size
        if min(width, height) < MIN_SIDE:
            raise _bad_dimensions(width, height)
        _check_dimensions(fmt, width, height, data)

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

        # Stored before (same bytes, so validated before): nothing to decode or write.
        size = _stored_size(original_abs, len(data), jpeg_abs, thumb_abs)
        if size is not None:
            gps, taken_at = read_exif(img, default_tz=default_tz)
        else:
            target = _fit(width, height, JPEG_MAX_SIDE)
            if fmt in _DRAFTABLE and target != (width, height):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: the box has the photo's own
                # aspect ratio, so the largest scale that still gives at least the target is
                # taken (a square box would never scale a 4:3 photo: 3000 // 1600 = 1).
                img.draft("RGB", target)
            _decode(img)
            gps, taken_at = read_exif(img, default_tz=default_tz)
            orientation = _orientation(img)
            shrunk = _shrink(img, target)
    finally:
        # Free the decoded pixels (and a WebP decoder's canvases) now: only the shrunk image
        # is left. Leaving a ``with`` block would close the file, not the pixels.
        img.close()
        del img

    if size is None:
        normalized = _finish(shrunk, target, orientation)
        del shrunk
        thumb = normalized.resize(_fit(*normalized.size, THUMB_MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
        size = normalized.size
        _store(
            original=(original_abs, data),
            derived=[(jpeg_abs, _encode_jpeg(normalized)), (thumb_abs, _encode_jpeg(thumb))],
        )

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


def _check_dimensions(fmt: str, width: int, height: int, data: bytes) -> None:
    """Refuse 0×0, more than MAX_PIXELS, or more than the format's decoding budget: all
    before any decoder runs."""
    pixels = width * height
    if pixels == 0 or pixels > MAX_PIXELS:
        raise _bad_dimensions(width, height)
    budget = MAX_DECODED_PIXELS.get(fmt)
    if budget is not None and pixels > budget:
        raise TooManyPixels((width, height), max_megapixels=budget // 1_000_000)
    if fmt in _DRAFTABLE:
        frame = _jpeg_frame(data)
        if frame is not None and frame.buffered and frame.coefficient_bytes > BUFFERED_JPEG_BUDGET:
            per_pixel = frame.coefficient_bytes / pixels
            max_mp = min(MAX_PIXELS, int(BUFFERED_JPEG_BUDGET / per_pixel)) // 1_000_000
            raise TooManyPixels((width, height), max_megapixels=max_mp)


def _sniff(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) from a PNG, GIF, WebP or JPEG header without Pillow; None
    if not one of those or not readable. Lets us refuse 0×0 and bomb headers before any
    decoder (or libwebp's canvas allocation) runs."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return ("PNG", *struct.unpack(">II", data[16:24]))
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return ("GIF", *struct.unpack("<HH", data[6:10]))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8X":
                return ("WEBP", 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little"))
            if chunk == b"VP8L" and data[20] == 0x2F:
                bits = int.from_bytes(data[21:25], "little")
                return ("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
                width, height = struct.unpack("<HH", data[26:30])
                return ("WEBP", width & 0x3FFF, height & 0x3FFF)
            return None
        frame = _jpeg_frame(data)
        if frame is not None:
            return ("JPEG", frame.width, frame.height)
    except struct.error:
        return None
    return None


@dataclass(frozen=True)
class _JpegFrame:
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (h, v) sampling factors per component
    buffered: bool  # progressive or multi-scan: libjpeg keeps every coefficient until the end

    @property
    def coefficient_bytes(self) -> int:
        """What libjpeg allocates for a buffered decode: per component, the 8×8 blocks (rounded
        up to whole sampling units) × 64 coefficients × 2 bytes (jdcoefct.c)."""
        if not self.sampling:
            return 0
        h_max = max(h for h, _ in self.sampling)
        v_max = max(v for _, v in self.sampling)
        total = 0
        for h, v in self.sampling:
            across = -(-self.width * h // (h_max * 8))
            down = -(-self.height * v // (v_max * 8))
            total += (-(-across // h) * h) * (-(-down // v) * v) * 128
        return total


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


def _jpeg_frame(data: bytes) -> _JpegFrame | None:
    """The frame header (SOF) of a JPEG, and whether its first scan holds every component;
    None if ``data`` is not a JPEG or its header is not readable that far."""
    if data[:2] != b"\xff\xd8":
        return None
    frame: _JpegFrame | None = None
    i = 2
    try:
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return frame
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
                i += 2
                continue
            if marker == 0xD9:  # end of image
                return frame
            if marker == 0xDA:  # start of scan: one scan of fewer components means several scans
                if frame is not None and data[i + 4] < len(frame.sampling):
                    frame = _JpegFrame(frame.width, frame.height, frame.sampling, True)
                return frame
            if marker in _JPEG_SOF and frame is None:
                height, width, count = struct.unpack(">HHB", data[i + 5 : i + 10])
                sampling = tuple(
                    (max(1, data[i + 11 + 3 * c] >> 4), max(1, data[i + 11 + 3 * c] & 0x0F)) for c in range(count)
                )
                frame = _JpegFrame(width, height, sampling, marker in _JPEG_PROGRESSIVE)
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if length < 2:
                return frame
            i += 2 + length
    except (struct.error, IndexError):
        return frame
    return frame


# --------------------------------------------------------------------------- normalizing


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so the longest side is at most ``side``."""
    longest = max(width, height)
    if longest <= side:
        return width, height
    return max(1, round(width * side / longest)), max(1, round(height * side / longest))


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) else 1


def _shrink(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """``img`` in sRGB, RGB on white, shrunk towards ``target``: exactly to it when it is
    small, else by the largest whole factor that keeps at least ``target`` (:func:`_finish`
    does the rest once the decoded image is gone). Always a new image.

    A decoded image at least twice the target is converted band by band, each band shrunk by
    that factor (a box average: exactly what one ``reduce`` of the whole would give) before
    the next: the only full-size image in memory is the decoded one."""
    try:
        width, height = img.size  # as decoded: a drafted JPEG is already smaller
        factor = max(1, min(width // target[0], height // target[1]))
        to_rgb = _rgb_converter(img)
        if factor == 1:
            out = to_rgb(img)
            if out.size != target:
                out = out.resize(target, Image.Resampling.LANCZOS)
            elif out is img:
                out = img.copy()
            return out
        out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
        step = factor * max(1, _BAND_ROWS // factor)
        for top in range(0, height, step):
            band = img.crop((0, top, width, min(height, top + step)))
            out.paste(to_rgb(band).reduce(factor), (0, top // factor))
            del band
        return out
    except MemoryError:
        raise
    except Exception as exc:
        raise BrokenImage() from exc


def _finish(img: Image.Image, target: tuple[int, int], orientation: int) -> Image.Image:
    """``target`` sized, then upright, with a fresh ``info`` (nothing of the original's
    metadata can reach the encoder)."""
    try:
        if img.size != target:
            img = img.resize(target, Image.Resampling.LANCZOS)
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            img = img.transpose(method)
    except MemoryError:
        raise
    except Exception as exc:
        raise BrokenImage() from exc
    img.info = {}
    return img


def _rgb_converter(img: Image.Image) -> Callable[[Image.Image], Image.Image]:
    """How to turn (a band of) ``img`` into RGB: decided once for the whole image."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return _flatten_on_white
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: scale to 8 bits instead of clipping to white.
        return lambda part: part.convert("I").point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
    if mode in ("RGB", "CMYK"):
        transform = _icc_to_srgb(img)
        if transform is not None:
            return lambda part: ImageCms.applyTransform(part, transform)  # type: ignore[return-value]
    if mode == "RGB":
        return lambda part: part
    return lambda part: part.convert("RGB")


def _flatten_on_white(part: Image.Image) -> Image.Image:
    rgba = part if part.mode == "RGBA" else part.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _icc_to_srgb(img: Image.Image) -> ImageCms.ImageCmsTransform | None:
    """A transform to sRGB for an image with an embedded colour profile (Display P3, Adobe
    RGB, a CMYK press profile), since the stripped JPEG will not carry the profile; None when
    there is none, it is sRGB already, or it is unusable."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
            return None
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), img.mode, "RGB")
    except Exception:
        return None


def _encode_jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    clean = img if img.mode == "RGB" else img.convert("RGB")
    clean.info = {}
    # Only pixels: no exif=, icc_profile=, comment= or xmp= are given, and info is empty.
    # No optimize=True: it costs a second pass over the data for a few percent of bytes.
    clean.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# --------------------------------------------------------------------------- storage
#
# Durability, with one fsync per photo. Each file is written to a temp file in its folder and
# renamed into place (atomic: a reader sees all of it or nothing); the derived files first,
# the original last; then the original alone is fsynced, after its rename. Why that is enough:
#
# - The original is the evidence and the one file nothing can remake. fsync makes its data
#   durable, and with it its new name: on ext4 and XFS fsync commits the journal up to the
#   file's last metadata change (the rename, which updates its ctime), and that commit carries
#   every earlier metadata change too (the new folders, the derived files' names); btrfs logs
#   a fsynced file's new name with it. So when process_photo returns (and the caller commits
#   a row naming these paths), the original is on disk under its name.
# - The derived files' data may still be in the page cache (delayed allocation): after a power
#   cut within the next seconds one may be missing, empty or cut short. They are pure
#   functions of the original: _stored_size trusts them only when they end with the JPEG end
#   marker, so the next time those bytes come in they are made again; the original is there
#   to rebuild them from (nothing in the bot does that on its own yet).
# - A crash before the fsync returns means process_photo never returned, so nothing refers to
#   the files yet; an original left short by it has the wrong size, which _stored_size checks,
#   so it is written again.


def _stored_size(original: Path, size: int, jpeg: Path, thumb: Path) -> tuple[int, int] | None:
    """The normalized JPEG's size if all three files are there and whole, else None."""
    if not (_original_ok(original, size) and _jpeg_whole(thumb)):
        return None
    return _existing_jpeg_size(jpeg)


def _original_ok(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _jpeg_whole(path: Path) -> bool:
    """Ends with the end-of-image marker: not empty, not cut short."""
    try:
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            return f.read(2) == b"\xff\xd9"
    except OSError:
        return False


def _existing_jpeg_size(path: Path) -> tuple[int, int] | None:
    if not _jpeg_whole(path):
        return None
    try:
        with Image.open(path, formats=("JPEG",)) as existing:
            return existing.size
    except Exception:
        return None


def _store(*, original: tuple[Path, bytes], derived: list[tuple[Path, bytes]]) -> None:
    """Write what is missing (see the durability notes above): derived files unsynced, then
    the original, fsynced once."""
    for path, data in derived:
        if not _jpeg_whole(path):
            _write(path, data)
    path, data = original
    if not _original_ok(path, len(data)):
        _write(path, data, fsync=True)


def _write(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, ``os.replace``;
    with ``fsync``, the file is fsynced after the rename (its data, and on journaling file
    systems the rename and everything before it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)
            os.replace(tmp_name, path)
            if fsync:
                os.fsync(tmp.fileno())
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


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
    maybe = [_number(part) for part in parts]
    numbers = [number for number in maybe if number is not None and number >= 0]
    if len(numbers) != len(maybe):
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
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        naive = datetime(year, month, day, hour, minute, second)
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
