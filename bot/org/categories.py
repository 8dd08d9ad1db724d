"""The responsibility list as the report conversation needs it: grouped, and suggested."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bot.i18n import bilingual
from bot.intake.suggest import Catalogue, CategoryInfo, prepare, suggest
from bot.org import index
from bot.runtime import Runtime
from storage import cases, orgs
from storage.models import pk


@dataclass(frozen=True)
class CategoryOption:
    id: int
    code: str
    name_zh: str
    name_en: str
    platform_code: str
    urgent: bool
    keywords: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        return bilingual(lang, self.name_zh, self.name_en)


@dataclass(frozen=True)
class PlatformOption:
    code: str
    name_zh: str
    name_en: str

    def name(self, lang: str) -> str:
        return bilingual(lang, self.name_zh, self.name_en)


def catalogue(rt: Runtime) -> tuple[list[PlatformOption], list[CategoryOption]]:
    cached = rt.cache.get(index.CATEGORIES)
    if cached is None:
        with rt.db.read() as s:
            platforms = {p.id: p for p in orgs.platforms(s)}
            cats = [
                CategoryOption(
                    pk(c),
                    c.code,
                    c.name_zh,
                    c.name_en,
                    platforms[c.platform_id].code if c.platform_id in platforms else "",
                    c.urgent,
                    tuple(c.keywords or ()),
                )
                for c in orgs.active_categories(s)
            ]
            used = {c.platform_code for c in cats}
            plats = [
                PlatformOption(p.code, p.name_zh, p.name_en) for p in platforms.values() if p.active and p.code in used
            ]
        cached = (plats, cats)
        rt.cache[index.CATEGORIES] = cached
    return cached


def category(rt: Runtime, category_id: int) -> CategoryOption | None:
    return next((c for c in catalogue(rt)[1] if c.id == category_id), None)


def in_platform(rt: Runtime, platform_code: str) -> list[CategoryOption]:
    return [c for c in catalogue(rt)[1] if c.platform_code == platform_code]


def suggestions(rt: Runtime, *, user_id: int, description: str, limit: int = 6) -> list[CategoryOption]:
    """The most likely categories first: from the description's words and the reporter's habits."""
    with rt.db.read() as s:
        return suggestions_in(s, rt, user_id=user_id, description=description, limit=limit)


def suggestions_in(s: Session, rt: Runtime, *, user_id: int, description: str, limit: int = 6) -> list[CategoryOption]:
    """:func:`suggestions` in the caller's unit of work."""
    _, cats = catalogue(rt)
    recent = cases.recent_categories_of(s, user_id)
    by_id = {c.id: c for c in cats}
    return [by_id[i] for i in suggest(description, _terms_of(rt, cats), recent, limit=limit)]


def _terms_of(rt: Runtime, cats: list[CategoryOption]) -> Catalogue:
    """The catalogue's terms for suggestions, worked out once per catalogue read."""
    cached = rt.cache.get(index.CATEGORY_TERMS)
    if cached is None or cached[0] is not cats:  # a new catalogue (an import): work them out again
        infos = [CategoryInfo(c.id, c.code, c.name_zh, c.name_en, c.platform_code, c.keywords) for c in cats]
        cached = rt.cache[index.CATEGORY_TERMS] = (cats, prepare(infos))
    return cached[1]
