"""The CJK font GridDesk ships (an OFL subset of Noto Sans CJK, see bot/desk/fonts/OFL.txt):
Chinese in the images the bot draws renders on a fresh machine with no system font."""

from __future__ import annotations

from pathlib import Path

CJK_FONT = Path(__file__).resolve().parent / "desk" / "fonts" / "NotoSansCJK-desk.otf"
