"""Getting a photo a person sent into our media store (shared by every feature that takes photos).

Photos are decoded in a small pool of worker processes of their own (``PHOTOS`` in
handlers/workers.py), not in the default thread pool the database work runs in: decoding a
photo is CPU work that would hold the GIL and take the threads database calls wait for.

Memory is bounded twice: the pool's size bounds how many photos decode at once (each decode is
itself bounded by ``bot.intake.photos``), and a semaphore per event loop bounds how many photos
are downloaded and waiting, so a burst of photos queues as updates, not as bytes in memory.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import weakref
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from telegram import Message
from telegram._utils.files import is_local_file
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError

from bot import notify
from bot.i18n import N_
from bot.intake.photos import (
    NotAnImage,
    PhotoError,
    PhotoTooLarge,
    StorageFull,
    StoredPhoto,
    check_size,
    process_photo,
)
from bot.intake.submit import PhotoIn
from handlers.common import Ctx, off_loop, runtime
from handlers.outbox_sender import flush
from handlers.workers import PHOTO_WORKERS, PHOTOS, WorkerDied

log = logging.getLogger(__name__)

IMAGE_MIME_PREFIX = "image/"

PHOTO_SLOTS = PHOTO_WORKERS + 1  # photos downloaded or decoding at once: one ready for the next free worker


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
    rt = runtime(context)
    async with _slots():
        try:
            tg_file = await context.bot.get_file(file_id)
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                raise PhotoTooLarge(size_mb=">20", max_mb=20) from None
            raise
        check_size(tg_file.file_size)
        if tg_file.file_path and is_local_file(tg_file.file_path) and not rt.settings.local_bot_api:
            # PTB would read a path on our own disk: never, unless a local Bot API server is ours.
            log.warning("refused a file_path naming a local file: %r", tg_file.file_path[:200])
            raise NotAnImage()
        data = await _download(tg_file)
        try:
            stored = await decode_photo(data, rt.settings.media_dir, default_tz=rt.settings.tz)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            # One alert to the admins (not a traceback per photo), a short answer to the sender.
            log.error("cannot store photos: %s", exc)
            if await off_loop(notify.alert_admins_once, rt, N_("alert.disk_full")):
                await flush(context.application)
            raise StorageFull() from None
        del data
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


DOWNLOAD_BACKOFF_S = (0.5, 1.5, 4.0)


async def _download(tg_file: Any) -> bytearray:
    """The file's bytes, tried again through 5xx answers, timeouts and dropped connections
    (a download does not pass the Bot API's retrying limiter)."""
    for pause in (*DOWNLOAD_BACKOFF_S, None):
        try:
            return await tg_file.download_as_bytearray()
        except BadRequest:
            raise
        except (NetworkError, TelegramError) as exc:
            if pause is None or isinstance(exc, Forbidden):
                raise
            log.info("download failed (%s); trying again in %s s", exc, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


async def decode_photo(data: bytes | bytearray, media_dir: Path | str, *, default_tz: tzinfo) -> StoredPhoto:
    """:func:`bot.intake.photos.process_photo` in the photo pool. Raises its PhotoErrors; a
    worker that died (killed for memory, a crashing decoder) gives a plain PhotoError and a
    fresh pool for the next photo."""
    try:
        return await PHOTOS.run(process_photo, data, os.path.abspath(media_dir), default_tz=default_tz)
    except WorkerDied:
        raise PhotoError() from None


# --------------------------------------------------------------------------- the pool

_loop_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _slots() -> asyncio.Semaphore:
    """This event loop's semaphore (an asyncio primitive belongs to one loop; tests run many)."""
    loop = asyncio.get_running_loop()
    slots = _loop_slots.get(loop)
    if slots is None:
        slots = _loop_slots[loop] = asyncio.Semaphore(PHOTO_SLOTS)
    return slots
