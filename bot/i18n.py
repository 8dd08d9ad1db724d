"""Translations: gettext catalogs under `locales/`, read with Babel.

Message ids are symbolic keys (``"start.welcome"``) rather than English sentences, so a
key missing from either catalog is visible at once (see tests/test_i18n.py), and
English is a translation like any other. Strings are formatted with ``str.format``.
"""

from __future__ import annotations

import gettext
import io
import logging
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

SUPPORTED_LANGUAGES: tuple[str, ...] = ("zh_CN", "en")
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "griddesk"

# Telegram sends IETF tags (zh-hans, zh-CN, en-GB, …); map the families we speak.
_FAMILY = {"zh": "zh_CN", "en": "en"}


def normalise_language(code: str | None) -> str | None:
    """Map a Telegram or POSIX language tag onto a supported language, or None."""
    if not code:
        return None
    code = code.strip().replace("-", "_")
    for lang in SUPPORTED_LANGUAGES:
        if code.lower() == lang.lower():
            return lang
    return _FAMILY.get(code.split("_")[0].lower())


def pick_language(stored: str | None, telegram_code: str | None, default: str) -> str:
    """The stored preference, else Telegram's language_code, else the default."""
    return normalise_language(stored) or normalise_language(telegram_code) or default


def catalog_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def _translations(lang: str) -> gettext.GNUTranslations:
    # Compile the .po in memory: no build step, no binary files in the repository.
    with catalog_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def t(lang: str, key: str, /, **kwargs: object) -> str:
    """The text for `key` in `lang`, formatted with `kwargs`."""
    if lang not in SUPPORTED_LANGUAGES:
        lang = SUPPORTED_LANGUAGES[0]
    text = _translations(lang).gettext(key)
    if text == key and lang != "en":
        # A missing translation shows English rather than a bare key; the catalog test
        # keeps this from reaching users.
        text = _translations("en").gettext(key)
    if kwargs:
        try:
            return text.format(**kwargs)
        except (KeyError, IndexError, ValueError):
            log.exception("bad placeholders in %s/%s", lang, key)
            return text
    return text


def N_(key: str) -> str:
    """Mark a key for extraction where it is defined but translated later."""
    return key


def bilingual(lang: str, zh: str, en: str) -> str:
    """Of a name kept in both languages (the organisation file's names), the reader's."""
    return zh if lang == "zh_CN" else en


def language_name(lang: str) -> str:
    return {"zh_CN": "简体中文", "en": "English"}[lang]
