"""Every message id the code uses has a translation in every catalog, with the same
placeholders and plural forms, and nothing but HTML that Telegram accepts; pop-up
answers to button presses are plain text.

The ids are found by Babel's extraction (babel.cfg, the method bot.i18n.extract_keys),
the same that `pybabel extract -F babel.cfg` runs. Ids built at run time
(``t(lang, f"state.{s}")``) cannot be extracted: they are the DYNAMIC allow-list below.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.cases import casework, deadlines
from bot.cases.query import TIMELINE_ACTIONS
from bot.i18n import (
    POPUP_LIMIT,
    SUPPORTED_LANGUAGES,
    catalog_path,
    counting_parameter,
    normalise_language,
    pick_language,
    t,
    t_plain,
)
from bot.people import roles
from bot.runtime import Runtime
from bot.textlimits import utf16_len
from griddesk.app import MENU_COMMANDS
from storage.db import Database
from storage.models import CaseSource, CaseState, Role, UnitKind
from tests.fakebot import FakeTelegram, FakeUser
from tests.flows import bound_group, onboard
from tests.test_claim import join_directly
from tests.test_rating import close_residents_case, report_and_dispatch, request_of

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("bot", "handlers", "griddesk")


# --- what the code uses --------------------------------------------------------------------


def _extract(**extra: str) -> dict[str, list[str]]:
    """Message id -> where in the code (file:line), as babel.cfg extracts them."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, "babel.cfg")
    options_map = {pattern: {**options, **extra} for pattern, options in options_map.items()}
    found: dict[str, list[str]] = {}
    for folder in CODE_DIRS:
        for filename, lineno, message, _comments, _context in extract_from_dir(ROOT / folder, method_map, options_map):
            assert isinstance(message, str), (filename, lineno, message)  # no plural ids in code
            found.setdefault(message, []).append(f"{folder}/{filename}:{lineno}")
    return found


@cache
def literal_keys() -> dict[str, list[str]]:
    return _extract()


@cache
def dynamic_patterns() -> dict[str, list[str]]:
    """The keys the code builds at run time, as glob patterns: f"state.{s}" -> "state.*"."""
    return {key: where for key, where in _extract(dynamic="glob").items() if "*" in key}


def _commands() -> set[str]:
    commands = set(roles.COMMON_COMMANDS) | set(MENU_COMMANDS)
    for extra in roles.ROLE_COMMANDS.values():
        commands |= set(extra)
    return commands


def _constants(cls: type) -> set[str]:
    """The string constants of a class of constants (CaseState.CLAIMED, …)."""
    return {value for name, value in vars(cls).items() if name.isupper() and isinstance(value, str)}


# The allow-list of message ids built at run time: each pattern the code builds (as the
# extractor sees it, "*" for each interpolated part) with the values it is filled with.
# A new f-string key fails test_dynamic_keys_are_declared until it is listed here; its
# family must then be complete in both catalogs, and only these families count as used
# without being extracted.
DYNAMIC: dict[str, Callable[[], set[str]]] = {
    "role.*": lambda: {*Role.ALL, roles.ADMIN},
    "cmd.*": _commands,
    "unit.*": lambda: {UnitKind.TEAM, UnitKind.COMMAND_ROOM, UnitKind.DEPARTMENT},
    "lang.*": lambda: set(SUPPORTED_LANGUAGES),
    "state.*": lambda: _constants(CaseState),
    "source.*": lambda: _constants(CaseSource),
    "audit.*": lambda: set(TIMELINE_ACTIONS),
    "tasks.title_*": lambda: {"mine", "team", "street"},
    "work.ask_*": lambda: set(casework.INPUT_ACTIONS),
    "work.done_*": lambda: set(casework.INPUT_ACTIONS),
    "work.extension_*": lambda: {"approved", "refused"},
    "work.extension_decided_*": lambda: {"approved", "refused"},
    "work.more_*": lambda: set(deadlines.MORE_TIME_CHOICES),
}


def dynamic_keys() -> set[str]:
    return {pattern.replace("*", value) for pattern, values in DYNAMIC.items() for value in values()}


# --- the catalogs --------------------------------------------------------------------------


@cache
def catalog(lang: str) -> dict[str, tuple[str, ...]]:
    """Message id -> its forms (one unless plural)."""
    with catalog_path(lang).open("rb") as fh:
        cat = read_po(fh, locale=lang)
    out: dict[str, tuple[str, ...]] = {}
    for m in cat:
        if m.id:
            key = str(m.id[0]) if isinstance(m.id, (tuple, list)) else str(m.id)
            forms = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
            out[key] = tuple(str(form or "") for form in forms)
    return out


@cache
def plural_entries(lang: str) -> dict[str, str | None]:
    """Plural message id -> its counting parameter (None if msgid_plural names none)."""
    with catalog_path(lang).open("rb") as fh:
        cat = read_po(fh, locale=lang)
    return {str(m.id[0]): counting_parameter(str(m.id[1])) for m in cat if isinstance(m.id, (tuple, list))}


def num_plurals(lang: str) -> int:
    with catalog_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang).num_plurals


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def sample_params(key: str) -> dict[str, object]:
    names = set().union(*(placeholders(form) for lang in SUPPORTED_LANGUAGES for form in catalog(lang)[key]))
    return {name: 2 for name in names}


ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote"}
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
HTML_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"<{tag}> is not allowed")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"</{tag}> closes nothing")


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_every_extracted_key_is_translated(lang: str) -> None:
    cat = catalog(lang)
    missing = {k: where for k, where in literal_keys().items() if not all(cat.get(k, ("",)))}
    assert not missing, f"{lang} lacks translations for: {missing}"


def test_extraction_finds_every_way_the_code_names_a_key() -> None:
    keys = literal_keys()
    assert "start.welcome_resident" in keys  # t(lang, "...")
    assert {"dispatch.pick_original", "dispatch.no_originals"} <= set(keys)  # "a" if x else "b"
    assert "report.rate_limited" in keys  # class RateLimited(DomainError): key = "..."
    assert "chat.lost" in keys  # text_to_user(..., key="chat.lost")
    assert not [k for k in keys if "*" in k or " " in k]


def test_dynamic_keys_are_declared() -> None:
    """Every key pattern the code builds is in the DYNAMIC allow-list, and every entry of
    the allow-list is still built somewhere."""
    built = dynamic_patterns()
    undeclared = {p: where for p, where in built.items() if p not in DYNAMIC}
    assert not undeclared, f"keys built at run time; list them in DYNAMIC: {undeclared}"
    stale = sorted(set(DYNAMIC) - set(built))
    assert not stale, f"DYNAMIC lists patterns the code no longer builds: {stale}"


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_dynamic_families_are_translated(lang: str) -> None:
    cat = catalog(lang)
    missing = sorted(k for k in dynamic_keys() if not all(cat.get(k, ("",))))
    assert not missing, f"{lang} lacks translations for: {missing}"


def test_no_catalog_entry_is_unused() -> None:
    unused = sorted(set(catalog("en")) - set(literal_keys()) - dynamic_keys())
    assert not unused, f"catalog entries no code uses: {unused}"


# --- catalogs ------------------------------------------------------------------------------


def test_catalogs_have_the_same_keys_placeholders_and_plurals() -> None:
    zh, en = catalog("zh_CN"), catalog("en")
    assert set(zh) == set(en), f"only in one catalog: {sorted(set(zh) ^ set(en))}"
    assert plural_entries("zh_CN") == plural_entries("en")
    for key in zh:
        counting = plural_entries("en").get(key)
        forms = [*zh[key], *en[key]]
        expected = set().union(*(placeholders(form) for form in forms))
        for form in forms:
            # a singular form may spell the number out ("one photo")
            assert placeholders(form) | ({counting} if counting else set()) == expected, (key, form)


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_plural_entries_name_their_count_and_have_every_form(lang: str) -> None:
    for key, counting in plural_entries(lang).items():
        assert counting, f'{lang}/{key}: msgid_plural must name the counting parameter, e.g. "{{count}}"'
        forms = catalog(lang)[key]
        assert len(forms) == num_plurals(lang) and all(forms), (lang, key, forms)
        assert any(counting in placeholders(form) for form in forms), (lang, key, counting)


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_no_count_is_left_as_a_parenthesised_plural(lang: str) -> None:
    assert not [k for k, forms in catalog(lang).items() if any("(s)" in f for f in forms)]


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_translations_use_only_telegram_html(lang: str) -> None:
    for key, forms in catalog(lang).items():
        for text in forms:
            checker = _TagChecker()
            checker.feed(re.sub(r"\{[^}]*\}", "x", text))
            assert not checker.problems and not checker.stack, (key, checker.problems, checker.stack)


# --- rendering -----------------------------------------------------------------------------


def test_language_choice_order() -> None:
    assert pick_language("en", "zh-hans", "zh_CN") == "en"  # the stored preference wins
    assert pick_language(None, "en-GB", "zh_CN") == "en"  # then Telegram's language_code
    assert pick_language(None, "zh-hans", "en") == "zh_CN"
    assert pick_language(None, "fr", "zh_CN") == "zh_CN"  # then the default
    assert normalise_language("xx") is None


def test_formatting_and_fallback() -> None:
    assert "张三" in t("zh_CN", "join.welcome", name="张三", role="网格员", scope="一网格")
    assert t("en", "cancel.nothing") == "There is nothing to cancel."
    # an unknown language falls back to the default catalog instead of failing
    assert t("fr", "cancel.nothing") == t("zh_CN", "cancel.nothing")


def test_plural_forms_follow_the_counting_parameter() -> None:
    assert t("en", "report.photos_received", count=1) == "📷 1 photo received."
    assert t("en", "report.photos_received", count=2) == "📷 2 photos received."
    assert t("en", "report.photos_received", count=0) == "📷 0 photos received."
    assert "1 张照片" in t("zh_CN", "report.photos_received", count=1)
    assert "2 张照片" in t("zh_CN", "report.photos_received", count=2)
    # the number is whatever parameter the entry declares, as the callers pass it
    assert "holds 1 open case;" in t("en", "chat.lost", unit="U", title="T", open=1)
    assert "holds 3 open cases;" in t("en", "chat.lost", unit="U", title="T", open=3)
    assert "at most 1 photo;" in t("en", "report.too_many_photos", max=1).lower()
    # a number in a string counts too; a fraction takes the plural
    assert t("en", "rate.followup_promised", days="1").endswith("within 1 working day.")
    assert t("en", "rate.followup_promised", days="1.5").endswith("within 1.5 working days.")
    assert t("en", "work.more_wd", count=1) == "1 working day" and t("en", "work.more_wh", count=8) == "8 working hours"
    assert t("en", "desk.export_caption", scope="S", period="P", count=1).endswith(": 1 case")
    assert t("en", "desk.map_caption", scope="S", period="P", count=2).endswith(": 2 cases")
    assert "failed 1 delivery in a row" in t("en", "webhook.paused", id=1, url="U", failures=1)
    assert t_plain("en", "card.after_photos", count=1) == "1 'after' photo"


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_popup_text_is_plain_for_every_key(lang: str) -> None:
    for key in catalog(lang):
        text = t_plain(lang, key, **sample_params(key))
        assert not HTML_TAG.search(text), (lang, key, text)
        assert not HTML_ENTITY.search(text), (lang, key, text)
        assert utf16_len(text) <= POPUP_LIMIT, (lang, key)


def test_popup_text_keeps_parameters_as_given_and_fits_a_popup() -> None:
    text = t_plain("en", "rate.already_rated", code="A<b>&amp;")
    assert text == "You have already rated A<b>&amp;: one rating per case. Thank you for your feedback!"
    assert t("en", "rate.already_rated", code="X").count("<b>") == 1  # the message itself has markup
    long = t_plain("en", "dispatch.rejected_done", code="QB-1", reason="🙂" * 300)
    assert utf16_len(long) <= POPUP_LIMIT and long.endswith("…")


# --- through the bot -----------------------------------------------------------------------

GRID = "33010200100101"


async def test_a_refused_button_press_answers_in_plain_text(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database
) -> None:
    """The error handler's pop-up for a rule that said no (rating a case twice: the message
    has <b>…</b>) shows no markup; nor does the stale-button answer."""
    w = SimpleNamespace(tg=tg, db=db, rt=rt)
    w.worker = tg.user(9701, "网格员甲", language_code="zh-hans")
    w.dispatcher = tg.user(9702, "调度员乙", language_code="zh-hans")
    await onboard(admin, w.worker, "worker", GRID)
    await onboard(admin, w.dispatcher, "dispatcher", "330102001")
    w.room = await bound_group(tg, admin, -100971, "QB-CMD")
    w.team = await bound_group(tg, admin, -100972, "QB-ZF")
    join_directly(rt, 9710, "执法丙", "staff", "QB-ZF")
    w.staff = tg.user(9710, "执法丙", language_code="zh-hans")

    lin = tg.user(9750, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)
    question = lin.last_message()
    assert question is not None
    await lin.press(question, "😀")
    request = request_of(db, case, lin)

    answer = await lin.press_data(lin.id, question.message_id, f"v1:rate:{request.id}:4")
    assert answer is not None
    text = answer.params["text"]
    assert "already rated" in text and case.code in text, text
    assert not HTML_TAG.search(text) and not HTML_ENTITY.search(text), text

    answer = await lin.press_data(lin.id, question.message_id, "v1:zz:1")
    assert answer is not None and answer.params["text"] == t_plain("en", "button.stale")
