"""A QR code for a rating link, with the case code printed under it (PNG bytes).

A worker shows it on their phone or prints it; the resident scans it with WeChat or the
camera and lands in the bot. The code under the QR lets both see which case it is for.
"""

from __future__ import annotations

import io

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

BOX = 10  # pixels per QR module: big enough to scan off a phone screen
BORDER = 4  # the quiet zone the QR standard asks for, in modules
LABEL_SIZE = 36


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's default font is scalable when Pillow has FreeType, a small bitmap otherwise;
    # either renders the ASCII of a case code.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - very old Pillow or no FreeType
        return ImageFont.load_default()


def qr_png(link: str, label: str) -> bytes:
    """The QR of `link` with `label` (ASCII, e.g. the case code) centred under it."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX, border=BORDER)
    qr.add_data(link)
    qr.make(fit=True)
    code = qr.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    font = _font(LABEL_SIZE)
    probe = ImageDraw.Draw(code)
    left, top, right, bottom = probe.textbbox((0, 0), label, font=font)
    text_w, text_h = right - left, bottom - top
    margin = BOX * 2
    width = max(code.width, text_w + 2 * margin)
    card = Image.new("RGB", (width, code.height + text_h + 2 * margin), "white")
    card.paste(code, ((width - code.width) // 2, 0))
    draw = ImageDraw.Draw(card)
    draw.text(((width - text_w) // 2 - left, code.height + margin // 2 - top), label, fill="black", font=font)
    out = io.BytesIO()
    card.save(out, format="PNG", optimize=True)
    return out.getvalue()
