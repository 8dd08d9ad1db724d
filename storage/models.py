"""The tables. Organisation, people and roles, chats, invites, audit events, cases.

Every timestamp is stored timezone-aware in UTC (``UTCDateTime``): SQLite keeps no
zone, so the column type puts it back on the way out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Index, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def empty_list() -> list[Any]:
    """A list field's default. Pydantic inspects a default factory's signature on every
    construction of a row: for the builtin `list` that fails, slowly (140 µs, a new case's
    whole construction took 370 µs); for a plain function it takes 9 µs."""
    return []


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def pk(row: Any) -> int:
    """The id of a row that has been read from or flushed to the database. SQLModel types
    ids ``int | None`` (None before the INSERT); once stored, an id is an int."""
    assert row.id is not None, f"{type(row).__name__} not flushed yet"
    return int(row.id)


def ts_field(*, nullable: bool = False, index: bool = False, default_now: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if default_now:
        kwargs["default_factory"] = utcnow
    elif nullable:
        kwargs["default"] = None
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


def tg_id_field(*, unique: bool = False, nullable: bool = False, index: bool = False) -> Any:
    # Telegram ids exceed 2**31 (group ids are -100…), so they need BIGINT on PostgreSQL.
    return Field(
        default=None if nullable else ...,
        sa_column=Column(BigInteger(), unique=unique, nullable=nullable, index=index),
    )


# --- organisation -----------------------------------------------------------------


class District(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    name_zh: str
    name_en: str
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    settings: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = ts_field(default_now=True)


class Street(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    abbr: str = Field(unique=True, max_length=8)  # prefix of case codes, e.g. QB-261122-0007
    district_id: int = Field(foreign_key="district.id", index=True)
    name_zh: str
    name_en: str
    auto_dispatch: bool = False
    settings: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    active: bool = True


class Community(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    street_id: int = Field(foreign_key="street.id", index=True)
    name_zh: str
    name_en: str
    active: bool = True


class Grid(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    community_id: int = Field(foreign_key="community.id", index=True)
    street_id: int = Field(foreign_key="street.id", index=True)
    name_zh: str
    name_en: str
    boundary: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # GeoJSON
    centre_lat: float | None = None
    centre_lon: float | None = None
    active: bool = True


class Platform(SQLModel, table=True):
    """A kind of platform team (综治工作, 市场监管, 综合执法, 便民服务, …)."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=16)
    name_zh: str
    name_en: str
    active: bool = True


class UnitKind:
    TEAM = "team"  # a street's platform team
    COMMAND_ROOM = "command_room"  # a street's 指挥中心
    DEPARTMENT = "department"  # a district department


class Unit(SQLModel, table=True):
    """Anyone who works cases as a body: a platform team, a command room or a department."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    kind: str = Field(max_length=16, index=True)
    street_id: int | None = Field(default=None, foreign_key="street.id", index=True)
    platform_id: int | None = Field(default=None, foreign_key="platform.id")
    name_zh: str
    name_en: str
    active: bool = True


class Category(SQLModel, table=True):
    """One line of the responsibility list (权责清单)."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    name_zh: str
    name_en: str
    platform_id: int | None = Field(default=None, foreign_key="platform.id")
    urgent: bool = False
    limit_value: float
    limit_unit: str = Field(max_length=16)  # "hours" or "days"
    keywords: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False))
    after_photo_required: bool = True
    sort_order: int = 0
    active: bool = True
    # Open311 (issue 13): a category that is not public is never listed nor its cases shown
    # outside; `questions` become the service definition's attributes.
    public: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    questions: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False, server_default="[]"))


# --- people ------------------------------------------------------------------------


class User(SQLModel, table=True):
    """Everyone who has talked to the bot. No membership means a resident."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = tg_id_field(unique=True)
    first_name: str = ""
    last_name: str = ""
    username: str | None = None
    language: str | None = Field(default=None, max_length=16)  # chosen with /lang
    telegram_language: str | None = Field(default=None, max_length=16)
    can_message: bool = True  # false once the user blocked the bot
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)

    @property
    def display_name(self) -> str:
        # Telegram's order; two Chinese names join without a space ("刘网格", not "刘 网格")
        cjk = all(p and _is_cjk(p[0]) and _is_cjk(p[-1]) for p in (self.first_name, self.last_name))
        name = ("" if cjk else " ").join(p for p in (self.first_name, self.last_name) if p)
        return name or (f"@{self.username}" if self.username else str(self.telegram_id))


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


class Role:
    WORKER = "worker"  # 网格员, scope: grid
    STAFF = "staff"  # platform team staff, scope: team
    DISPATCHER = "dispatcher"  # command room, scope: street
    DEPARTMENT = "department"  # department staff, scope: department
    SUPERVISOR = "supervisor"  # scope: street or district

    ALL = (WORKER, STAFF, DISPATCHER, DEPARTMENT, SUPERVISOR)


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "role", "scope_code"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(max_length=16)
    scope_kind: str = Field(max_length=16)  # grid, unit, street, district
    scope_code: str = Field(max_length=32, index=True)
    invite_id: int | None = Field(default=None, foreign_key="invite.id")
    created_at: datetime = ts_field(default_now=True)
    # Revoked (/revoke, left the team's group, scope gone from the organisation file): the
    # row stays for the record; only active rows give rights. A new invite reactivates it.
    active: bool = True
    revoked_at: datetime | None = ts_field(nullable=True)
    revoked_reason: str | None = Field(default=None, max_length=32)  # revoke, left_group, org_removed


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    role: str = Field(max_length=16)
    scope_kind: str = Field(max_length=16)
    scope_code: str = Field(max_length=32)
    created_by: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    created_at: datetime = ts_field(default_now=True)
    expires_at: datetime = ts_field()
    used_at: datetime | None = ts_field(nullable=True)
    used_by_user_id: int | None = Field(default=None, foreign_key="user.id")


class Chat(SQLModel, table=True):
    """A group chat the bot is in, and the unit it serves once bound."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = tg_id_field(unique=True)
    title: str = ""
    type: str = Field(default="group", max_length=16)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    language: str | None = Field(default=None, max_length=16)
    status: str = Field(default="active", max_length=16)  # active, left, blocked
    bound_by: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    bound_at: datetime | None = ts_field(nullable=True)
    updated_at: datetime = ts_field(default_now=True)


class AuditEvent(SQLModel, table=True):
    """Append-only trail: who did what, when, from which state to which."""

    __table_args__ = (Index("ix_auditevent_subject", "subject_type", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = ts_field(default_now=True, index=True)
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    action: str = Field(max_length=48)
    subject_type: str = Field(max_length=24)
    subject_id: int | None = None
    case_id: int | None = Field(default=None, index=True)
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str | None = Field(default=None, max_length=24)
    note: str | None = None
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- cases ------------------------------------------------------------------------


class CaseState:
    REPORTED = "reported"
    DISPATCHED = "dispatched"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    CLOSED = "closed"
    RETURNED = "returned"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"

    # Each state's kind, as FixMyStreet declares state types: "open" (somebody must act),
    # "waiting" (on a verification), "closed" (over). The lifecycle (bot/cases/lifecycle.py)
    # owns the moves; the kinds live here because queries filter on them.
    KIND: ClassVar[dict[str, str]] = {
        REPORTED: "open",
        DISPATCHED: "open",
        CLAIMED: "open",
        RETURNED: "open",
        ESCALATED: "open",
        REOPENED: "open",
        RESOLVED: "waiting",
        CLOSED: "closed",
        REJECTED: "closed",
        DUPLICATE: "closed",
    }
    FINAL = tuple(state for state, kind in KIND.items() if kind == "closed")
    NOT_FINAL = tuple(state for state, kind in KIND.items() if kind != "closed")


class CaseSource:
    PATROL = "patrol"  # a grid worker on their rounds (未诉先办)
    RESIDENT = "resident"  # a resident through the bot
    HOTLINE = "hotline"  # 12345 and other hotlines, entered by staff


# The work lists (storage/worklists.py) are served by partial indexes that hold only the
# cases a list can show, in the list's order. SQLite uses a partial index only when the
# query repeats the index's condition term for term (the same literal values in the same
# order), so the work lists build their state filter from these very tuples; a change here
# needs a migration (tests/test_migrations.py compares the conditions with the database's).
WORKLIST_OPEN_STATES: tuple[str, ...] = CaseState.NOT_FINAL
WORKLIST_CLAIMABLE_STATES: tuple[str, ...] = (CaseState.DISPATCHED, CaseState.REOPENED)  # a team's, unclaimed


def state_in_sql(states: tuple[str, ...]) -> str:
    """`state IN ('a', 'b')`: a partial index's condition (the states are our constants)."""
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


RESOLVED_ONLY = f"state = '{CaseState.RESOLVED}'"  # cases waiting for their verification


def _partial(sql: str) -> dict[str, Any]:
    return {"sqlite_where": text(sql), "postgresql_where": text(sql)}


class Case(SQLModel, table=True):
    """A reported problem (事件)."""

    __tablename__ = "cases"  # CASE is an SQL keyword
    __table_args__ = (
        Index("ix_case_state_street", "state", "street_id"),
        Index("ix_case_dedupe", "category_id", "state", "latitude", "longitude"),
        # The work lists, each walked in its ORDER BY (urgent DESC, created_at DESC, id DESC:
        # an ascending index read backwards) after the equality on its leading column.
        # /tasks mine: the person's open cases.
        Index(
            "ix_case_owner_open",
            "owner_user_id",
            "urgent",
            "created_at",
            "id",
            **_partial(state_in_sql(WORKLIST_OPEN_STATES)),
        ),
        # /tasks team: the team's cases waiting to be claimed.
        Index(
            "ix_case_unit_claimable",
            "unit_id",
            "urgent",
            "created_at",
            "id",
            **_partial(state_in_sql(WORKLIST_CLAIMABLE_STATES) + " AND owner_user_id IS NULL"),
        ),
        # /tasks street: the street's open cases.
        Index(
            "ix_case_street_open",
            "street_id",
            "urgent",
            "created_at",
            "id",
            **_partial(state_in_sql(WORKLIST_OPEN_STATES)),
        ),
        # /queue of a team (its staff): the team's open cases, claimed ones included.
        Index(
            "ix_case_unit_open", "unit_id", "urgent", "created_at", "id", **_partial(state_in_sql(WORKLIST_OPEN_STATES))
        ),
        # /queue's overdue and due-today filters: a street's or team's open cases by due time
        # (a few of many, then sorted into the list's order).
        Index("ix_case_street_due", "street_id", "due_at", **_partial(state_in_sql(WORKLIST_OPEN_STATES))),
        Index("ix_case_unit_due", "unit_id", "due_at", **_partial(state_in_sql(WORKLIST_OPEN_STATES))),
        # /queue's "awaiting verification" filter, in the list's order.
        Index("ix_case_street_resolved", "street_id", "urgent", "created_at", "id", **_partial(RESOLVED_ONLY)),
        Index("ix_case_unit_resolved", "unit_id", "urgent", "created_at", "id", **_partial(RESOLVED_ONLY)),
        # /my: everything the person reported, newest first.
        Index("ix_case_reporter_created", "reporter_user_id", "created_at", "id"),
        # A street's cases by date: the desk's figures, export and map (issue 11) and
        # Open311's GET requests (issue 13).
        Index("ix_case_street_created", "street_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    state: str = Field(default=CaseState.REPORTED, max_length=16)
    version: int = 1
    source: str = Field(default=CaseSource.PATROL, max_length=16)
    # No index of its own: ix_case_reporter_created starts with it (/my and rate limits use that).
    reporter_user_id: int | None = Field(default=None, foreign_key="user.id")
    street_id: int | None = Field(default=None, foreign_key="street.id")
    community_id: int | None = Field(default=None, foreign_key="community.id")
    grid_id: int | None = Field(default=None, foreign_key="grid.id", index=True)
    category_id: int | None = Field(default=None, foreign_key="category.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)  # the team working it
    owner_user_id: int | None = Field(default=None, foreign_key="user.id", index=True)  # who claimed it
    suggested_unit_id: int | None = Field(default=None, foreign_key="unit.id")  # what routing proposed
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None  # a venue's title and address, when the location came as one
    description: str = ""
    urgent: bool = False
    duplicate_of_id: int | None = Field(default=None, foreign_key="cases.id")
    decision_note: str | None = None  # why it was rejected, or other dispatcher words
    created_at: datetime = ts_field(default_now=True, index=True)
    updated_at: datetime = ts_field(default_now=True)
    dispatched_at: datetime | None = ts_field(nullable=True)
    claimed_at: datetime | None = ts_field(nullable=True)
    resolved_at: datetime | None = ts_field(nullable=True)
    closed_at: datetime | None = ts_field(nullable=True)
    due_at: datetime | None = ts_field(nullable=True, index=True)
    # Deadlines (issue: reminders and supervision). The clock starts at dispatch; time a
    # case waits on verification is added back when it reopens.
    deadline_started_at: datetime | None = ts_field(nullable=True)
    claim_started_at: datetime | None = ts_field(nullable=True)  # when it last became unclaimed
    next_reminder_at: datetime | None = ts_field(nullable=True, index=True)  # what the sweep looks at
    reminders_done: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False))
    rung: int = 0  # supervision ladder: 1 overdue (督办), 2 street supervisors, 3 district
    verify_escalated_at: datetime | None = ts_field(nullable=True)  # unverified too long: put to the command room


class CaseMedia(SQLModel, table=True):
    """A photo or voice note attached to a case, at some stage of its life."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    support_id: int | None = Field(default=None, foreign_key="supportingreport.id")
    stage: str = Field(default="report", max_length=16)  # report, support, progress, after
    kind: str = Field(default="photo", max_length=16)  # photo, voice
    telegram_file_id: str | None = None  # the sender's upload, as Telegram stores it
    # Telegram's file_id for our normalized JPEG once a card has uploaded it: later cards (other
    # chats, after a restart) send it by id instead of uploading the bytes again.
    jpeg_file_id: str | None = None
    sha256: str | None = Field(default=None, max_length=64)
    original_path: str | None = None
    jpeg_path: str | None = None
    thumb_path: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None  # voice notes, seconds
    taken_at: datetime | None = ts_field(nullable=True)
    added_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts_field(default_now=True)


class SupportingReport(SQLModel, table=True):
    """A second report of a case already open: its reporter and photos are kept."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    reporter_user_id: int | None = Field(default=None, foreign_key="user.id")
    description: str = ""
    latitude: float | None = None
    longitude: float | None = None
    # joined: the reporter chose to join; duplicate: a dispatcher folded their case in
    # (already counted once as that case, so the rate limit must not count it again)
    origin: str = Field(default="joined", max_length=16)
    created_at: datetime = ts_field(default_now=True)


class CaseCounter(SQLModel, table=True):
    """The daily sequence behind readable case codes (QB-261122-0007)."""

    __table_args__ = (UniqueConstraint("prefix", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=8)
    day: str = Field(max_length=8)  # yymmdd, local date
    last: int = 0


class CaseCard(SQLModel, table=True):
    """Where a case's card was posted, so it can be edited in place later."""

    __table_args__ = (UniqueConstraint("case_id", "chat_id", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    chat_id: int = tg_id_field()
    message_id: int
    purpose: str = Field(max_length=16)  # command, team, department, reporter
    is_photo: bool = False  # a photo card is edited by its caption, a text card by its text
    created_at: datetime = ts_field(default_now=True)


class ReportDraft(SQLModel, table=True):
    """A report being written, kept in the database so a restart loses nothing."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", unique=True)
    step: str = Field(max_length=24)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = 1
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True, index=True)


class Outbox(SQLModel, table=True):
    """A message we owe someone, committed with the change that caused it."""

    __table_args__ = (Index("ix_outbox_pending", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = tg_id_field()
    kind: str = Field(max_length=24)  # what to render: case_card, text, …
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    purpose: str | None = Field(default=None, max_length=16)  # for cards: command, team, …
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", max_length=16)  # pending, sending, sent, failed
    attempts: int = 0
    next_attempt_at: datetime = ts_field(default_now=True)
    created_at: datetime = ts_field(default_now=True)
    sent_at: datetime | None = ts_field(nullable=True)
    message_id: int | None = None
    error: str | None = None


class Whistle(SQLModel, table=True):
    """A case escalated to a district department (吹哨), and its report-in (报到)."""

    __table_args__ = (UniqueConstraint("case_id", "unit_id", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)  # the department
    round: int = 1  # a case can be escalated more than once
    request: str = ""
    requested_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts_field(default_now=True)
    reported_in_at: datetime | None = ts_field(nullable=True)
    reported_in_by: int | None = Field(default=None, foreign_key="user.id")


class PendingInput(SQLModel, table=True):
    """What the bot is waiting for from someone in private chat for a case action
    (the result of a resolve, a reason, a note), so a restart loses nothing."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", unique=True)
    action: str = Field(max_length=24)
    case_id: int = Field(foreign_key="cases.id")
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = ts_field(default_now=True)
    updated_at: datetime = ts_field(default_now=True)


class ExtensionRequest(SQLModel, table=True):
    """A handler asking for more time; the command room decides, and the decision is kept."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    requested_by: int | None = Field(default=None, foreign_key="user.id")
    reason: str = ""
    old_due_at: datetime | None = ts_field(nullable=True)
    new_due_at: datetime = ts_field()
    created_at: datetime = ts_field(default_now=True)
    decision: str | None = Field(default=None, max_length=16)  # approved, refused
    decided_by: int | None = Field(default=None, foreign_key="user.id")
    decided_at: datetime | None = ts_field(nullable=True)


class DigestLog(SQLModel, table=True):
    """One morning digest per street and day: inserting the row is how a sender claims it."""

    __table_args__ = (UniqueConstraint("street_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    street_id: int = Field(foreign_key="street.id")
    day: str = Field(max_length=10)  # local date, ISO
    created_at: datetime = ts_field(default_now=True)


# --- satisfaction (好差评) and follow-up (回访) -------------------------------------------


class RatingLink(SQLModel, table=True):
    """A link (and QR code) a worker hands a resident so they can rate a case.

    The token is the deep-link payload after ``rate-``; the first resident to open it
    is attached to the case, and nobody else can use it."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, max_length=48)
    case_id: int = Field(foreign_key="cases.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = ts_field(default_now=True)
    expires_at: datetime = ts_field()
    used_at: datetime | None = ts_field(nullable=True)
    used_by_user_id: int | None = Field(default=None, foreign_key="user.id")


class RatingRequest(SQLModel, table=True):
    """A resident attached to a case, to be asked for a rating when it closes."""

    __table_args__ = (UniqueConstraint("case_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    origin: str = Field(max_length=16)  # reporter, link
    link_id: int | None = Field(default=None, foreign_key="ratinglink.id")
    created_at: datetime = ts_field(default_now=True)
    first_asked_at: datetime | None = ts_field(nullable=True, index=True)
    asked_at: datetime | None = ts_field(nullable=True)  # the latest time we asked
    asks: int = 0  # how many times we asked (once per close)
    remind_at: datetime | None = ts_field(nullable=True, index=True)  # the one reminder, when due
    reminded_at: datetime | None = ts_field(nullable=True)
    rated_at: datetime | None = ts_field(nullable=True)


class Rating(SQLModel, table=True):
    """One resident's rating of one case (一事一评). Level 5 is very satisfied, 1 very dissatisfied."""

    __table_args__ = (UniqueConstraint("case_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    request_id: int | None = Field(default=None, foreign_key="ratingrequest.id")
    level: int
    comment: str | None = None
    comment_truncated: bool = False
    comment_voice_file_id: str | None = None
    comment_voice_seconds: int | None = None
    comment_until: datetime | None = ts_field(nullable=True)  # the resident may still add a comment
    prompt_message_id: int | None = None  # the message that asked for the comment
    created_at: datetime = ts_field(default_now=True, index=True)


class FollowUp(SQLModel, table=True):
    """A bad rating's follow-up visit (回访), owed by the street's command room."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    rating_id: int = Field(foreign_key="rating.id", unique=True)
    street_id: int | None = Field(default=None, foreign_key="street.id", index=True)
    created_at: datetime = ts_field(default_now=True, index=True)
    due_at: datetime = ts_field(index=True)
    next_reminder_at: datetime | None = ts_field(nullable=True, index=True)  # for the deadline sweep
    reminders_done: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False))
    rung: int = 0  # supervision ladder, as for cases
    contacted_at: datetime | None = ts_field(nullable=True)
    contacted_by: int | None = Field(default=None, foreign_key="user.id")
    outcome: str | None = Field(default=None, max_length=16)  # resolved, unreachable, reopened
    done_at: datetime | None = ts_field(nullable=True)
    done_by: int | None = Field(default=None, foreign_key="user.id")
    card_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    card_message_id: int | None = None


# --- open to the systems around it (issue 13) ---------------------------------------------


class ApiKey(SQLModel, table=True):
    """A client of the HTTP API (an Open311 app, the 12345 hotline system). Only the key's
    SHA-256 is kept; the key itself is shown once, when made."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    key_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = ts_field(default_now=True)
    revoked_at: datetime | None = ts_field(nullable=True)


class ExternalTicket(SQLModel, table=True):
    """A case that came from outside Telegram: who sent it, their reference, and what must
    stay private (the hotline caller's contact, shown to dispatchers in /case only)."""

    __table_args__ = (UniqueConstraint("api_key_id", "ticket_no"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", unique=True)
    source: str = Field(max_length=16)  # open311, hotline
    api_key_id: int | None = Field(default=None, foreign_key="apikey.id")
    ticket_no: str | None = Field(default=None, max_length=64)
    token: str = Field(unique=True, max_length=48)  # Open311's token for the request
    caller_name: str | None = None
    caller_phone: str | None = Field(default=None, max_length=32)
    deadline: datetime | None = ts_field(nullable=True)
    attributes: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = ts_field(default_now=True)


WEBHOOK_EVENTS: tuple[str, ...] = (
    "case.created",
    "case.dispatched",
    "case.claimed",
    "case.resolved",
    "case.closed",
    "case.reopened",
    "case.overdue",
    "case.rated",
)


class WebhookSubscription(SQLModel, table=True):
    """Somebody outside who wants to hear about the cases of a street or the district."""

    id: int | None = Field(default=None, primary_key=True)
    url: str
    scope_code: str = Field(max_length=32, index=True)  # a street or the district code
    events: list = Field(default_factory=empty_list, sa_column=Column(JSON, nullable=False))  # empty: all
    secret: str = Field(max_length=64)
    origin: str = Field(default="cli", max_length=8)  # cli, org (declared in the organisation file)
    active: bool = True
    failures: int = 0  # consecutive failed deliveries
    paused_at: datetime | None = ts_field(nullable=True)
    created_at: datetime = ts_field(default_now=True)


class WebhookEvent(SQLModel, table=True):
    """An event owed to a subscriber: written in the transaction of the change, posted later."""

    __table_args__ = (Index("ix_webhookevent_due", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    subscription_id: int = Field(foreign_key="webhooksubscription.id", index=True)
    event: str = Field(max_length=24)
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    body: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", max_length=16)  # pending, sending, sent, failed
    attempts: int = 0
    next_attempt_at: datetime = ts_field(default_now=True)
    created_at: datetime = ts_field(default_now=True)
    delivered_at: datetime | None = ts_field(nullable=True)
    error: str | None = None


class InboxUpdate(SQLModel, table=True):
    """An update from Telegram, stored before its offset is confirmed (polling) or before
    the webhook is answered: a crash loses none; `processed_at` says it was handled."""

    __tablename__ = "inbox_update"  # kept small: handled rows are purged after a day

    update_id: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = ts_field(default_now=True)
    processed_at: datetime | None = ts_field(nullable=True)


class CaseFigures(SQLModel, table=True):
    """One case's contribution to the assessment figures (issue 11), kept in the transaction
    of every change to the case (bot/desk/figures.py `refresh`): a scope's figures are then
    a GROUP BY over this narrow table instead of a walk over every case and its timeline.

    The counters are named after the figures they add to; the two figures that depend on
    the time they are asked at are stored as the moment they start to count."""

    __tablename__ = "case_figures"
    __table_args__ = (
        Index("ix_case_figures_case", "case_id", unique=True),  # rewriting one case's row
        Index("ix_case_figures_street_created", "street_id", "created_at"),
        Index("ix_case_figures_unit_created", "unit_id", "created_at"),
        Index("ix_case_figures_grid_created", "grid_id", "created_at"),
        # The 90th percentile reads just the handling hours of a period (or a street's).
        Index("ix_case_figures_hours", "created_at", "handling_hours", **_partial("handling_hours IS NOT NULL")),
        Index(
            "ix_case_figures_street_hours",
            "street_id",
            "created_at",
            "handling_hours",
            **_partial("handling_hours IS NOT NULL"),
        ),
        # Keyed by the time received: on SQLite (WITHOUT ROWID) the rows are then stored in that
        # order, and a period's figures read one stretch of the table instead of a row lookup
        # per case (cases are not received in id order everywhere: imports, the hotline).
        {"sqlite_with_rowid": False},
    )

    created_at: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    # CASCADE: a case deleted (tests, a demo reset) takes its figures along
    case_id: int = Field(
        sa_column=Column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    )
    # the case's scope and breakdown keys, as the case holds them now
    street_id: int | None = None
    unit_id: int | None = None
    grid_id: int | None = None
    category_id: int | None = None
    owner_user_id: int | None = None
    received: int = 0
    dispatched: int = 0
    response_due: int = 0  # claimed after its dispatch: the response is known
    response_due_after: datetime | None = ts_field(nullable=True)  # not claimed: late once this passes
    claimed_in_time: int = 0
    closed: int = 0
    closed_on_time: int = 0
    overdue_at_closure: int = 0
    verified_first_time: int = 0
    reopened: int = 0
    overdue_now: int = 0  # overdue whenever asked (resolved after its due time, not yet verified)
    overdue_after: datetime | None = ts_field(nullable=True)  # not finished: overdue once this passes
    handling_hours: float | None = None  # closed: working hours from first dispatch to last resolution
    ratable_closed: int = 0
    rated_closed: int = 0
    ratings: int = 0
    satisfied: int = 0
    whistles: int = 0
    reported_in: int = 0
    report_in_hours: float = 0.0  # the sum over its whistles reported in


class CaseDepartmentFigures(SQLModel, table=True):
    """A case's whistles to one department (吹哨): the department's scope and breakdown."""

    __tablename__ = "case_department_figures"

    case_id: int = Field(
        sa_column=Column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    )
    unit_id: int = Field(sa_column=Column(ForeignKey("unit.id"), primary_key=True, autoincrement=False, index=True))
    whistles: int = 0
    reported_in: int = 0
    report_in_hours: float = 0.0


class FiguresStale(SQLModel, table=True):
    """A case whose figures (case_figures) must be derived again: written by triggers of the
    database itself on every change to a case or to the rows that carry its figures (audit
    events, ratings, rating requests, whistles; migration 0008), so keeping the figures costs
    an update no statement of its own. The desk derives the marked cases before it sums
    (bot/desk/figures.py `catch_up`), and a job does it every minute."""

    __tablename__ = "figures_stale"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int
