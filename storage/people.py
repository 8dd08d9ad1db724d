"""Users and their memberships (role + scope)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from storage.db import ById, CoreInsert, Loads
from storage.direct import Direct
from storage.models import Membership, User, pk

_BY_TELEGRAM_ID = Loads(User, col(User.telegram_id) == bindparam("telegram_id"))  # every update: built once


def get_user_by_telegram_id(session: Session, telegram_id: int) -> User | None:
    return _BY_TELEGRAM_ID.first(session, {"telegram_id": telegram_id})


_HELD = "griddesk_users_held"  # on a session's info: the users its unit of work has read
_USER = ById(User)


def get_user(session: Session, user_id: int) -> User | None:
    """The user, read once per unit of work: the session's identity map holds rows weakly,
    so a user told one thing and then another (a case closing tells its reporter, then asks
    them to rate it) would be read again once nothing else held them."""
    user = _USER(session, user_id)
    if user is not None:
        session.info.setdefault(_HELD, []).append(user)
    return user


_USERS = User.__table__  # type: ignore[attr-defined]
_CHATS_OF = Direct(
    select(_USERS.c.id, _USERS.c.telegram_id, _USERS.c.can_message).where(
        _USERS.c.id.in_(bindparam("ids", expanding=True))
    )
)
_REACHED = "griddesk_users_reached"  # on a session's info: {user id: their chat id, or None}


def chats_of(session: Session, user_ids: Iterable[int | None]) -> dict[int, int | None]:
    """These users' private chats, None for one who cannot be messaged (they blocked the
    bot, or are unknown): what notices to them need. Read once per unit of work, for all
    of them in one statement (two columns of plain rows); a user it has loaded costs none."""
    reached: dict[int, int | None] = session.info.setdefault(_REACHED, {})
    missing = []
    for user_id in {i for i in user_ids if i is not None} - reached.keys():
        held = session.identity_map.get(identity_key(User, user_id))
        if isinstance(held, User):
            reached[user_id] = held.telegram_id if held.can_message else None
        else:
            missing.append(user_id)
    if missing:
        found = {row.id: row for row in _CHATS_OF(session, {"ids": sorted(missing)}).named()}
        for user_id in missing:
            row = found.get(user_id)
            reached[user_id] = int(row.telegram_id) if row is not None and row.can_message else None
    return reached


def chat_of(session: Session, user_id: int) -> int | None:
    """:func:`chats_of` for one user."""
    return chats_of(session, (user_id,))[user_id]


_USERS_BY_ID = Loads(User, col(User.id).in_(bindparam("ids", expanding=True)))


def users_by_id(session: Session, user_ids: Iterable[int | None]) -> dict[int, User]:
    """These users, read in one statement (ids that are None or unknown are left out)."""
    found: dict[int, User] = {}
    missing = []
    for user_id in sorted({i for i in user_ids if i is not None}):
        # A user this unit of work read already (an actor, the reporter) costs no statement.
        held = session.identity_map.get(identity_key(User, user_id))
        if isinstance(held, User):
            found[user_id] = held
        else:
            missing.append(user_id)
    if missing:
        found |= {pk(u): u for u in _USERS_BY_ID.all(session, {"ids": missing})}
    return found


def needs_refresh(
    user: User, first_name: str, last_name: str, username: str | None, telegram_language: str | None
) -> bool:
    fresh = (first_name, last_name, username, telegram_language)
    return (user.first_name, user.last_name, user.username, user.telegram_language) != fresh or not user.can_message


_NEW_USER = CoreInsert(User)  # everyone's first message


def upsert_user(
    session: Session,
    *,
    telegram_id: int,
    first_name: str,
    last_name: str,
    username: str | None,
    telegram_language: str | None,
    now: datetime,
) -> tuple[User, bool]:
    """Create the user, or refresh what Telegram tells us; writes only when something changed.
    The user, and whether they were created."""
    user = get_user_by_telegram_id(session, telegram_id)
    if user is None:
        user = _NEW_USER.one(
            session,
            telegram_id=telegram_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            telegram_language=telegram_language,
            created_at=now,
            updated_at=now,
        )
        return user, True
    if needs_refresh(user, first_name, last_name, username, telegram_language):
        user.first_name, user.last_name, user.username, user.telegram_language = (
            first_name,
            last_name,
            username,
            telegram_language,
        )
        user.can_message = True
        user.updated_at = now
        session.add(user)
        session.flush()
    return user, False


def set_language(session: Session, *, user_id: int, language: str, now: datetime) -> None:
    user = session.get(User, user_id)
    if user is not None:
        user.language = language
        user.updated_at = now
        session.add(user)


def set_can_message(session: Session, *, telegram_id: int, can_message: bool) -> None:
    user = get_user_by_telegram_id(session, telegram_id)
    if user is not None and user.can_message != can_message:
        user.can_message = can_message
        session.add(user)


def memberships_of(session: Session, user_id: int) -> list[Membership]:
    """The roles a person holds now (revoked rows give no rights)."""
    stmt = (
        select(Membership)
        .where(Membership.user_id == user_id, col(Membership.active).is_(True))
        .order_by(col(Membership.id))
    )
    return list(session.exec(stmt))


def find_membership(session: Session, *, user_id: int, role: str, scope_code: str) -> Membership | None:
    stmt = select(Membership).where(
        Membership.user_id == user_id, Membership.role == role, Membership.scope_code == scope_code
    )
    return session.exec(stmt).first()


def add_membership(
    session: Session,
    *,
    user_id: int,
    role: str,
    scope_kind: str,
    scope_code: str,
    invite_id: int | None,
    now: datetime,
) -> Membership:
    membership = Membership(
        user_id=user_id,
        role=role,
        scope_kind=scope_kind,
        scope_code=scope_code,
        invite_id=invite_id,
        created_at=now,
    )
    session.add(membership)
    session.flush()
    return membership


def members_with_role(session: Session, *, role: str, scope_code: str) -> list[User]:
    stmt = (
        select(User)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.role == role, Membership.scope_code == scope_code, col(Membership.active).is_(True))
        .order_by(col(User.id))
    )
    return list(session.exec(stmt))


def active_memberships(
    session: Session,
    *,
    user_id: int | None = None,
    role: str | None = None,
    scope_codes: Collection[str] | None = None,
) -> list[Membership]:
    """Active rows matching what is given (None: any), oldest first."""
    stmt = select(Membership).where(col(Membership.active).is_(True))
    if user_id is not None:
        stmt = stmt.where(Membership.user_id == user_id)
    if role is not None:
        stmt = stmt.where(Membership.role == role)
    if scope_codes is not None:
        stmt = stmt.where(col(Membership.scope_code).in_(list(scope_codes)))
    return list(session.exec(stmt.order_by(col(Membership.id))))


def deactivate(session: Session, membership: Membership, *, now: datetime, reason: str) -> None:
    membership.active = False
    membership.revoked_at = now
    membership.revoked_reason = reason
    session.add(membership)


def reactivate(session: Session, membership: Membership) -> None:
    membership.active = True
    membership.revoked_at = None
    membership.revoked_reason = None
    session.add(membership)


def find_by_username(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(col(User.username).ilike(username.lstrip("@")))).first()


_USERS_BY_TELEGRAM_IDS = Loads(User, col(User.telegram_id).in_(bindparam("ids", expanding=True)))


def users_by_telegram_ids(session: Session, telegram_ids: Collection[int]) -> list[User]:
    """Every send of the outbox asks (its chats' people): built once."""
    if not telegram_ids:
        return []
    return _USERS_BY_TELEGRAM_IDS.all(session, {"ids": sorted(telegram_ids)})
