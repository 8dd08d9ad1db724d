"""Rebuild the shipped CJK font subset (run by hand, not at run time).

    python -m bot.desk.fonts.subset /path/to/NotoSansCJK*-Regular.otf

Keeps ASCII, Latin-1, general punctuation, CJK punctuation and full-width forms, every
character of GB 2312 (the 6,763 common simplified characters) and every character in the
message catalogs and the sample organisation file, so labels, place and category names
render without missing-glyph boxes. The result is a few MB (CFF outlines, no hinting).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
OUT = HERE / "NotoSansCJK-desk.otf"


def gb2312() -> set[str]:
    chars: set[str] = set()
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return chars


def wanted() -> set[str]:
    chars = {chr(c) for c in range(0x20, 0x17F)}
    chars |= {chr(c) for c in range(0x2000, 0x2070)} | {chr(c) for c in range(0x2190, 0x2200)}
    chars |= {chr(c) for c in range(0x3000, 0x3040)} | {chr(c) for c in range(0xFF00, 0xFFF0)}
    chars |= {chr(c) for c in range(0x2460, 0x2500)} | {chr(c) for c in range(0x25A0, 0x2600)}
    chars |= gb2312()
    for path in [*ROOT.glob("locales/*/LC_MESSAGES/*.po"), ROOT / "bot" / "data" / "sample_org.yaml"]:
        chars |= set(path.read_text(encoding="utf-8"))
    return {c for c in chars if c.isprintable()}


def main(source: str) -> None:
    from fontTools import subset

    options = subset.Options()
    options.hinting = False
    options.desubroutinize = False
    options.name_IDs = ["*"]
    options.layout_features = ["*"]
    font = subset.load_font(source, options)
    sub = subset.Subsetter(options)
    sub.populate(text="".join(sorted(wanted())))
    sub.subset(font)
    subset.save_font(font, str(OUT), options)
    print(OUT, OUT.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1])
