"""Translations: gettext catalogs under `locales/`, read with Babel.

Message ids are symbolic keys (``"start.welcome"``) rather than English sentences, so a
key missing from either catalog is visible at once (see tests/test_i18n.py), and
English is a translation like any other. Strings are formatted with ``str.format``.

Two renderings of one message:

- :func:`t` gives the message as the catalog writes it: Telegram HTML. Parameters go in
  as they are, so the caller escapes what people typed (``esc``) before passing it.
- :func:`t_plain` gives plain text for the places Telegram shows no markup: the pop-up
  answer to a button press (answerCallbackQuery, at most 200 characters). The
  message's own tags are dropped and its entities decoded *before* the parameters go
  in, so parameters are passed raw (not escaped) and come out exactly as given; the
  result is clipped to :data:`POPUP_LIMIT` UTF-16 code units. A message nested as a
  parameter is rendered with ``t_plain`` too.

Plurals. A message that shows a number ("1 photo", "2 photos") is a gettext plural
entry, and its ``msgid_plural`` names the parameter that counts, as a placeholder::

    msgid "report.photos_received"
    msgid_plural "{count}"
    msgstr[0] "📷 {count} photo received."
    msgstr[1] "📷 {count} photos received."

New messages call the number ``count``; older ones keep the name their callers already
pass (``{open}``, ``{limit}``, ``{days}``, ``{hours}``…), declared the same way. The form is
chosen by the catalog's ``Plural-Forms`` rule (English: two forms, ``n != 1``; Chinese:
one form, so a zh_CN plural entry has only ``msgstr[0]``). The count may be an int or a
number in a string ("2"); a fraction ("1.5") or anything else takes the last form. Callers
need not know whether an entry is plural: ``t(lang, key, count=n)`` is the same call either
way. tests/test_i18n.py checks that both catalogs declare the same counting parameter.

Extraction. :func:`extract_keys` is a Babel extraction method (configured in babel.cfg,
used by ``pybabel extract`` and by tests/test_i18n.py): it finds the literal message ids
in the code, including the forms Babel's own ``python`` method cannot read (both branches
of ``"a" if x else "b"``, ``key="..."`` keywords, ``{"key": ...}`` payloads and
``key = "..."`` class attributes). Keys the code builds at run time (``f"state.{s}"``)
cannot be extracted; tests/test_i18n.py lists them (DYNAMIC) with the values they take.
"""

from __future__ import annotations

import ast
import gettext
import html
import itertools
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, overload

from babel.messages.pofile import read_po

from bot.textlimits import clip

log = logging.getLogger(__name__)

SUPPORTED_LANGUAGES: tuple[str, ...] = ("zh_CN", "en")
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "griddesk"
# Telegram's limit for the text of a callback query answer (a button's pop-up).
POPUP_LIMIT = 200

# Telegram sends IETF tags (zh-hans, zh-CN, en-GB, …); map the families we speak.
_FAMILY = {"zh": "zh_CN", "en": "en"}
# msgid_plural of a plural entry: the counting parameter as a placeholder, "{count}".
_COUNTING = re.compile(r"\{(\w+)\}")
_TAG = re.compile(r"<[^>]*>")


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


@dataclass(frozen=True)
class _Entry:
    """One message of a catalog: its forms (one unless plural) and, if plural, the
    parameter that counts."""

    forms: tuple[str, ...]
    counting: str | None = None


@dataclass(frozen=True)
class _Catalog:
    entries: dict[str, _Entry]
    plural: Callable[[int], int]


def counting_parameter(msgid_plural: str) -> str | None:
    """The parameter a plural entry counts with, from its msgid_plural ("{count}")."""
    found = _COUNTING.fullmatch(msgid_plural.strip())
    return found.group(1) if found else None


@cache
def _catalog(lang: str) -> _Catalog:
    with catalog_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    entries: dict[str, _Entry] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, (tuple, list)):
            key, msgid_plural = str(message.id[0]), str(message.id[1])
            counting = counting_parameter(msgid_plural)
            if counting is None:
                log.error("%s/%s: msgid_plural must name the counting parameter, as {count}", lang, key)
            entries[key] = _Entry(tuple(str(form or "") for form in message.string or ()), counting)
        else:
            entries[str(message.id)] = _Entry((str(message.string or ""),))
    return _Catalog(entries, gettext.c2py(catalog.plural_expr))


def _entry(lang: str, key: str) -> _Entry | None:
    """The catalog entry for `key` in `lang` (None when it is missing or untranslated)."""
    found = _catalog(lang).entries.get(key)
    return found if found is not None and all(found.forms) else None


def _template(lang: str, key: str, params: Mapping[str, object]) -> str:
    """The text of `key` in `lang` before formatting: the plural form `params` call for."""
    if lang not in SUPPORTED_LANGUAGES:
        lang = SUPPORTED_LANGUAGES[0]
    found = _entry(lang, key)
    if found is None and lang != "en":
        # A missing translation shows English rather than a bare key; the catalog test
        # keeps this from reaching users.
        lang, found = "en", _entry("en", key)
    if found is None:
        return key
    if found.counting is None or len(found.forms) == 1:
        return found.forms[0]
    n = _number(params.get(found.counting))
    if n is None:
        if found.counting not in params:
            log.warning("%s/%s: no %r to choose the plural form by", lang, key, found.counting)
        return found.forms[-1]
    return found.forms[min(max(_catalog(lang).plural(abs(n)), 0), len(found.forms) - 1)]


def _number(value: object) -> int | None:
    """A count as an int, or None for a fraction or a value that is no number."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _format(text: str, lang: str, key: str, params: Mapping[str, object]) -> str:
    if not params:
        return text
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        log.exception("bad placeholders in %s/%s", lang, key)
        return text


def t(lang: str, key: str, /, **kwargs: object) -> str:
    """The text for `key` in `lang` (Telegram HTML), formatted with `kwargs`; for a plural
    entry, in the form its counting parameter calls for."""
    return _format(_template(lang, key, kwargs), lang, key, kwargs)


def plain(text: str) -> str:
    """Telegram HTML as plain text: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", text))


def t_plain(lang: str, key: str, /, **kwargs: object) -> str:
    """The text for `key` in `lang` as plain text, for a button's pop-up (answerCallbackQuery):
    no tags, no entities, at most POPUP_LIMIT UTF-16 code units. Pass `kwargs` raw, not
    HTML-escaped: they are inserted after the message's markup is removed."""
    return clip(_format(plain(_template(lang, key, kwargs)), lang, key, kwargs), POPUP_LIMIT)


def N_(key: str) -> str:
    """Mark a key for extraction where it is defined but translated later."""
    return key


@overload
def bilingual(lang: str, zh: str, en: str) -> str: ...
@overload
def bilingual(lang: str, zh: str | None, en: str | None) -> str | None: ...
def bilingual(lang: str, zh: str | None, en: str | None) -> str | None:
    """Of a name kept in both languages (the organisation file's names), the reader's."""
    return zh if lang == "zh_CN" else en


def language_name(lang: str) -> str:
    return {"zh_CN": "简体中文", "en": "English"}[lang]


# --- extraction ----------------------------------------------------------------------------


def extract_keys(
    fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str], options: Mapping[str, Any]
) -> Iterator[tuple[int, str | None, str | tuple[str | None, ...], list[str]]]:
    """A Babel extraction method for the message ids in Python code (babel.cfg names it).

    Like Babel's ``python`` method it reports calls of the `keywords` (babel.cfg's
    ``keywords`` option, e.g. ``t:2``: Babel picks the argument), but it reads the syntax
    tree, so both branches of ``t(lang, "a" if x else "b")`` are ids. It also reports the
    literal values of the names in the ``key_names`` option wherever they are a keyword
    argument (``key="..."``), a dict entry (``{"key": "..."}``) or a class attribute
    (``key = "..."``). With the option ``dynamic = glob`` (for tests) keys built at run
    time are reported as glob patterns (``f"state.{s}"`` gives ``state.*``).
    """
    names = set(str(options.get("key_names", "")).split())
    globs = options.get("dynamic") == "glob"
    for node in ast.walk(ast.parse(fileobj.read())):
        found: list[ast.expr] = []
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in keywords and not any(isinstance(a, ast.Starred) for a in node.args):
                alternatives: list[list[str | None]] = [[*sorted(_keys_in(a, globs))] or [None] for a in node.args]
                for args in itertools.product(*alternatives):
                    yield node.lineno, name, args, []
            found = [kw.value for kw in node.keywords if kw.arg in names]
        elif isinstance(node, ast.Dict):
            found = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value in names
            ]
        elif isinstance(node, ast.ClassDef):
            found = [value for stmt in node.body if (value := _assigned(stmt, names)) is not None]
        for expr in found:
            for key in sorted(_keys_in(expr, globs)):
                yield expr.lineno, None, key, []  # no function: Babel takes the message as it is


def _assigned(stmt: ast.stmt, names: set[str]) -> ast.expr | None:
    """The value a class body gives one of `names` (``key = "..."``), if it does."""
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign):
        targets = [stmt.target]
    else:
        return None
    return stmt.value if any(getattr(x, "id", None) in names for x in targets) else None


def _keys_in(node: ast.expr, globs: bool) -> set[str]:
    """The message ids an expression can evaluate to, as far as the source says."""
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) and node.value else set()
    if isinstance(node, ast.IfExp):
        return _keys_in(node.body, globs) | _keys_in(node.orelse, globs)
    if isinstance(node, ast.JoinedStr) and globs:
        pattern = "".join(
            part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "*"
            for part in node.values
        )
        return {pattern} if "*" in pattern else set()
    return set()
