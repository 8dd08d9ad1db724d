"""Who is asking: users, their roles, their language."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import normalise_language, pick_language
from bot.people.roles import MembershipView, Person
from bot.runtime import Runtime
from storage import orgs, people
from storage.models import Membership


@dataclass(frozen=True)
class Profile:
    """What Telegram tells us about a user."""

    telegram_id: int
    first_name: str = ""
    last_name: str = ""
    username: str | None = None
    language_code: str | None = None


def identify(rt: Runtime, profile: Profile) -> Person:
    """Register or refresh the user and return who they are.

    Every update asks this, and almost always nothing changed: so the answer is kept in
    memory (dropped when their roles or language change, or the organisation is
    re-imported), the database read only for somebody new to this process, and the write
    lock taken only for a newcomer or a changed name or language."""
    known = _known(rt)
    hit = known.get(profile.telegram_id)
    if hit is not None and hit[0] == profile:
        return hit[1]
    person = _identify(rt, profile)
    known[profile.telegram_id] = (profile, person)
    return person


def remembered(rt: Runtime, profile: Profile) -> Person | None:
    """Who this is, if this process knows them and nothing changed (memory only)."""
    hit = _known(rt).get(profile.telegram_id)
    return hit[1] if hit is not None and hit[0] == profile else None


def forget(rt: Runtime, user_id: int) -> None:
    """Their roles or language changed: the next update reads them again."""
    known = _known(rt)
    for telegram_id, (_, person) in list(known.items()):
        if person.user_id == user_id:
            del known[telegram_id]


def _known(rt: Runtime) -> dict[int, tuple[Profile, Person]]:
    return rt.cache.setdefault("people", {})


def _identify(rt: Runtime, profile: Profile) -> Person:
    with rt.db.read() as s:
        user = people.get_user_by_telegram_id(s, profile.telegram_id)
        if user is not None and not people.needs_refresh(
            user, profile.first_name, profile.last_name, profile.username, profile.language_code
        ):
            return _person(rt, s, user)
    with rt.db.session() as s:
        user, created = people.upsert_user(
            s,
            telegram_id=profile.telegram_id,
            first_name=profile.first_name,
            last_name=profile.last_name,
            username=profile.username,
            telegram_language=profile.language_code,
            now=rt.clock.now(),
        )
        return _person(rt, s, user, new=created)


def _person(rt: Runtime, s, user, *, new: bool = False) -> Person:
    # Somebody just registered holds no role yet: their memberships need no look.
    views = () if new else tuple(_view(s, m) for m in people.memberships_of(s, user.id))
    language = pick_language(user.language, user.telegram_language, rt.settings.default_language)
    return Person(
        user_id=user.id,
        telegram_id=user.telegram_id,
        name=user.display_name,
        language=language,
        is_admin=user.telegram_id in rt.settings.admin_ids,
        memberships=views,
    )


def _view(s, m: Membership) -> MembershipView:
    # Every update asks who is asking: look the scope up by its known kind, once.
    row = orgs.scope_row(s, m.scope_kind, m.scope_code)
    zh = getattr(row, "name_zh", m.scope_code)
    en = getattr(row, "name_en", m.scope_code)
    return MembershipView(m.role, m.scope_kind, m.scope_code, zh, en)


def set_language(rt: Runtime, *, user_id: int, language: str) -> str:
    lang = normalise_language(language)
    if lang is None:
        raise ValueError(language)
    with rt.db.session() as s:
        people.set_language(s, user_id=user_id, language=lang, now=rt.clock.now())
    forget(rt, user_id)
    return lang


def mark_unreachable(rt: Runtime, telegram_id: int) -> None:
    """The user blocked the bot: stop trying to message them until they come back."""
    with rt.db.session() as s:
        people.set_can_message(s, telegram_id=telegram_id, can_message=False)
