"""Every message id the code uses has a translation in every catalog, with the same
placeholders, and nothing but HTML that Telegram accepts."""

from __future__ import annotations

import ast
import re
import string
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.cases import casework
from bot.cases.query import TIMELINE_ACTIONS
from bot.i18n import SUPPORTED_LANGUAGES, catalog_path, normalise_language, pick_language, t
from bot.people import roles
from griddesk.app import MENU_COMMANDS
from storage.models import CaseSource, CaseState, Role, UnitKind

ROOT = Path(__file__).resolve().parent.parent
# call name -> position of the message id among its arguments
CALLS = {"t": 1, "say": 2, "N_": 0, "_tell_owner": 3, "_tell_reporter": 3, "_to_unit": 2}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    pos = CALLS.get(name or "")
                    if pos is not None and len(node.args) > pos:
                        keys |= _literals(node.args[pos])
                    # queued texts name their message id as key=... (rendered when sent)
                    for kw in node.keywords:
                        if kw.arg == "key":
                            keys |= _literals(kw.value)
                elif isinstance(node, ast.Dict):
                    # queued messages: payload={"key": "...", "params": {...}}
                    for k, v in zip(node.keys, node.values, strict=False):
                        if isinstance(k, ast.Constant) and k.value == "key" and v is not None:
                            keys |= _literals(v)
                elif isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if (
                            isinstance(stmt, ast.Assign)
                            and [getattr(t_, "id", None) for t_ in stmt.targets] == ["key"]
                            and isinstance(stmt.value, ast.Constant)
                        ):
                            keys.add(stmt.value.value)
    # Keys built at run time from a known family.
    keys |= {f"role.{r}" for r in (*Role.ALL, roles.ADMIN)}
    commands = set(roles.COMMON_COMMANDS) | set(MENU_COMMANDS)
    for extra in roles.ROLE_COMMANDS.values():
        commands |= set(extra)
    keys |= {f"cmd.{c}" for c in commands}
    keys |= {f"unit.{k}" for k in (UnitKind.TEAM, UnitKind.COMMAND_ROOM, UnitKind.DEPARTMENT)}
    keys |= {f"lang.{lang}" for lang in SUPPORTED_LANGUAGES}
    keys |= {f"state.{getattr(CaseState, n)}" for n in dir(CaseState) if n.isupper() and n != "FINAL"}
    keys |= {f"source.{getattr(CaseSource, n)}" for n in dir(CaseSource) if n.isupper()}
    keys |= {f"audit.{action}" for action in TIMELINE_ACTIONS}
    keys |= {f"tasks.title_{kind}" for kind in ("mine", "team", "street")}
    keys |= {f"work.ask_{a}" for a in casework.INPUT_ACTIONS} | {f"work.done_{a}" for a in casework.INPUT_ACTIONS}
    for decision in ("approved", "refused"):
        keys |= {f"work.extension_{decision}", f"work.extension_decided_{decision}"}
    return keys


def _literals(node: ast.expr) -> set[str]:
    """String constants an argument can evaluate to (a literal, or either side of an if)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _literals(node.body) | _literals(node.orelse)
    return set()


def catalog(lang: str) -> dict[str, str]:
    with catalog_path(lang).open("rb") as fh:
        cat = read_po(fh, locale=lang)
    return {m.id: m.string for m in cat if m.id}


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote"}


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


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_every_used_key_is_translated(lang: str) -> None:
    cat = catalog(lang)
    missing = sorted(k for k in used_keys() if not cat.get(k))
    assert not missing, f"{lang} lacks translations for: {missing}"


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    zh, en = catalog("zh_CN"), catalog("en")
    assert set(zh) == set(en), f"only in one catalog: {sorted(set(zh) ^ set(en))}"
    for key in zh:
        assert placeholders(zh[key]) == placeholders(en[key]), key


def test_no_catalog_entry_is_unused() -> None:
    unused = sorted(set(catalog("en")) - used_keys())
    assert not unused, f"catalog entries no code uses: {unused}"


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_translations_use_only_telegram_html(lang: str) -> None:
    for key, text in catalog(lang).items():
        checker = _TagChecker()
        checker.feed(re.sub(r"\{[^}]*\}", "x", text))
        assert not checker.problems and not checker.stack, (key, checker.problems, checker.stack)


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
