"""bot/photos.py: validating, reading EXIF, storing and stripping a worker's photo."""

from __future__ import annotations

import io
import os
import pickle
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile
from PIL.TiffImagePlugin import IFDRational

from bot.errors import DomainError
from bot.intake import photos
from bot.intake.photos import (
    MAX_BYTES,
    MAX_DECODED_PIXELS,
    BadDimensions,
    BrokenImage,
    NotAnImage,
    PhotoError,
    PhotoTooLarge,
    StoredPhoto,
    TooManyPixels,
    absolute,
    check_size,
    process_photo,
    read_exif,
)
from tests.images import corrupt_jpeg, make_jpeg, make_png, rgb, truncated_jpeg

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = UTC


# --------------------------------------------------------------------------- helpers


def files_under(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file under root with (size, mtime_ns): to see that nothing was (re)written."""
    return {p.relative_to(root): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def jpeg_markers(data: bytes) -> list[int]:
    """The JPEG segment markers before the image data (APPn, COM, DQT, SOF, DHT, ...)."""
    assert data[:2] == b"\xff\xd8"
    markers, i = [], 2
    while i < len(data):
        assert data[i] == 0xFF
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return markers


def assert_no_metadata(path: Path) -> None:
    data = path.read_bytes()
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert len(img.getexif()) == 0
        for key in ("exif", "icc_profile", "comment", "xmp", "photoshop", "adobe"):
            assert key not in img.info, key
    markers = jpeg_markers(data)
    # Only JFIF (APP0) may precede the image data: no APP1 (EXIF/XMP), APP2 (ICC), APP13,
    # no COM segment.
    assert [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE] == []
    assert b"Exif" not in data and b"GPS" not in data


def jpeg_with_exif(exif: Image.Exif | bytes, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(
        buffer, format="JPEG", exif=exif if isinstance(exif, bytes) else exif.tobytes()
    )
    return buffer.getvalue()


def png_header(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, idat: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat or zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )


def jpeg_with_frame_size(width: int, height: int) -> bytes:
    """A real tiny JPEG whose SOF header claims another size."""
    data = bytearray(make_jpeg(32, 32))
    i = 2
    while True:
        marker = data[i + 1]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in (0xC0, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length


def bmp_with_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format="BMP")
    data = bytearray(buffer.getvalue())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records every decode (ImageFile.load) with the image size: refused bombs must not appear."""
    calls: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):
        calls.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


# --------------------------------------------------------------------------- the normal path


def test_jpeg_with_gps_and_time_is_stored_read_and_stripped(tmp_path: Path) -> None:
    data = make_jpeg(800, 600, exif_gps=(-33.8688, -151.2093), exif_time=datetime(2026, 11, 23, 9, 30, 15))

    photo = process_photo(data, tmp_path, default_tz=SHANGHAI)

    assert isinstance(photo, StoredPhoto)
    sha = photo.sha256
    assert len(sha) == 64
    assert photo.original_path == Path("original") / sha[:2] / f"{sha}.jpg"
    assert photo.jpeg_path == Path("jpeg") / sha[:2] / f"{sha}.jpg"
    assert photo.thumb_path == Path("thumb") / sha[:2] / f"{sha}.jpg"
    assert set(files_under(tmp_path)) == {photo.original_path, photo.jpeg_path, photo.thumb_path}
    assert (photo.width, photo.height) == (800, 600)
    assert photo.size_bytes == len(data)
    assert photo.mime == "image/jpeg"

    # Where: signs from the S/W references.
    assert photo.gps is not None
    assert photo.gps == pytest.approx((-33.8688, -151.2093), abs=1e-6)
    # When: no offset in the EXIF, so read in the default zone (UTC+8) and given in UTC.
    assert photo.taken_at == datetime(2026, 11, 23, 1, 30, 15, tzinfo=UTC)
    assert photo.taken_at.utcoffset() == UTC.utcoffset(None)

    # The original is kept byte for byte, EXIF included (evidence).
    original = absolute(tmp_path, photo.original_path)
    assert original.read_bytes() == data
    with Image.open(original) as img:
        assert img.getexif().get_ifd(ExifTags.IFD.GPSInfo)

    # What is passed on has no metadata at all.
    jpeg = absolute(tmp_path, photo.jpeg_path)
    thumb = absolute(tmp_path, photo.thumb_path)
    assert_no_metadata(jpeg)
    assert_no_metadata(thumb)
    with Image.open(jpeg) as img:
        assert img.size == (800, 600) and img.mode == "RGB"
    with Image.open(thumb) as img:
        assert max(img.size) <= 320
        assert img.size == (320, 240)


def test_north_east_coordinates_and_a_time_with_its_own_offset(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {
        1: "N",
        2: (IFDRational(31, 1), IFDRational(13, 1), IFDRational(3000, 100)),
        3: "E",
        4: (IFDRational(121, 1), IFDRational(28, 1), IFDRational(1500, 100)),
    }
    exif[ExifTags.IFD.Exif] = {0x9003: "2026:07:01 12:00:00", 0x9011: "+02:00"}
    photo = process_photo(jpeg_with_exif(exif), tmp_path, default_tz=SHANGHAI)

    assert photo.gps == pytest.approx((31 + 13 / 60 + 30 / 3600, 121 + 28 / 60 + 15 / 3600))
    # The offset in the EXIF wins over the default zone.
    assert photo.taken_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_datetime_alone_is_used_when_there_is_no_original(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2025:01:02 03:04:05"
    photo = process_photo(jpeg_with_exif(exif), tmp_path, default_tz=ZoneInfo("UTC"))
    assert photo.taken_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert photo.gps is None


def test_no_exif_means_no_gps_and_no_time(tmp_path: Path) -> None:
    photo = process_photo(make_jpeg(100, 80), tmp_path, default_tz=SHANGHAI)
    assert photo.gps is None and photo.taken_at is None
    with Image.open(io.BytesIO(make_jpeg(100, 80))) as img:
        assert read_exif(img) == (None, None)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored landscape 400×200 with Orientation 6 ("rotate 90° clockwise to view"), a red
    # block in the stored top-left corner: upright it is portrait and red is top-right.
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())

    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)

    assert (photo.width, photo.height) == (200, 400)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.size == (200, 400)
        red, _, blue = rgb(out, (190, 10))
        assert red > 200 and blue < 60
        red, _, blue = rgb(out, (10, 10))
        assert red < 60 and blue > 200
        assert ExifTags.Base.Orientation not in out.getexif()
    with Image.open(absolute(tmp_path, photo.thumb_path)) as thumb:
        assert thumb.size == (160, 320)


def test_big_photo_is_downscaled_to_1600(tmp_path: Path) -> None:
    photo = process_photo(make_jpeg(4000, 1000), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (1600, 400)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as img:
        assert img.size == (1600, 400)
    with Image.open(absolute(tmp_path, photo.thumb_path)) as img:
        assert img.size == (320, 80)


def test_same_bytes_twice_same_paths_nothing_written(tmp_path: Path) -> None:
    data = make_jpeg(640, 480, exif_gps=(30.0, 120.0))
    first = process_photo(data, tmp_path, default_tz=SHANGHAI)
    before = files_under(tmp_path)

    second = process_photo(data, tmp_path, default_tz=SHANGHAI)

    assert second == first
    assert files_under(tmp_path) == before
    assert len(before) == 3


def test_missing_derived_file_is_made_again(tmp_path: Path) -> None:
    data = make_jpeg(640, 480)
    first = process_photo(data, tmp_path, default_tz=SHANGHAI)
    absolute(tmp_path, first.thumb_path).unlink()
    kept = files_under(tmp_path)
    second = process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert second == first
    assert absolute(tmp_path, first.thumb_path).is_file()
    # Only the missing one was written; the two present files were not touched.
    assert {k: v for k, v in files_under(tmp_path).items() if k != first.thumb_path} == kept


def test_different_bytes_different_files(tmp_path: Path) -> None:
    a = process_photo(make_jpeg(100, 100, color=(1, 2, 3)), tmp_path, default_tz=SHANGHAI)
    b = process_photo(make_jpeg(100, 100, color=(200, 2, 3)), tmp_path, default_tz=SHANGHAI)
    assert a.sha256 != b.sha256
    assert len(files_under(tmp_path)) == 6


def test_no_temp_files_are_left(tmp_path: Path) -> None:
    process_photo(make_jpeg(200, 200), tmp_path, default_tz=SHANGHAI)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")] == []


def test_png_with_alpha_is_flattened_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (100, 50), (0, 0, 0, 0))  # fully transparent black...
    img.paste((200, 0, 0, 255), (50, 0, 100, 50))  # ...and an opaque red right half
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    data = buffer.getvalue()

    photo = process_photo(data, tmp_path, default_tz=SHANGHAI)

    assert photo.mime == "image/png"
    assert photo.original_path.suffix == ".png"
    assert absolute(tmp_path, photo.original_path).read_bytes() == data
    assert photo.gps is None and photo.taken_at is None
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.mode == "RGB" and out.size == (100, 50)
        assert all(channel > 245 for channel in rgb(out, (10, 25)))  # white, not black
        red, green, blue = rgb(out, (90, 25))
        assert red > 180 and green < 40 and blue < 40
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))


def test_sixteen_bit_greyscale_png(tmp_path: Path) -> None:
    img = Image.new("I;16", (64, 64), 20000)  # about 30 % grey
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.mode == "RGB"
        assert 60 < rgb(out, (32, 32))[0] < 100  # not clipped to white


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(buffer, format="JPEG")  # red ink
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.mode == "RGB"
        red, green, blue = rgb(out, (32, 32))
        assert red > 200 and green < 60 and blue < 60


def test_plain_png_from_helper(tmp_path: Path) -> None:
    photo = process_photo(make_png(), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (640, 480)
    assert photo.mime == "image/png"


def _encoded(fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (12, 34, 56)).save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "ext", "mime"),
    [
        ("WEBP", ".webp", "image/webp"),
        ("GIF", ".gif", "image/gif"),
        ("BMP", ".bmp", "image/bmp"),
        ("TIFF", ".tiff", "image/tiff"),
    ],
)
def test_other_accepted_formats(tmp_path: Path, fmt: str, ext: str, mime: str) -> None:
    photo = process_photo(_encoded(fmt), tmp_path, default_tz=SHANGHAI)
    assert photo.original_path.suffix == ext
    assert photo.mime == mime
    assert (photo.width, photo.height) == (48, 32)
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))


def test_animated_gif_keeps_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        red, green, _ = rgb(out, (20, 20))
        assert red > 200 and green < 60


def test_icc_profile_is_not_passed_on(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(buffer, format="JPEG", icc_profile=profile)
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))


def test_jpeg_comment_is_not_passed_on(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="JPEG", comment=b"Canon EOS, serial 1234")
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))
    assert b"Canon" not in absolute(tmp_path, photo.jpeg_path).read_bytes()


def test_threads_can_process_at_once(tmp_path: Path) -> None:
    datas = [make_jpeg(300, 200, color=(i * 40, 10, 10)) for i in range(4)] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda d: process_photo(d, tmp_path, default_tz=SHANGHAI), datas))
    assert len({r.sha256 for r in results}) == 4
    assert len(files_under(tmp_path)) == 12
    for r in results:
        assert absolute(tmp_path, r.original_path).read_bytes() in datas


# --------------------------------------------------------------------------- refusals


def test_errors_are_typed_and_carry_keys() -> None:
    for cls, key in [
        (PhotoTooLarge, "photo.too_large"),
        (NotAnImage, "photo.not_image"),
        (BrokenImage, "photo.broken"),
        (BadDimensions, "photo.bad_size"),
    ]:
        assert issubclass(cls, PhotoError) and issubclass(cls, Exception)
        assert issubclass(cls, DomainError)  # so the global error handler translates it
        assert cls.key == key
        assert isinstance(cls().params, dict)


def test_check_size_before_download() -> None:
    check_size(None)  # Telegram did not say
    check_size(0)
    check_size(MAX_BYTES)
    with pytest.raises(PhotoTooLarge) as info:
        check_size(MAX_BYTES + 1)
    assert info.value.params["max_mb"] == 20


def test_too_many_bytes(tmp_path: Path) -> None:
    data = make_jpeg(100, 100)
    padded = data + b"\0" * (MAX_BYTES + 1 - len(data))  # a valid JPEG with trailing junk
    with pytest.raises(PhotoTooLarge):
        process_photo(padded, tmp_path, default_tz=SHANGHAI)
    assert files_under(tmp_path) == {}


@pytest.mark.parametrize(
    "data",
    [
        random.Random(7).randbytes(5000),
        b"",
        "网格员报告：路灯坏了。\nA plain text file, not a photo.\n".encode() * 20,
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        corrupt_jpeg(),
    ],
    ids=["random", "empty", "text", "pdf", "corrupt-jpeg"],
)
def test_not_an_image(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NotAnImage):
        process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert files_under(tmp_path) == {}


def test_formats_we_do_not_accept(tmp_path: Path) -> None:
    # Pillow reads these, but a grid worker's photo is none of them.
    for fmt in ("PPM", "TGA", "ICO", "PCX"):
        with pytest.raises(NotAnImage):
            process_photo(_encoded(fmt), tmp_path, default_tz=SHANGHAI)
    assert files_under(tmp_path) == {}


def test_truncated_jpeg_is_broken(tmp_path: Path) -> None:
    with pytest.raises(BrokenImage):
        process_photo(truncated_jpeg(), tmp_path, default_tz=SHANGHAI)
    assert files_under(tmp_path) == {}


def test_corrupt_png_data_is_broken(tmp_path: Path) -> None:
    data = png_header(64, 64, idat=b"this is not zlib data at all" * 10)
    with pytest.raises(BrokenImage):
        process_photo(data, tmp_path, default_tz=SHANGHAI)


@pytest.mark.parametrize(
    "data",
    [png_header(0, 0), png_header(0, 100), jpeg_with_frame_size(0, 0), jpeg_with_frame_size(100, 0)],
    ids=["png-0x0", "png-0x100", "jpeg-0x0", "jpeg-100x0"],
)
def test_zero_size_header(tmp_path: Path, data: bytes, no_decoding: list) -> None:
    with pytest.raises(BadDimensions):
        process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert no_decoding == []


def test_decoding_spy_sees_normal_decodes(tmp_path: Path, no_decoding: list) -> None:
    # Control for the "refused before decoding" tests: the spy does catch real decodes.
    process_photo(make_jpeg(100, 100), tmp_path, default_tz=SHANGHAI)
    assert no_decoding


def test_too_small(tmp_path: Path) -> None:
    with pytest.raises(BadDimensions) as info:
        process_photo(make_jpeg(10, 300), tmp_path, default_tz=SHANGHAI)
    assert info.value.size == (10, 300)
    assert info.value.params["min_side"] == 16


def _huge_one_bit_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG: all-black rows compress to almost nothing."""
    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return png_header(width, height, bit_depth=1, color_type=0, idat=idat)


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    data = _huge_one_bit_png(30000, 30000)
    assert len(data) < 1_000_000  # tiny on the wire, 900 megapixels decoded
    return data


def test_30000_square_png_is_refused_before_decoding(tmp_path: Path, huge_png: bytes, no_decoding: list) -> None:
    with pytest.raises(BadDimensions):
        process_photo(huge_png, tmp_path, default_tz=SHANGHAI)
    assert no_decoding == []
    assert files_under(tmp_path) == {}


def test_bomb_refused_even_when_pillow_limit_is_off(
    tmp_path: Path, huge_png: bytes, no_decoding: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    for data in (huge_png, jpeg_with_frame_size(30000, 30000), bmp_with_size(30000, 30000)):
        with pytest.raises(BadDimensions):
            process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert no_decoding == []


@pytest.mark.parametrize(
    "data",
    # 64 megapixels: over our 50 MP limit, under Pillow's own (89 MP), so our check must act.
    [jpeg_with_frame_size(8000, 8000), png_header(8000, 8000), bmp_with_size(8000, 8000)],
    ids=["jpeg", "png", "bmp"],
)
def test_over_max_pixels_but_under_pillows_limit(tmp_path: Path, data: bytes, no_decoding: list) -> None:
    with pytest.raises(BadDimensions):
        process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert no_decoding == []


def test_pillow_global_limit_is_left_alone(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    process_photo(make_jpeg(100, 100), tmp_path, default_tz=SHANGHAI)
    with pytest.raises(BadDimensions):
        process_photo(jpeg_with_frame_size(30000, 30000), tmp_path, default_tz=SHANGHAI)
    assert before == Image.MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------- nonsense EXIF


def _gps_exif(gps: dict) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = gps
    return exif


_R = IFDRational
_GOOD_LAT = (_R(31, 1), _R(13, 1), _R(30, 1))
_GOOD_LON = (_R(121, 1), _R(28, 1), _R(15, 1))


@pytest.mark.parametrize(
    "gps",
    [
        {1: "Q", 2: _GOOD_LAT, 3: "E", 4: _GOOD_LON},  # no such hemisphere
        {2: _GOOD_LAT, 4: _GOOD_LON},  # hemispheres missing
        {1: "N", 2: (_R(1, 0), _R(0, 1), _R(0, 1)), 3: "E", 4: _GOOD_LON},  # division by zero
        {1: "N", 2: (_R(95, 1), _R(0, 1), _R(0, 1)), 3: "E", 4: _GOOD_LON},  # latitude > 90
        {1: "N", 2: _GOOD_LAT, 3: "W", 4: (_R(200, 1), _R(0, 1), _R(0, 1))},  # longitude > 180
        {1: "N", 2: (_R(31, 1), _R(75, 1), _R(0, 1)), 3: "E", 4: _GOOD_LON},  # 75 minutes
        {1: "N", 2: (_R(0, 1), _R(0, 1), _R(0, 1)), 3: "E", 4: (_R(0, 1), _R(0, 1), _R(0, 1))},  # null island
        {1: "N", 2: _GOOD_LAT, 3: "E", 4: _GOOD_LON, 9: "V"},  # receiver says: measurement void
        {1: "N", 2: (_R(31, 1), _R(13, 1), _R(30, 1), _R(1, 1)), 3: "E", 4: _GOOD_LON},  # 4 parts
    ],
    ids=["bad-ref", "no-ref", "zero-denominator", "lat-95", "lon-200", "75-minutes", "zero-zero", "void", "four-parts"],
)
def test_nonsense_gps_is_none(tmp_path: Path, gps: dict) -> None:
    photo = process_photo(jpeg_with_exif(_gps_exif(gps)), tmp_path, default_tz=SHANGHAI)
    assert photo.gps is None


def test_control_good_gps_dict_is_read(tmp_path: Path) -> None:
    photo = process_photo(
        jpeg_with_exif(_gps_exif({1: "N", 2: _GOOD_LAT, 3: "E", 4: _GOOD_LON})), tmp_path, default_tz=SHANGHAI
    )
    assert photo.gps == pytest.approx((31.225, 121.470833), abs=1e-5)


def _raw_exif(ifd0_entries: list[tuple[int, int, int, bytes]], tail: bytes = b"") -> bytes:
    """Hand-made little-endian EXIF: entries are (tag, type, count, 4-byte value)."""
    body = struct.pack("<H", len(ifd0_entries))
    for tag, kind, count, value in ifd0_entries:
        body += struct.pack("<HHI", tag, kind, count) + value
    body += struct.pack("<I", 0)
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + body + tail


def _raw_gps_exif(gps_entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """IFD0 holding only a GPS pointer to a hand-made GPS IFD (any types, any values)."""
    gps_offset = 8 + 2 + 12 + 4
    gps = struct.pack("<H", len(gps_entries))
    for tag, kind, count, value in gps_entries:
        gps += struct.pack("<HHI", tag, kind, count) + value
    gps += struct.pack("<I", 0)
    return _raw_exif([(0x8825, 4, 1, struct.pack("<I", gps_offset))], tail=gps)


@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize(
    "raw",
    [
        # Latitude/longitude as text, references as numbers: types Pillow would never write.
        _raw_gps_exif([(1, 2, 2, b"N\0\0\0"), (2, 2, 4, b"abc\0"), (3, 2, 2, b"E\0\0\0"), (4, 2, 4, b"xyz\0")]),
        _raw_gps_exif([(1, 3, 1, b"\x07\0\0\0"), (2, 5, 3, struct.pack("<I", 0xFFFF)), (3, 4, 1, b"\0\0\0\0")]),
        _raw_exif([(0x8825, 4, 1, struct.pack("<I", 0xFFFFFF))]),  # GPS IFD far past the end
        _raw_exif([(0x8825, 4, 1, struct.pack("<I", 8))]),  # GPS IFD is IFD0 again (a loop)
        _raw_exif([(0x8769, 4, 1, struct.pack("<I", 0xFFFFF0)), (0x0132, 2, 20, struct.pack("<I", 0xFFFF00))]),
        _raw_exif([(0x0112, 3, 1, struct.pack("<HH", 77, 0))]),  # orientation 77
        b"Exif\0\0" + random.Random(3).randbytes(300),
        b"Exif\0\0MM\0*" + b"\xff" * 60,
    ],
    ids=[
        "gps-strings",
        "gps-wrong-types",
        "gps-offset-out",
        "gps-loop",
        "exif-offset-out",
        "orientation-77",
        "random",
        "ff",
    ],
)
def test_garbage_exif_never_raises(tmp_path: Path, raw: bytes) -> None:
    data = jpeg_with_exif(raw)
    photo = process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert photo.gps is None
    assert photo.taken_at is None
    assert (photo.width, photo.height) == (64, 48)
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))
    with Image.open(io.BytesIO(data)) as img:
        assert read_exif(img) == (None, None)


@pytest.mark.parametrize(
    "stamp",
    ["0000:00:00 00:00:00", "    :  :     :  :  ", "2026:02:30 10:00:00", "yesterday", "2026:13:01 25:61:00", ""],
)
def test_nonsense_time_is_none(tmp_path: Path, stamp: str) -> None:
    exif = Image.Exif()
    exif[0x0132] = stamp
    exif[ExifTags.IFD.Exif] = {0x9003: stamp, 0x9011: "+99:99"}
    photo = process_photo(jpeg_with_exif(exif), tmp_path, default_tz=SHANGHAI)
    assert photo.taken_at is None


def test_nonsense_offset_falls_back_to_default_zone(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.IFD.Exif] = {0x9003: "2026:11:23 09:30:00", 0x9011: "somewhere"}
    photo = process_photo(jpeg_with_exif(exif), tmp_path, default_tz=SHANGHAI)
    assert photo.taken_at == datetime(2026, 11, 23, 1, 30, tzinfo=UTC)


# --------------------------------------------------------------------------- paths


def test_absolute_joins_and_refuses_escapes(tmp_path: Path) -> None:
    assert absolute(tmp_path, Path("jpeg/ab/abc.jpg")) == tmp_path / "jpeg" / "ab" / "abc.jpg"
    assert absolute(tmp_path, "thumb/ab/abc.jpg") == tmp_path / "thumb" / "ab" / "abc.jpg"
    for bad in ("../etc/passwd", "/etc/passwd", "jpeg/../../x"):
        with pytest.raises(ValueError):
            absolute(tmp_path, bad)


def test_module_constants() -> None:
    assert photos.MAX_BYTES == 20 * 1024 * 1024
    assert photos.MAX_PIXELS == 50_000_000
    assert photos.MIN_SIDE == 16


def test_large_jpeg_decoded_at_reduced_scale_still_fits(tmp_path: Path) -> None:
    # 5400×5400: libjpeg decodes at 1/2 (2700 px; 1/4 would give 1350), then it is resized to 1600.
    photo = process_photo(make_jpeg(5400, 5400), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (1600, 1600)


def test_large_truncated_jpeg_is_broken_too(tmp_path: Path) -> None:
    with pytest.raises(BrokenImage):
        process_photo(truncated_jpeg(5400, 5400), tmp_path, default_tz=SHANGHAI)


# --------------------------------------------------------------------------- speed: draft, size, one fsync


def test_four_by_three_photo_is_drafted_to_its_aspect_ratio(tmp_path: Path, no_decoding: list) -> None:
    # A square 1600 box would not scale a 4:3 photo at all (3000 // 1600 = 1); a 1600×1200 box
    # lets libjpeg decode at 1/2.
    photo = process_photo(make_jpeg(4000, 3000), tmp_path, default_tz=SHANGHAI)
    assert set(no_decoding) == {(2000, 1500)}  # load() may be called again once loaded
    assert (photo.width, photo.height) == (1600, 1200)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as img:
        assert img.size == (1600, 1200)
    with Image.open(absolute(tmp_path, photo.thumb_path)) as img:
        assert img.size == (320, 240)


@pytest.mark.parametrize(
    ("size", "decoded", "stored"),
    [
        ((3000, 4000), (1500, 2000), (1200, 1600)),  # portrait
        ((8000, 1000), (2000, 250), (1600, 200)),  # a panorama: 1/4, since 1/8 would give 1000 < 1600
        ((3199, 2399), (3199, 2399), (1600, 1200)),  # under twice the target: no scale fits
        ((1200, 900), (1200, 900), (1200, 900)),  # small: kept as it is
    ],
)
def test_draft_scale_is_the_largest_that_keeps_the_target(
    tmp_path: Path, no_decoding: list, size: tuple[int, int], decoded: tuple[int, int], stored: tuple[int, int]
) -> None:
    photo = process_photo(make_jpeg(*size), tmp_path, default_tz=SHANGHAI)
    assert set(no_decoding) == {decoded}
    assert (photo.width, photo.height) == stored


def test_big_photo_exif_is_read_then_stripped(tmp_path: Path) -> None:
    data = make_jpeg(4000, 3000, exif_gps=(30.2411, 120.1691), exif_time=datetime(2026, 11, 23, 9, 12))
    photo = process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert photo.gps == pytest.approx((30.2411, 120.1691), abs=1e-6)
    assert photo.taken_at == datetime(2026, 11, 23, 1, 12, tzinfo=UTC)
    assert absolute(tmp_path, photo.original_path).read_bytes() == data  # evidence kept whole
    assert_no_metadata(absolute(tmp_path, photo.jpeg_path))
    assert_no_metadata(absolute(tmp_path, photo.thumb_path))


def test_no_optimize_pass_and_quality_85(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_jpeg(800, 600)
    saved: list[dict] = []
    real_save = Image.Image.save

    def spy(self: Image.Image, fp, format=None, **params):
        saved.append({"format": format, **params})
        return real_save(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", spy)
    process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert saved == [{"format": "JPEG", "quality": 85}] * 2


def test_one_fsync_per_new_photo_and_none_for_a_stored_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    data = make_jpeg(800, 600)
    process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert len(synced) == 1
    process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert len(synced) == 1


def test_a_stored_photo_is_not_decoded_again(tmp_path: Path, no_decoding: list) -> None:
    data = make_jpeg(800, 600, exif_gps=(30.0, 120.0))
    first = process_photo(data, tmp_path, default_tz=SHANGHAI)
    no_decoding.clear()
    assert process_photo(data, tmp_path, default_tz=SHANGHAI) == first
    assert no_decoding == []


@pytest.mark.parametrize("which", ["jpeg", "thumb"])
def test_a_derived_file_cut_short_is_made_again(tmp_path: Path, which: str) -> None:
    # What a power cut may leave of a file whose data was never fsynced.
    data = make_jpeg(640, 480)
    first = process_photo(data, tmp_path, default_tz=SHANGHAI)
    path = absolute(tmp_path, first.jpeg_path if which == "jpeg" else first.thumb_path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert process_photo(data, tmp_path, default_tz=SHANGHAI) == first
    assert path.read_bytes() == whole


def test_an_original_cut_short_is_written_again(tmp_path: Path) -> None:
    data = make_jpeg(640, 480)
    first = process_photo(data, tmp_path, default_tz=SHANGHAI)
    original = absolute(tmp_path, first.original_path)
    original.write_bytes(data[:100])
    assert process_photo(data, tmp_path, default_tz=SHANGHAI) == first
    assert original.read_bytes() == data


# --------------------------------------------------------------------------- memory: decoded-size budgets


def test_png_over_its_pixel_budget_is_refused_before_decoding(tmp_path: Path, no_decoding: list) -> None:
    # The bomb: 7000×7000 (49 MP, under MAX_PIXELS) is ~200 MB decoded, tiny on the wire.
    data = _huge_one_bit_png(7000, 7000)
    assert len(data) < 200_000
    with pytest.raises(TooManyPixels) as info:
        process_photo(data, tmp_path, default_tz=SHANGHAI)
    assert isinstance(info.value, BadDimensions) and info.value.key == "photo.bad_size"
    assert info.value.params == {"min_side": 16, "max_megapixels": 36}
    assert info.value.size == (7000, 7000)
    assert no_decoding == []
    assert files_under(tmp_path) == {}


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP", "GIF"])
def test_formats_without_draft_have_a_pixel_budget(tmp_path: Path, fmt: str, no_decoding: list) -> None:
    # Pillow reads the header only; the refusal comes before load().
    buffer = io.BytesIO()
    Image.new("1", (6100, 6000)).save(buffer, format=fmt)  # 36.6 MP, 1 bit: small to make
    with pytest.raises(TooManyPixels) as info:
        process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert info.value.params["max_megapixels"] == MAX_DECODED_PIXELS[fmt] // 1_000_000 == 36
    assert no_decoding == []


def test_png_at_its_budget_is_taken(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("1", (6000, 6000), 1).save(buffer, format="PNG")  # exactly 36 MP
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (1600, 1600)


def test_webp_over_its_budget_is_refused_before_pillow_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening a WebP already makes libwebp allocate its canvases: our own header read refuses it.
    buffer = io.BytesIO()
    Image.new("RGB", (4100, 2800)).save(buffer, format="WEBP", lossless=True)  # 11.5 MP
    opened: list[str] = []
    real_open = Image.open

    def spy(*args, **kwargs):
        opened.append("open")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    with pytest.raises(TooManyPixels) as info:
        process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert info.value.params["max_megapixels"] == 11
    assert info.value.size == (4100, 2800)
    assert opened == []


@pytest.mark.parametrize(("width", "height"), [(64, 48), (5000, 80), (80, 5000)])
def test_webp_headers_are_read_for_every_kind(width: int, height: int) -> None:
    for params in ({"lossless": True}, {"quality": 80}, {"lossless": True, "exif": Image.Exif().tobytes()}):
        buffer = io.BytesIO()
        Image.new("RGBA" if "exif" in params else "RGB", (width, height)).save(buffer, format="WEBP", **params)
        assert photos._sniff(buffer.getvalue()) == ("WEBP", width, height)


def test_progressive_jpeg_is_budgeted_by_its_coefficients(tmp_path: Path, no_decoding: list) -> None:
    # libjpeg keeps every coefficient of a progressive JPEG, whatever the draft scale: at 4:4:4
    # that is 6 bytes a pixel, so 4800×4800 needs 138 MB; the same picture baseline is cheap.
    img = Image.new("RGB", (4800, 4800), (90, 120, 150))
    progressive, baseline = io.BytesIO(), io.BytesIO()
    img.save(progressive, format="JPEG", progressive=True, subsampling=0)
    img.save(baseline, format="JPEG", subsampling=0)
    with pytest.raises(TooManyPixels) as info:
        process_photo(progressive.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert info.value.params["max_megapixels"] == 21
    assert no_decoding == []
    photo = process_photo(baseline.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (1600, 1600)


def test_jpeg_frame_reading() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(buffer, format="JPEG", progressive=True)  # 4:2:0
    frame = photos._jpeg_frame(buffer.getvalue())
    assert frame is not None and frame.buffered
    assert (frame.width, frame.height) == (4000, 3000)
    assert frame.sampling == ((2, 2), (1, 1), (1, 1))
    assert frame.coefficient_bytes == (500 * 376 + 2 * 250 * 188) * 128  # ~3 bytes a pixel
    baseline = photos._jpeg_frame(make_jpeg(640, 480))
    assert baseline is not None and not baseline.buffered
    assert photos._jpeg_frame(b"\xff\xd8\xff") is None
    assert photos._jpeg_frame(make_png()) is None


# --------------------------------------------------------------------------- memory: shrinking band by band


@pytest.mark.parametrize(("size", "factor"), [((3300, 1717), 2), ((4900, 3301), 3), ((6500, 200), 4)])
def test_band_by_band_shrink_equals_one_reduce_of_the_whole(size: tuple[int, int], factor: int) -> None:
    img = Image.effect_noise(size, 60).convert("RGB")
    target = photos._fit(*size, photos.JPEG_MAX_SIDE)
    shrunk = photos._shrink(img, target)
    assert shrunk.tobytes() == img.reduce(factor).tobytes()


def test_big_transparent_png_is_flattened_on_white_band_by_band(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4000, 2000), (0, 0, 0, 0))  # transparent black...
    img.paste((200, 0, 0, 255), (2000, 0, 4000, 2000))  # ...and an opaque red right half
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    assert (photo.width, photo.height) == (1600, 800)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert all(channel > 245 for channel in rgb(out, (100, 400)))
        red, green, blue = rgb(out, (1500, 400))
        assert red > 180 and green < 40 and blue < 40


def test_big_palette_gif_with_transparency_and_big_16_bit_png(tmp_path: Path) -> None:
    gif = Image.new("P", (3600, 2400), 1)
    gif.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    gif.paste(0, (0, 0, 1800, 2400))  # index 0: transparent
    buffer = io.BytesIO()
    gif.save(buffer, format="GIF", transparency=0)
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.size == (1600, 1067)
        assert all(channel > 245 for channel in rgb(out, (100, 500)))  # transparent -> white
        red, _, blue = rgb(out, (1500, 500))
        assert blue > 200 and red < 40

    grey = io.BytesIO()
    Image.new("I;16", (3400, 3400), 20000).save(grey, format="PNG")
    photo = process_photo(grey.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.size == (1600, 1600)
        assert 60 < rgb(out, (800, 800))[0] < 100


def test_big_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("CMYK", (4000, 3000), (0, 255, 255, 0)).save(buffer, format="JPEG")  # red ink
    photo = process_photo(buffer.getvalue(), tmp_path, default_tz=SHANGHAI)
    with Image.open(absolute(tmp_path, photo.jpeg_path)) as out:
        assert out.mode == "RGB" and out.size == (1600, 1200)
        red, green, blue = rgb(out, (800, 600))
        assert red > 200 and green < 60 and blue < 60


# --------------------------------------------------------------------------- errors cross processes


@pytest.mark.parametrize(
    "error",
    [
        PhotoError(),
        PhotoTooLarge(max_mb=20, size_mb=25.2),
        NotAnImage(),
        BrokenImage(),
        BadDimensions((0, 0)),
        TooManyPixels((7000, 7000), max_megapixels=36),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error: PhotoError) -> None:
    # A photo worker raises them in another process: what arrives must answer the same way.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.key == error.key and copy.params == error.params
    assert getattr(copy, "size", None) == getattr(error, "size", None)
    assert str(copy) == str(error)
