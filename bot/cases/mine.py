"""A reporter's own cases (/my): what they filed, and where each one stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.i18n import bilingual
from bot.org import index
from bot.runtime import Runtime
from storage import cases, ratings


@dataclass(frozen=True)
class MyCase:
    code: str
    state: str
    category_zh: str
    category_en: str
    created_at: datetime

    def category(self, lang: str) -> str:
        return bilingual(lang, self.category_zh, self.category_en)


def my_cases(rt: Runtime, *, user_id: int, limit: int = 10, offset: int = 0) -> list[MyCase]:
    with rt.db.read() as s:
        return _my_cases_in(s, rt, user_id, limit=limit, offset=offset)


@dataclass(frozen=True)
class MyPage:
    cases: list[MyCase]  # newest first
    unrated: dict[str, int]  # case code -> rating request, for closed cases not rated yet


def my_page(rt: Runtime, *, user_id: int, limit: int = 10) -> MyPage:
    """What /my shows, in one unit of work."""
    with rt.db.read() as s:
        found = _my_cases_in(s, rt, user_id, limit=limit, offset=0)
        return MyPage(found, dict(ratings.unrated_closed_of(s, user_id)) if found else {})


def _my_cases_in(s: Session, rt: Runtime, user_id: int, *, limit: int, offset: int) -> list[MyCase]:
    out = []
    for case in cases.cases_of_reporter(s, user_id, limit=limit, offset=offset):
        category = index.org(rt).category(case.category_id) if case.category_id else None
        out.append(
            MyCase(
                code=case.code,
                state=case.state,
                category_zh=category.name_zh if category else "—",
                category_en=category.name_en if category else "—",
                created_at=case.created_at,
            )
        )
    return out
