"""Callback data: short, versioned strings like ``v1:claim:42`` (Telegram allows 64 bytes).

One small frozen dataclass per kind of button. Its kind name (given once, in the class
statement) is the prefix after the version; its fields, in order, follow, each an ``int``
or a ``str``: ``Claim(42).pack() == "v1:claim:42"``, ``Work("resolve", 42).pack() ==
"v1:work:resolve:42"``.

All checking happens here, in :func:`parse`: the version, the kind, the number of fields,
ints as plain ASCII digits (at most 12, no sign, no leading zero), strs against the
field's pattern or list of allowed values. Anything else is :class:`BadCallback`.

A button is never trusted all the same: parsing only says what the press *claims* to be;
the handler re-checks the user's rights and the case's state on every press.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.i18n import SUPPORTED_LANGUAGES

VERSION = "v1"
MAX_BYTES = 64
SEP = ":"

_INT = re.compile(r"0|[1-9][0-9]{0,11}")  # ASCII digits only: str.isdigit() takes '４２' and '٤٢'
# Fields named *_id are database ids: an INTEGER column on PostgreSQL refuses anything larger
# (a draft's `ref` is no id and takes all 12 digits).
ID_MAX = 2**31 - 1
_WORD = re.compile(r"[a-z0-9_]{1,24}")  # a str field without a list of its own


class BadCallback(ValueError):
    """Callback data we did not make, or made by an older version of the bot."""


def choice(*values: str) -> dict[str, Any]:
    """Field metadata: a str field that takes only these values (``field(metadata=choice(…))``)."""
    return {"choices": frozenset(values)}


def pattern(regex: str) -> dict[str, Any]:
    """Field metadata: a str field that must match `regex` whole (ASCII classes, not \\d or \\w)."""
    return {"pattern": re.compile(regex)}


_KINDS: dict[str, type[Button]] = {}


class Button:
    """Base of every kind of button: ``class Claim(Button, kind="claim")``."""

    KIND: ClassVar[str]

    def __init_subclass__(cls, *, kind: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not _WORD.fullmatch(kind) or kind in _KINDS:
            raise TypeError(f"bad or repeated button kind {kind!r}")
        cls.KIND = kind
        _KINDS[kind] = cls

    def pack(self) -> str:
        values = [str(getattr(self, f.name)) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        data = SEP.join((VERSION, self.KIND, *values))
        try:
            same = parse(data) == self
        except BadCallback:
            same = False
        if not same:  # a bug in the caller, not a forged press: not the stale answer
            raise ValueError(f"cannot make callback data of {self!r}")
        return data


def kinds() -> dict[str, type[Button]]:
    """Every kind of button, by its kind name."""
    return dict(_KINDS)


def parse(data: str | None) -> Button:
    if not data or len(data.encode()) > MAX_BYTES:
        raise BadCallback(data)
    version, _, rest = data.partition(SEP)
    kind, _, rest = rest.partition(SEP)
    cls = _KINDS.get(kind)
    if version != VERSION or cls is None:
        raise BadCallback(data)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    parts = rest.split(SEP) if rest else []
    if len(parts) != len(fields):
        raise BadCallback(data)
    values: dict[str, int | str] = {}
    for f, part in zip(fields, parts, strict=True):
        if f.type in (int, "int"):
            if not _INT.fullmatch(part) or (f.name.endswith("_id") and int(part) > ID_MAX):
                raise BadCallback(data)
            values[f.name] = int(part)
        elif "choices" in f.metadata:
            if part not in f.metadata["choices"]:
                raise BadCallback(data)
            values[f.name] = part
        else:
            if not f.metadata.get("pattern", _WORD).fullmatch(part):
                raise BadCallback(data)
            values[f.name] = part
    return cls(**values)


# --- a case's card in the team group --------------------------------------------------


@dataclass(frozen=True)
class Claim(Button, kind="claim"):
    case_id: int


@dataclass(frozen=True)
class Release(Button, kind="release"):
    case_id: int


@dataclass(frozen=True)
class Assign(Button, kind="assign"):
    """/assign's list: give the case to this member of its team."""

    case_id: int
    user_id: int


# The actions that open a private exchange from a card (bot.cases.casework's input actions,
# less "not fixed", which has its own button on the resident's verify request).
WORK_ACTIONS = ("resolve", "note", "escalate", "extend", "return")


@dataclass(frozen=True)
class Work(Button, kind="work"):
    action: str = field(metadata=choice(*WORK_ACTIONS))
    case_id: int


# --- the private exchange a work action opens (the pending input's id first) -----------


@dataclass(frozen=True)
class InputDone(Button, kind="input_done"):
    pending_id: int


@dataclass(frozen=True)
class InputCancel(Button, kind="input_cancel"):
    pending_id: int


@dataclass(frozen=True)
class InputTeam(Button, kind="input_team"):
    """Escalating: toggle a department."""

    pending_id: int
    unit_id: int


@dataclass(frozen=True)
class InputHours(Button, kind="input_hours"):
    """Asking for more time in plain hours: the buttons before more time was asked in the
    unit of the limit. Still parsed, so a press on an old prompt gets the new choices."""

    pending_id: int
    hours: int


@dataclass(frozen=True)
class InputMore(Button, kind="input_more"):
    """Asking for more time: how much, in the unit of the case's limit (working hours,
    working days; hours, days when urgent: bot.cases.deadlines.MORE_TIME_CHOICES)."""

    pending_id: int
    amount: int
    # the units of bot.cases.deadlines.MORE_TIME_CHOICES (tests/test_callbacks.py checks)
    unit: str = field(metadata=choice("wh", "wd", "h", "d"))


# --- verify, report in, more time -------------------------------------------------------


@dataclass(frozen=True)
class Confirm(Button, kind="confirm"):
    """The resident: it is fixed."""

    case_id: int


@dataclass(frozen=True)
class NotFixed(Button, kind="not_fixed"):
    """The resident: it is not fixed (opens a private exchange, like a work action)."""

    case_id: int


@dataclass(frozen=True)
class ReportIn(Button, kind="report_in"):
    """A department answers a whistle."""

    whistle_id: int


@dataclass(frozen=True)
class Extension(Button, kind="extension"):
    """The command room decides a request for more time."""

    decision: str = field(metadata=choice("approve", "refuse"))
    request_id: int

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


# --- rating -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate(Button, kind="rate"):
    request_id: int
    level: int


@dataclass(frozen=True)
class SkipComment(Button, kind="skip_comment"):
    rating_id: int


@dataclass(frozen=True)
class FollowUp(Button, kind="followup"):
    """The command room's follow-up of a poor rating (ops of bot.rating.ratings.FOLLOWUP_OPS)."""

    followup_id: int
    op: str = field(metadata=choice("c", "r", "u", "o"))


# --- the command room's decision on a new case ----------------------------------------


@dataclass(frozen=True)
class Dispatch(Button, kind="dispatch"):
    case_id: int
    unit_id: int


@dataclass(frozen=True)
class Duplicate(Button, kind="duplicate"):
    case_id: int
    original_id: int


@dataclass(frozen=True)
class Reject(Button, kind="reject"):
    """Reject with a preset reason (the keys of bot.cases.dispatch.REASONS)."""

    case_id: int
    reason: str = field(metadata=choice("scope", "info", "handled", "notreal"))


# teams / originals / reasons: list the choices; back: the card's own buttons again.
DISPATCH_MENUS = ("teams", "originals", "reasons", "back")


@dataclass(frozen=True)
class DispatchMenu(Button, kind="dispatch_menu"):
    menu: str = field(metadata=choice(*DISPATCH_MENUS))
    case_id: int


# --- the report conversation (the draft's ref first: a button of another draft is stale) -


# done: on to the next question; back: the suggested categories; platforms: all platforms;
# cancel; submit as a new case.
REPORT_STEPS = ("done", "back", "platforms", "cancel", "submit")
REPORT_FIELDS = ("location", "photos", "description", "category")


@dataclass(frozen=True)
class Report(Button, kind="report"):
    ref: int
    step: str = field(metadata=choice(*REPORT_STEPS))


@dataclass(frozen=True)
class ReportLocation(Button, kind="report_location"):
    """Use the worker's grid centre, or the position in the photo."""

    ref: int
    source: str = field(metadata=choice("grid", "exif"))


@dataclass(frozen=True)
class ReportGrid(Button, kind="report_grid"):
    """A worker outside their grids: file it under this grid of theirs."""

    ref: int
    grid: str = field(metadata=pattern(r"[0-9]{14}"))


@dataclass(frozen=True)
class ReportPlatform(Button, kind="report_platform"):
    ref: int
    platform: str = field(metadata=pattern(r"[A-Z][A-Z0-9]{1,7}"))


@dataclass(frozen=True)
class ReportCategory(Button, kind="report_category"):
    ref: int
    category_id: int


@dataclass(frozen=True)
class ReportEdit(Button, kind="report_edit"):
    ref: int
    part: str = field(metadata=choice(*REPORT_FIELDS))


@dataclass(frozen=True)
class ReportJoin(Button, kind="report_join"):
    """Add the report to this nearby open case instead of filing a new one."""

    ref: int
    case_id: int


# --- lists and settings -----------------------------------------------------------------


@dataclass(frozen=True)
class Tasks(Button, kind="tasks"):
    """A page of one of /tasks's lists."""

    list_kind: str = field(metadata=choice("mine", "team", "street"))
    page: int


@dataclass(frozen=True)
class Lang(Button, kind="lang"):
    language: str = field(metadata=choice(*SUPPORTED_LANGUAGES))


# --- /invite without arguments: role → street → community → grid (bot.people.invite_picker)

INVITE_ROLES = ("worker", "staff", "dispatcher", "department", "supervisor")
# "top" goes back to the choice of role (the picker's back button).
INVITE_LEVELS = ("top", "role", "street", "community", "grid", "unit", "district")


@dataclass(frozen=True)
class InvitePick(Button, kind="invite"):
    """An administrator's pick: the role, then what the id names (a street, a community …)."""

    role: str = field(metadata=choice(*INVITE_ROLES))
    level: str = field(metadata=choice(*INVITE_LEVELS))
    ref: int


@dataclass(frozen=True)
class InvitePage(Button, kind="invite_page"):
    """Another page of the options a pick offers (a street with many communities)."""

    role: str = field(metadata=choice(*INVITE_ROLES))
    level: str = field(metadata=choice(*INVITE_LEVELS))
    ref: int
    page: int
