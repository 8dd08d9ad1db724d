"""`griddesk demo`: the whole loop on the built-in Bot API simulator, no token, no network.

The real Application, handlers, database (a temporary SQLite file unless DATABASE_URL says
otherwise) and outbox run against :mod:`griddesk.simulator`; scripted people play a day of
grid governance in the chosen language and the conversation is printed as a transcript
(who, what, buttons, pop-ups) with timings. The images the bot sent (cards, the QR code)
are written into a folder the demo names. With ``interactive=True`` the newcomer types as
the grid worker while everybody else is scripted.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlmodel import col, func, select
from telegram.ext import Application

from bot.cases import deadlines
from bot.clock import ManualClock
from bot.errors import DomainError
from bot.i18n import t_plain
from bot.org.org_file import DEFAULT_ORG_FILE, load_org_file
from bot.people import identity as people
from bot.people import onboarding
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk.simulator import Call, FakeBotAPI, FakeChat, FakeTelegram, FakeUser
from griddesk.simulator.images import plain_jpeg
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Case, Category, Grid, Platform, User
from storage.org_import import import_org

T = TypeVar("T")

DEMO_TOKEN = "123456:DEMO-no-network"
DEMO_BOT = "GridDeskDemoBot"
# A Monday morning in Shanghai, inside working hours and far from holidays: the demo's
# day is always the same, so its transcript is too.
DEMO_START = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
GRID = "33010200100101"  # 清波街道: the command room dispatches by hand
ADMIN_ID = 100
LANGS = ("zh_CN", "en")

# Every milestone of the loop; the demo reports which it reached.
MILESTONES = (
    "joined",
    "reported",
    "dispatched",
    "claimed",
    "whistled",
    "reported_in",
    "resolved",
    "verified",
    "rated",
    "reminded",
    "supervised",
    "figures",
)

# Bot API methods the transcript leaves out: they change nothing a person sees.
_QUIET = frozenset({"getMe", "setMyCommands", "getChatMember", "getFile", "sendChatAction", "getChat"})


class DemoError(Exception):
    """The demo cannot run here; str() says why in one sentence."""


@dataclass
class People:
    admin: FakeUser
    worker: FakeUser
    dispatcher: FakeUser
    staff: list[FakeUser]
    officer: FakeUser
    resident: FakeUser
    supervisor: FakeUser
    room: FakeChat
    team: FakeChat
    housing: FakeChat


@dataclass
class DemoResult:
    lang: str
    transcript: list[str]
    out_dir: Path
    images: list[Path]
    milestones: list[str]
    seconds: float
    # (person, what) -> count: messages sent and buttons tapped, per stage
    effort: dict[str, Counter[str]] = field(default_factory=dict)
    case_codes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return list(self.milestones) == list(MILESTONES)


class Transcript:
    """Prints what people do and what the bot answers, as it happens."""

    def __init__(
        self, lang: str, api: FakeBotAPI, clock: ManualClock, tz: ZoneInfo, out_dir: Path, echo: Callable[[str], None]
    ) -> None:
        self.lang = lang
        self.api = api
        self.clock = clock
        self.tz = tz
        self.out_dir = out_dir
        self.echo = echo
        self.lines: list[str] = []
        self.images: list[Path] = []
        self.started = time.perf_counter()
        self.effort: dict[str, Counter[str]] = {}
        self.stage_key = ""

    def say(self, line: str = "") -> None:
        self.lines.append(line)
        self.echo(line)

    def section(self, key: str, **params: Any) -> None:
        title = t_plain(self.lang, key, **params)
        self.stage_key = key
        self.say()
        self.say(f"── {title} " + "─" * max(4, 60 - len(title) * 2))

    def note(self, key: str, **params: Any) -> None:
        self.say("   · " + t_plain(self.lang, key, **params))

    def _stamp(self) -> str:
        now = self.clock.now().astimezone(self.tz)
        elapsed = time.perf_counter() - self.started
        return f"{now:%m-%d %H:%M} +{elapsed:5.2f}s"

    def count(self, who: str, what: str) -> None:
        self.effort.setdefault(who, Counter())[what] += 1
        self.effort.setdefault(f"{who} @ {self.stage_key}", Counter())[what] += 1

    async def act(self, who: str, what: str, action: Awaitable[T], *, tap: bool = False) -> T:
        """One thing a person does, then everything the bot did because of it."""
        self.count(who, "taps" if tap else "messages")
        self.say(f"{self._stamp()}  {who} ▸ {what}")
        began = time.perf_counter()
        with self.api.recording() as calls:
            result = await action
        self._render(calls, time.perf_counter() - began)
        return result

    async def happen(self, what: str, action: Awaitable[T]) -> T:
        """Something no person does (the clock, the scheduler), then what the bot did."""
        self.say(f"{self._stamp()}  ⏱ {what}")
        began = time.perf_counter()
        with self.api.recording() as calls:
            result = await action
        self._render(calls, time.perf_counter() - began)
        return result

    @contextmanager
    def quietly(self) -> Iterator[None]:
        with self.api.recording():
            yield

    def _chat_name(self, chat_id: Any) -> str:
        state = self.api.chats.get(int(chat_id)) if chat_id is not None else None
        if state is None:
            return str(chat_id)
        if state.type == "private":
            return state.first_name or str(chat_id)
        return f"「{state.title}」"

    def _render(self, calls: list[Call], seconds: float) -> None:
        bot = t_plain(self.lang, "demo.bot")
        for call in calls:
            if call.method in _QUIET or not call.ok:
                continue
            chat = self._chat_name(call.params.get("chat_id"))
            if call.method in ("sendMessage", "sendPhoto", "sendMediaGroup"):
                items = call.result if isinstance(call.result, list) else [call.result]
                for message in items:
                    self._message(f"{bot} → {chat}", message, call)
            elif call.method.startswith("editMessage") and isinstance(call.result, dict):
                self._message(f"{bot} ✎ {chat}", call.result, call)
            elif call.method == "answerCallbackQuery" and call.params.get("text"):
                self.say(f"      💬 {t_plain(self.lang, 'demo.popup')}: {call.params['text']}")
            elif call.method == "deleteMessage":
                self.say(f"      {bot} 🗑 {chat}")
        self.say(f"      ({seconds * 1000:.0f} ms)")

    def _message(self, head: str, message: dict[str, Any], call: Call) -> None:
        text = message.get("text", message.get("caption")) or ""
        marks = ""
        if "photo" in message:
            path = self._save_photo(message)
            marks = f"🖼 {path.name} "
        elif "location" in message:
            loc = message["location"]
            marks = f"📍 {loc['latitude']:.5f},{loc['longitude']:.5f} "
        lines = text.splitlines() or [""]
        self.say(f"      {head}: {marks}{lines[0]}")
        for line in lines[1:]:
            self.say(f"         {line}")
        markup = message.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            self.say("         " + " ".join(f"[{b['text']}]" for b in row))
        keyboard = call.params.get("reply_markup")
        if isinstance(keyboard, dict) and "keyboard" in keyboard and call.method != "sendMediaGroup":
            for row in keyboard["keyboard"]:
                labels = [b["text"] if isinstance(b, dict) else str(b) for b in row]
                self.say("         " + " ".join(f"⌨[{label}]" for label in labels))

    def _save_photo(self, message: dict[str, Any]) -> Path:
        biggest = message["photo"][-1]
        data = self.api.file_bytes(biggest["file_id"])
        kind = "png" if data[:4] == b"\x89PNG" else "jpg"
        chat = self._chat_name(message["chat"]["id"]).strip("「」").replace("/", "_").replace(" ", "_")
        path = self.out_dir / f"{len(self.images) + 1:02d}-{chat}.{kind}"
        path.write_bytes(data)
        self.images.append(path)
        return path


# --- the cast --------------------------------------------------------------------------------

_NAMES: dict[str, dict[str, Any]] = {
    "zh_CN": {
        "admin": "周管理",
        "worker": "刘网格",
        "dispatcher": "陈调度",
        "staff": ["王执法", "李执法", "赵执法"],
        "officer": "孙住建",
        "resident": "王阿姨",
        "supervisor": "吴督导",
        "room": "清波街道指挥室",
        "team": "清波街道综合执法",
        "housing": "区住建局",
        "report": "小区围墙外私自加盖违建，占用消防通道",
        "report2": "人行道上堆放建筑垃圾",
        "note": "需要住建部门认定违建并出具意见",
        "reply": "已安排执法人员明日到场",
        "resolved": "违建已拆除，消防通道已恢复",
    },
    "en": {
        "admin": "Zhou",
        "worker": "Liu",
        "dispatcher": "Chen",
        "staff": ["Wang", "Li", "Zhao"],
        "officer": "Sun",
        "resident": "Mrs Wang",
        "supervisor": "Wu",
        "room": "Qingbo command room",
        "team": "Qingbo law enforcement",
        "housing": "Housing bureau",
        "report": "A shed built illegally against the estate wall, blocking the fire lane",
        "report2": "Construction waste piled on the pavement",
        "note": "Need the housing bureau to confirm it is illegal",
        "reply": "Our inspectors will be on site tomorrow",
        "resolved": "Shed removed, fire lane clear again",
    },
}


def _tg_lang(lang: str) -> str:
    return "zh-hans" if lang == "zh_CN" else "en"


def _find(message: Any, prefix: str) -> tuple[str, str]:
    """(label, callback data) of the first button whose label starts with prefix."""
    markup = message.get("reply_markup") if isinstance(message, dict) else message.reply_markup
    if markup is None:
        raise DemoError("the message has no buttons")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else markup.inline_keyboard
    for row in rows:
        for button in row:
            label = button["text"] if isinstance(button, dict) else button.text
            data = button.get("callback_data") if isinstance(button, dict) else button.callback_data
            if label.startswith(prefix):
                return str(label), str(data)
    raise DemoError(f"no button starting with {prefix!r} on the message")


def _last_with_buttons(chat: FakeChat | FakeUser) -> Any:
    for message in reversed(chat.messages()):
        if message.reply_markup is not None and getattr(message.reply_markup, "inline_keyboard", None):
            return message
    raise DemoError("no message with buttons")


class Demo:
    def __init__(self, rt: Runtime, app: Application, api: FakeBotAPI, tg: FakeTelegram, out: Transcript) -> None:
        self.rt = rt
        self.app = app
        self.api = api
        self.tg = tg
        self.out = out
        self.lang = out.lang
        self.names = _NAMES[self.lang]
        self.milestones: list[str] = []
        self.codes: list[str] = []
        self.interactive_input: Callable[[str], Awaitable[str]] | None = None

    async def pick_category(self, user: FakeUser, code: str) -> None:
        name, platform = self.category(code)
        # the suggestions first; else "more categories…", the category's platform, the category
        for target in (name, platform, name):
            message = _last_with_buttons(user)
            labels = [b.text for row in message.reply_markup.inline_keyboard for b in row]
            if name in labels:
                await self.press(user, message, name)
                return
            await self.press(user, message, target if target in labels else labels[-1])
        raise DemoError(f"category {name} not offered")

    def category(self, code: str) -> tuple[str, str]:
        """The category's name and its platform's, in the demo's language."""
        with self.rt.db.session() as s:
            row = s.exec(select(Category).where(Category.code == code)).one()
            platform = s.get(Platform, row.platform_id) if row.platform_id is not None else None
            names = (row.name_zh, platform.name_zh if platform else "")
            if self.lang != "zh_CN":
                names = (row.name_en, platform.name_en if platform else "")
            return names

    def label(self, key: str) -> str:
        return t_plain(self.lang, key)

    def reached(self, milestone: str) -> None:
        if milestone not in self.milestones:
            self.milestones.append(milestone)

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.rt.clock, ManualClock)
        return self.rt.clock

    # --- helpers ---------------------------------------------------------------------------

    async def send(self, user: FakeUser, text: str, *, chat: FakeChat | None = None) -> Any:
        return await self.out.act(self._who(user, chat), f"“{text}”", user.send(text, chat=chat))

    async def press(self, user: FakeUser, message: Any, prefix: str, *, chat: FakeChat | None = None) -> Any:
        label, _ = _find(message, prefix)
        return await self.out.act(self._who(user, chat), f"[{label}]", user.press(message, label, chat=chat), tap=True)

    def _who(self, user: FakeUser, chat: FakeChat | None) -> str:
        return user.first_name if chat is None else f"{user.first_name} @ 「{chat.title}」"

    def case(self, code: str | None = None) -> Case:
        with self.rt.db.session() as s:
            query = select(Case).order_by(col(Case.id).desc())
            if code is not None:
                query = select(Case).where(Case.code == code)
            found = s.exec(query).first()
            if found is None:
                raise DemoError("the report did not become a case")
            return found

    def grid_centre(self) -> tuple[float, float]:
        """Where the worker stands: a phone's fix some 30 m from the grid's centre."""
        with self.rt.db.session() as s:
            grid = s.exec(select(Grid).where(Grid.code == GRID)).one()
            return float(grid.centre_lat or 0) + 0.00021, float(grid.centre_lon or 0) + 0.00017

    def card(self, chat: FakeChat, code: str) -> Any:
        for message in reversed(chat.messages()):
            text = message.caption or message.text or ""
            if code in text:
                return message
        raise DemoError(f"no card of {code} in {chat.title}")

    # --- the cast --------------------------------------------------------------------------

    async def cast(self) -> People:
        n = self.names
        lang = _tg_lang(self.lang)
        admin = self.tg.user(ADMIN_ID, n["admin"], language_code=lang)
        worker = self.tg.user(201, n["worker"], language_code=lang)
        dispatcher = self.tg.user(202, n["dispatcher"], language_code=lang)
        staff = [self.tg.user(211 + i, name, language_code=lang) for i, name in enumerate(n["staff"])]
        officer = self.tg.user(221, n["officer"], language_code=lang)
        resident = self.tg.user(231, n["resident"], language_code=lang)
        supervisor = self.tg.user(241, n["supervisor"], language_code=lang)
        with self.out.quietly():
            for user, role, scope in (
                (dispatcher, "dispatcher", "QB-CMD"),
                *((s, "staff", "QB-ZF") for s in staff),
                (officer, "department", "HOUSING"),
                (supervisor, "supervisor", "330102001"),
            ):
                person = people.identify(
                    self.rt, people.Profile(telegram_id=user.id, first_name=user.first_name, language_code=lang)
                )
                made = onboarding.create_invite(self.rt, role=role, scope_code=scope, created_by=None)
                onboarding.redeem_invite(self.rt, code=made.code, user_id=person.user_id)
            groups = []
            for chat_id, title, code in (
                (-1001, n["room"], "QB-CMD"),
                (-1002, n["team"], "QB-ZF"),
                (-1003, n["housing"], "HOUSING"),
            ):
                group = self.tg.group(chat_id, title, admins=[admin], bot_status="administrator")
                await admin.send(f"/bind {code}", chat=group)
                groups.append(group)
        self.out.note(
            key="demo.cast",
            admin=admin.first_name,
            dispatcher=dispatcher.first_name,
            staff="、".join(n["staff"]) if self.lang == "zh_CN" else ", ".join(n["staff"]),
            officer=officer.first_name,
            supervisor=supervisor.first_name,
        )
        self.out.note(key="demo.groups", room=n["room"], team=n["team"], housing=n["housing"])
        return People(admin, worker, dispatcher, staff, officer, resident, supervisor, *groups)

    # --- the story -------------------------------------------------------------------------

    async def play(self) -> None:
        p = await self.cast()
        n = self.names

        self.out.section(key="demo.s_join")
        turn = await self.send(p.admin, f"/invite worker {GRID}")
        link = next((w for text in turn.texts for w in text.split() if "start=join-" in w), None)
        if link is None:
            raise DemoError("the invite gave no link")
        payload = link.split("start=", 1)[1].rstrip(".,。")
        self.out.note(key="demo.opens_link", who=p.worker.first_name)
        await self.send(p.worker, f"/start {payload}")
        self.reached("joined")

        self.out.section(key="demo.s_report")
        if self.interactive_input is not None:
            await self.interactive_report(p)
        else:
            await self.out.act(
                p.worker.first_name,
                f"📷 “{n['report']}”",
                p.worker.send_photo(plain_jpeg(colour=(190, 60, 50)), caption=n["report"]),
            )
            lat, lon = self.grid_centre()
            await self.out.act(p.worker.first_name, f"📍 {lat:.5f},{lon:.5f}", p.worker.send_location(lat, lon))
            await self.pick_category(p.worker, "CITY-ILLEGAL-BUILDING")
            await self.press(p.worker, _last_with_buttons(p.worker), self.label("report.btn_submit"))
        case = self.case()
        self.codes.append(case.code)
        self.reached("reported")

        self.clock.advance(timedelta(minutes=4))
        self.out.section(key="demo.s_dispatch")
        card = self.card(p.room, case.code)
        label = card.reply_markup.inline_keyboard[0][0].text
        await self.press(p.dispatcher, card, label, chat=p.room)
        self.reached("dispatched")

        self.clock.advance(timedelta(minutes=6))
        self.out.section(key="demo.s_claim")
        card = self.card(p.team, case.code)
        _, data = _find(card, "🙋")
        self.out.note(key="demo.race", count=len(p.staff))
        await self.out.act(
            " · ".join(u.first_name for u in p.staff) + f" @ 「{p.team.title}」",
            f"[🙋] ×{len(p.staff)}",
            asyncio.gather(*(u.press_data(p.team.id, card.message_id, data) for u in p.staff)),
            tap=True,
        )
        owner_id = self.case(case.code).owner_user_id
        owner = next(u for u in p.staff if self._user_id(u) == owner_id)
        self.reached("claimed")

        self.clock.advance(timedelta(minutes=25))
        self.out.section(key="demo.s_whistle")
        await self.press(owner, p.team.message(card.message_id), "📣", chat=p.team)
        await self.press(
            owner, _last_with_buttons(owner), n["housing"][:2] if self.lang == "zh_CN" else "District Housing"
        )
        await self.send(owner, n["note"])
        await self.press(owner, _last_with_buttons(owner), self.label("work.btn_done"))
        self.reached("whistled")
        dept_card = self.card(p.housing, case.code)
        await self.press(p.officer, dept_card, "📍", chat=p.housing)
        await self.out.act(
            f"{p.officer.first_name} @ 「{p.housing.title}」",
            f"↩ “{n['reply']}”",
            p.officer.send(n["reply"], chat=p.housing, reply_to=dept_card.message_id),
        )
        self.reached("reported_in")

        self.clock.advance(timedelta(minutes=150))
        self.out.section(key="demo.s_resolve")
        await self.press(owner, p.team.message(card.message_id), self.label("card.resolve"), chat=p.team)
        await self.out.act(
            owner.first_name,
            f"📷 “{n['resolved']}”",
            owner.send_photo(plain_jpeg(colour=(60, 170, 80)), caption=n["resolved"]),
        )
        await self.press(owner, _last_with_buttons(owner), self.label("work.btn_done"))
        self.reached("resolved")

        self.clock.advance(timedelta(minutes=40))
        self.out.section(key="demo.s_verify")
        if self.interactive_input is not None:
            await self.interactive_until(p, lambda: self.case(case.code).state != "resolved", key="demo.try_verify")
        else:
            await self.press(p.worker, _last_with_buttons(p.worker), self.label("card.confirm_fixed"))
        if self.case(case.code).state == "closed":
            self.reached("verified")

        self.clock.advance(timedelta(minutes=60))
        self.out.section(key="demo.s_rate")
        turn = await self.send(p.worker, f"/ratelink {case.code}")
        link = next((w for text in turn.texts for w in text.split() if "start=rate-" in w), None)
        if link is not None:
            payload = link.split("start=", 1)[1].rstrip(".,。")
            self.out.note(key="demo.scans", who=p.resident.first_name)
            await self.send(p.resident, f"/start {payload}")
            await self.press(p.resident, _last_with_buttons(p.resident), "😀")
            self.reached("rated")

        self.clock.advance(timedelta(minutes=20))
        self.out.section(key="demo.s_deadline")
        await self.out.act(
            p.worker.first_name,
            f"📷 “{n['report2']}”",
            p.worker.send_photo(plain_jpeg(colour=(150, 140, 120)), caption=n["report2"]),
        )
        lat, lon = self.grid_centre()
        await self.out.act(
            p.worker.first_name, f"📍 {lat + 0.001:.5f},{lon:.5f}", p.worker.send_location(lat + 0.001, lon)
        )
        await self.pick_category(p.worker, "CLEAN-EXPOSED-GARBAGE")
        await self.press(p.worker, _last_with_buttons(p.worker), self.label("report.btn_submit"))
        second = self.case()
        self.codes.append(second.code)
        card2 = self.card(p.room, second.code)
        await self.press(p.dispatcher, card2, card2.reply_markup.inline_keyboard[0][0].text, chat=p.room)
        team_card = self.card(p.team, second.code)
        await self.press(p.staff[0], team_card, "🙋", chat=p.team)
        second = self.case(second.code)
        if second.due_at is None:
            raise DemoError("the second case got no due time")
        self.out.note(key="demo.due", code=second.code, due=f"{second.due_at.astimezone(self.out.tz):%m-%d %H:%M}")
        kinds: Counter[str] = Counter()
        step = timedelta(minutes=30)
        limit = second.due_at + timedelta(days=3)
        while self.clock.now() < limit and kinds["rung1"] == 0:
            self.clock.advance(step)
            result = deadlines.sweep(self.rt)
            if result.reminders:
                await self.out.happen(t_plain(self.lang, "demo.clock", count=result.reminders), self._drain())
                kinds.update(result.kinds)
        if any(k.startswith("owner_") for k in kinds):
            self.reached("reminded")
        if kinds["rung1"]:
            self.reached("supervised")

        self.out.section(key="demo.s_figures")
        await self.send(p.dispatcher, "/stats")
        effort = self.out.effort
        joined = effort.get(f"{p.worker.first_name} @ demo.s_join", Counter())
        first = effort.get(f"{p.worker.first_name} @ demo.s_report", Counter())
        self.out.note(key="demo.effort_report", who=p.worker.first_name, messages=first["messages"], taps=first["taps"])
        self.out.note(
            key="demo.effort_first",
            who=p.worker.first_name,
            messages=first["messages"] + joined["messages"],
            taps=first["taps"] + joined["taps"],
        )
        self.reached("figures")

    def _user_id(self, user: FakeUser) -> int | None:
        with self.rt.db.session() as s:
            row = s.exec(select(User).where(User.telegram_id == user.id)).first()
            return row.id if row else None

    async def _drain(self) -> None:
        from handlers.outbox_sender import drain

        await drain(self.app)

    # --- interactive -----------------------------------------------------------------------

    async def interactive_report(self, p: People) -> None:
        count = self._case_count()
        await self.interactive_until(p, lambda: self._case_count() > count, key="demo.try_report")

    async def interactive_until(self, p: People, done: Callable[[], bool], key: str) -> None:
        assert self.interactive_input is not None
        self.out.say(t_plain(self.lang, key))
        self.out.say(t_plain(self.lang, "demo.interactive_help"))
        while not done():
            line = (await self.interactive_input(f"{p.worker.first_name}> ")).strip()
            if line in ("", "/auto"):
                if line == "/auto":
                    return await self._auto(p, key)
                continue
            try:
                await self._typed(p, line)
            except DemoError as exc:
                self.out.say(f"   ! {exc}")
        return None

    async def _auto(self, p: People, hint: str) -> None:
        if hint == "demo.try_report":
            await self.out.act(
                p.worker.first_name,
                f"📷 “{self.names['report']}”",
                p.worker.send_photo(plain_jpeg(colour=(190, 60, 50)), caption=self.names["report"]),
            )
            lat, lon = self.grid_centre()
            await self.out.act(p.worker.first_name, f"📍 {lat:.5f},{lon:.5f}", p.worker.send_location(lat, lon))
            await self.press(p.worker, _last_with_buttons(p.worker), "")
            await self.press(p.worker, _last_with_buttons(p.worker), self.label("report.btn_submit"))
        else:
            await self.press(p.worker, _last_with_buttons(p.worker), self.label("report.btn_submit"))

    async def _typed(self, p: People, line: str) -> None:
        worker = p.worker
        if line.startswith("/photo"):
            caption = line[len("/photo") :].strip() or None
            await self.out.act(
                worker.first_name,
                f"📷 “{caption or ''}”",
                worker.send_photo(plain_jpeg(colour=(190, 60, 50)), caption=caption),
            )
        elif line == "/location":
            lat, lon = self.grid_centre()
            await self.out.act(worker.first_name, f"📍 {lat:.5f},{lon:.5f}", worker.send_location(lat, lon))
        elif line.isdigit():
            message = _last_with_buttons(worker)
            labels = [b.text for row in message.reply_markup.inline_keyboard for b in row]
            index = int(line) - 1
            if not 0 <= index < len(labels):
                raise DemoError(t_plain(self.lang, "demo.no_such_button", count=len(labels)))
            await self.press(worker, message, labels[index])
        else:
            await self.send(worker, line)

    def _case_count(self) -> int:
        with self.rt.db.session() as s:
            return int(s.exec(select(func.count()).select_from(Case)).one())


# --- running it ----------------------------------------------------------------------------


def _check_empty(db: Database) -> None:
    with db.session() as s:
        cases = s.exec(select(func.count()).select_from(Case)).one()
        users = s.exec(select(func.count()).select_from(User)).one()
    if cases or users:
        raise DemoError(
            "DATABASE_URL points at a database already in use; the demo needs an empty one "
            "(or unset DATABASE_URL for a temporary SQLite file)."
        )


async def run_demo(
    *,
    lang: str = "zh_CN",
    out_dir: Path | None = None,
    database_url: str | None = None,
    interactive: bool = False,
    echo: Callable[[str], None] = print,
    read_line: Callable[[str], Awaitable[str]] | None = None,
) -> DemoResult:
    """Play the demo; returns the transcript and where the images went."""
    from griddesk.app import build_application
    from handlers.outbox_sender import drain, stop_sender

    if lang not in LANGS:
        raise DemoError(f"--lang must be one of {', '.join(LANGS)}")
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="griddesk-demo-work-"))
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="griddesk-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{work / 'demo.db'}"
    db = Database(url)
    app: Application | None = None
    try:
        upgrade(db)
        _check_empty(db)
        with db.session() as s:
            import_org(s, load_org_file(DEFAULT_ORG_FILE))
        settings = Settings(
            TELEGRAM_BOT_TOKEN=DEMO_TOKEN,
            DATABASE_URL=url,
            GRIDDESK_MEDIA_DIR=str(work / "media"),
            GRIDDESK_ADMIN_IDS=str(ADMIN_ID),
            GRIDDESK_DEFAULT_LANGUAGE=lang,
            GRIDDESK_RATE_LIMIT="false",
            _env_file=None,
        )
        clock = ManualClock(DEMO_START)
        rt = Runtime(settings=settings, db=db, clock=clock, bot_username=DEMO_BOT)
        api = FakeBotAPI(bot_username=DEMO_BOT, bot_first_name="GridDesk", now=clock.now)
        app = build_application(rt, request=api)
        await app.initialize()
        await app.post_init(app)  # type: ignore[misc]

        async def after_update() -> None:
            await drain(app)

        tg = FakeTelegram(
            app,
            api,
            expected_errors=(DomainError,),
            after_update=after_update,
            ignore_task=lambda task: task.get_name().startswith("griddesk-"),
        )
        transcript = Transcript(lang, api, clock, settings.tz, out, echo)
        transcript.say(t_plain(lang, "demo.title", bot=DEMO_BOT))
        demo = Demo(rt, app, api, tg, transcript)
        if interactive:
            demo.interactive_input = read_line or _stdin_line
        await demo.play()
        seconds = time.perf_counter() - began
        transcript.say()
        transcript.say(
            t_plain(lang, "demo.done", seconds=f"{seconds:.1f}", count=len(transcript.images), folder=str(out))
        )
        reached = [m for m in MILESTONES if m in demo.milestones]
        return DemoResult(
            lang=lang,
            transcript=transcript.lines,
            out_dir=out,
            images=transcript.images,
            milestones=reached,
            seconds=seconds,
            effort=transcript.effort,
            case_codes=demo.codes,
        )
    finally:
        if app is not None:
            await stop_sender(app)
            await app.shutdown()
        else:
            db.dispose()
        shutil.rmtree(work, ignore_errors=True)


async def _stdin_line(prompt: str) -> str:
    def read() -> str:
        try:
            return input(prompt)
        except EOFError:
            return "/auto"

    return await asyncio.to_thread(read)


def main(lang: str, *, out_dir: Path | None, interactive: bool, database_url: str | None) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    try:
        result = asyncio.run(run_demo(lang=lang, out_dir=out_dir, database_url=database_url, interactive=interactive))
    except DemoError as exc:
        print(f"griddesk demo: {exc}", file=sys.stderr)
        return 2
    return 0 if result.complete else 1
