"""The before/after composite the reporter verifies from: labelled in the reader's language
with the font GridDesk ships (no system font needed)."""

from __future__ import annotations

import io

from fontTools.ttLib import TTFont
from PIL import Image

from bot.cases.composite import BAR, before_after_jpeg
from bot.fonts import CJK_FONT
from bot.i18n import t_plain
from tests.images import make_jpeg, rgb_colours


def _bar(jpeg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.convert("RGB").crop((0, 0, image.width, BAR))


def test_each_side_is_named_in_the_readers_language() -> None:
    before, after = make_jpeg(800, 600), make_jpeg(600, 800)
    pictures = {}
    for lang in ("zh_CN", "en"):
        labels = (t_plain(lang, "work.photo_before"), t_plain(lang, "work.photo_after"))
        cmap = TTFont(str(CJK_FONT)).getBestCmap()
        assert all(ord(ch) in cmap for ch in "".join(labels) if not ch.isspace())  # no missing-glyph boxes
        pictures[lang] = before_after_jpeg(before, after, labels=labels, height=300)

    bar = _bar(pictures["zh_CN"])
    colours = rgb_colours(bar)
    white = sum(n for n, (r, g, b) in colours if min(r, g, b) > 200)
    reds = sum(n for n, (r, g, b) in colours if r > 150 and g < 90)
    greens = sum(n for n, (r, g, b) in colours if g > 120 and r < 90)
    assert white > 100 and reds > 1000 and greens > 1000  # two coloured bars with letters on them
    assert _bar(pictures["zh_CN"]).tobytes() != _bar(pictures["en"]).tobytes()  # the words differ
    with Image.open(io.BytesIO(pictures["en"])) as image:
        assert image.height == 300 + BAR and image.width == 400 + 12 + 225
