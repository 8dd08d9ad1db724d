"""Callback data: every kind of button packs and parses back, and nothing else parses."""

from __future__ import annotations

import dataclasses

import pytest
from telegram.ext import Application

from bot import callbacks
from bot.callbacks import (
    ID_MAX,
    MAX_BYTES,
    Assign,
    BadCallback,
    Button,
    Claim,
    Confirm,
    Dispatch,
    DispatchMenu,
    Duplicate,
    Extension,
    FollowUp,
    InputCancel,
    InputDone,
    InputHours,
    InputMore,
    InputTeam,
    InvitePage,
    InvitePick,
    Lang,
    NotFixed,
    Rate,
    Reject,
    Release,
    Report,
    ReportCategory,
    ReportEdit,
    ReportGrid,
    ReportIn,
    ReportJoin,
    ReportLocation,
    ReportPlatform,
    SkipComment,
    Tasks,
    Work,
    kinds,
    parse,
)
from bot.cases import casework, dispatch
from bot.cases.deadlines import MORE_TIME_CHOICES
from bot.desk.buttons import DeskFix, DeskFixTo, DeskMap, DeskOpen, DeskQueue, DeskStats
from bot.i18n import SUPPORTED_LANGUAGES
from bot.rating import ratings
from handlers import buttons, registry

BIG = 999_999_999_999  # the largest int a button carries (12 digits)

# One of each kind, as the bot writes it.
EXAMPLES: list[tuple[Button, str]] = [
    (Claim(42), "v1:claim:42"),
    (Release(42), "v1:release:42"),
    (Assign(42, 7), "v1:assign:42:7"),
    (Work("resolve", 42), "v1:work:resolve:42"),
    (InputDone(5), "v1:input_done:5"),
    (InputCancel(5), "v1:input_cancel:5"),
    (InputTeam(5, 9), "v1:input_team:5:9"),
    (InputHours(5, 72), "v1:input_hours:5:72"),
    (InputMore(5, 2, "wd"), "v1:input_more:5:2:wd"),
    (Confirm(42), "v1:confirm:42"),
    (NotFixed(42), "v1:not_fixed:42"),
    (ReportIn(3), "v1:report_in:3"),
    (Extension("approve", 12), "v1:extension:approve:12"),
    (Rate(12, 4), "v1:rate:12:4"),
    (SkipComment(8), "v1:skip_comment:8"),
    (FollowUp(6, "r"), "v1:followup:6:r"),
    (Dispatch(42, 3), "v1:dispatch:42:3"),
    (Duplicate(42, 41), "v1:duplicate:42:41"),
    (Reject(42, "scope"), "v1:reject:42:scope"),
    (DispatchMenu("teams", 42), "v1:dispatch_menu:teams:42"),
    (Report(123456789012, "submit"), "v1:report:123456789012:submit"),
    (ReportLocation(77, "exif"), "v1:report_location:77:exif"),
    (ReportGrid(77, "33010200100101"), "v1:report_grid:77:33010200100101"),
    (ReportPlatform(77, "ZF"), "v1:report_platform:77:ZF"),
    (ReportCategory(77, 0), "v1:report_category:77:0"),
    (ReportEdit(77, "description"), "v1:report_edit:77:description"),
    (ReportJoin(77, 42), "v1:report_join:77:42"),
    (Tasks("mine", 2), "v1:tasks:mine:2"),
    (Lang("zh_CN"), "v1:lang:zh_CN"),
    (InvitePick("worker", "community", 7), "v1:invite:worker:community:7"),
    (InvitePage("worker", "street", 3, 1), "v1:invite_page:worker:street:3:1"),
    (DeskStats("330102001", "this-month", "tm"), "v1:dstats:330102001:this-month:tm"),  # issue 11
    (DeskQueue("overdue", 0, 2), "v1:dqueue:overdue:0:2"),
    (DeskOpen(42), "v1:dopen:42"),
    (DeskFix(42), "v1:dfix:42"),
    (DeskFixTo(42, 7), "v1:dfixto:42:7"),
    (DeskMap("330102001", "2026-09", "ct"), "v1:dmap:330102001:2026-09:ct"),  # round 2, issue 11
]


def _longest(cls: type[Button]) -> Button:
    """The longest data a kind can make: every int at 12 digits (a database id at the largest
    INTEGER), every str at its longest."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.type in (int, "int"):
            values[f.name] = ID_MAX if f.name.endswith("_id") else BIG
        elif "choices" in f.metadata:
            values[f.name] = max(f.metadata["choices"], key=len)
        elif f.name == "grid":
            values[f.name] = "9" * 14
        elif f.name == "platform":
            values[f.name] = "Z" * 8
        else:
            values[f.name] = "z" * 24
    return cls(**values)


def test_more_time_buttons_take_the_units_the_service_offers() -> None:
    unit = next(f for f in dataclasses.fields(InputMore) if f.name == "unit")
    assert unit.metadata["choices"] == set(MORE_TIME_CHOICES)


def test_every_kind_has_an_example() -> None:
    assert {type(button) for button, _ in EXAMPLES} == set(kinds().values())
    assert len(kinds()) == len(EXAMPLES)


@pytest.mark.parametrize(("button", "data"), EXAMPLES, ids=[d for _, d in EXAMPLES])
def test_pack_and_parse(button: Button, data: str) -> None:
    assert button.pack() == data
    assert parse(data) == button
    assert type(parse(data)) is type(button)


@pytest.mark.parametrize("cls", list(kinds().values()), ids=list(kinds()))
def test_the_longest_data_of_each_kind_fits_telegram(cls: type[Button]) -> None:
    button = _longest(cls)
    data = button.pack()
    assert len(data.encode()) <= MAX_BYTES
    assert parse(data) == button


@pytest.mark.parametrize("cls", list(kinds().values()), ids=list(kinds()))
def test_fields_are_ints_or_checked_strs(cls: type[Button]) -> None:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert fields, cls
    for f in fields:
        assert f.type in (int, "int", str, "str"), (cls, f.name)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def _forgeries(button: Button) -> list[str]:
    """Ways to spoil honest data: a field missing or extra, each int and str field made bad."""
    head, _, rest = button.pack().partition(":")
    kind, _, tail = rest.partition(":")
    parts = tail.split(":")
    bad = [
        ":".join((head, kind, *parts[:-1])),  # missing the last field
        ":".join((head, kind, *parts, "1")),  # an extra field
        ":".join((head, kind, *parts, "")),
        ":".join((head, kind)),
        ":".join((head, kind)) + ":",
        ":".join(("v2", kind, *parts)),  # another version
        ":".join(("v1", kind.upper(), *parts)),
        ":".join(("v1", kind + "x", *parts)),  # an unknown kind
        ":".join((kind, *parts)),  # no version
        button.pack() + "\n",
        " " + button.pack(),
    ]
    for i, f in enumerate(dataclasses.fields(button)):  # type: ignore[arg-type]
        spoilt: list[str]
        if f.type in (int, "int"):
            spoilt = ["", "abc", "x1", "1x", "-1", "+1", "1.0", " 1", "1 ", "01", "1_000", "1" * 13]
            spoilt += ["４２", "٤٢", "²", "1\n"]
            if f.name.endswith("_id"):  # no database id is that large (PostgreSQL would refuse it)
                spoilt += [str(ID_MAX + 1), "9" * 12]
        else:
            spoilt = ["", "NOPE_NOT_ALLOWED", "a:b", " x", "é", "-", "x" * 25]
        for value in spoilt:
            changed = list(parts)
            changed[i] = value
            bad.append(":".join((head, kind, *changed)))
    return bad


@pytest.mark.parametrize(("button", "data"), EXAMPLES, ids=[d for _, d in EXAMPLES])
def test_spoilt_data_is_refused(button: Button, data: str) -> None:
    for forged in _forgeries(button):
        with pytest.raises(BadCallback):
            parse(forged)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "v1",
        "v1:",
        "garbage",
        "v1:nope:1",
        "v1:cl:42",  # the old two-letter codes mean nothing now
        "v1:wk:resolve:42",
        "v1:claim:" + "9" * 70,  # over Telegram's 64 bytes
        "v1:report:1:submit" + " " * 50,
        "v1:lang:" + "汉" * 20,
        "v1:claim:42".encode("utf-16").decode("latin-1"),
    ],
)
def test_garbage_is_refused(data: str | None) -> None:
    with pytest.raises(BadCallback):
        parse(data)


def test_over_long_data_is_refused_even_of_a_known_kind() -> None:
    data = "v1:report_grid:1:" + "9" * 60
    assert len(data.encode()) > MAX_BYTES
    with pytest.raises(BadCallback):
        parse(data)


@pytest.mark.parametrize(
    "button",
    [
        Work("fly", 1),
        Work("resolve", -1),
        Claim(10**12),
        Claim("42"),  # type: ignore[arg-type]
        Extension("approve", "12"),  # type: ignore[arg-type]
        FollowUp(1, "x"),
        Reject(1, "bogus"),
        Lang("xx"),
        ReportGrid(1, "123"),
        ReportPlatform(1, "zf"),
        Tasks("all", 0),
    ],
)
def test_making_bad_data_is_a_bug_not_a_stale_button(button: Button) -> None:
    with pytest.raises(ValueError) as raised:
        button.pack()
    assert not isinstance(raised.value, BadCallback)


def test_allowed_values_match_what_the_services_take() -> None:
    def choices(cls: type[Button], name: str) -> frozenset[str]:
        (f,) = [f for f in dataclasses.fields(cls) if f.name == name]  # type: ignore[arg-type]
        return f.metadata["choices"]

    assert choices(Work, "action") == set(casework.INPUT_ACTIONS) - {casework.NOT_FIXED}
    assert set(callbacks.WORK_ACTIONS) == choices(Work, "action")
    assert choices(FollowUp, "op") == set(ratings.FOLLOWUP_OPS)
    assert choices(Reject, "reason") == set(dispatch.REASONS)
    assert choices(Lang, "language") == set(SUPPORTED_LANGUAGES)
    assert choices(Tasks, "list_kind") == {"mine", "team", "street"}


def test_every_kind_is_routed() -> None:
    app = Application.builder().token("123:TEST").build()
    registry.register(app)
    assert set(buttons._ROUTES) == set(kinds().values())
