"""Getting a photo a person sent into our media store (shared by every feature that takes photos)."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Message
from telegram.error import BadRequest

from bot.intake.photos import NotAnImage, PhotoTooLarge, check_size, process_photo
from bot.intake.submit import PhotoIn
from handlers.common import Ctx, off_loop, runtime

IMAGE_MIME_PREFIX = "image/"


@dataclass(frozen=True)
class Received:
    photo: PhotoIn
    gps: tuple[float, float] | None  # read from EXIF before it was stripped


def has_image(message: Message) -> bool:
    return bool(message.photo) or message.document is not None


def is_other_document(message: Message) -> bool:
    """A file that is not an image (a PDF, a spreadsheet): refused before any download."""
    return (
        not message.photo
        and message.document is not None
        and not (message.document.mime_type or "").startswith(IMAGE_MIME_PREFIX)
    )


async def receive_photo(context: Ctx, message: Message) -> Received:
    """Download (at most 20 MB), verify and store; raises a PhotoError the caller words."""
    if message.photo:
        size = message.photo[-1]
        file_id, file_size = size.file_id, size.file_size
    elif message.document is not None:
        if not (message.document.mime_type or "").startswith(IMAGE_MIME_PREFIX):
            raise NotAnImage()
        file_id, file_size = message.document.file_id, message.document.file_size
    else:
        raise NotAnImage()
    check_size(file_size)
    try:
        tg_file = await context.bot.get_file(file_id)
    except BadRequest as exc:
        if "too big" in str(exc).lower():
            raise PhotoTooLarge(size_mb=">20", max_mb=20) from None
        raise
    check_size(tg_file.file_size)
    data = bytes(await tg_file.download_as_bytearray())
    rt = runtime(context)
    stored = await off_loop(process_photo, data, rt.settings.media_dir, default_tz=rt.settings.tz)
    photo = PhotoIn(
        file_id=file_id,
        sha256=stored.sha256,
        original_path=str(stored.original_path),
        jpeg_path=str(stored.jpeg_path),
        thumb_path=str(stored.thumb_path),
        width=stored.width,
        height=stored.height,
        taken_at=stored.taken_at,
    )
    return Received(photo, stored.gps)
