"""The people of a benchmark and the single updates they send, as in tests/test_case_loop.py.

One :class:`Scene` per run: the command room and the law-enforcement team of 清波街道 (which
dispatches by hand), a dispatcher, staff, grid workers and residents. Each ``Scene`` method
below sends exactly one update (one turn), so a caller can time or count it on its own;
buttons are found by their callback data (``bot.callbacks``), not their labels, so a change
of wording does not break the benchmarks.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from benchmarks.common import Bench
from bot import callbacks
from storage.models import Case, User
from tests.fakebot import FakeChat, FakeUser, Turn
from tests.flows import bound_group, grid_centre, onboard
from tests.test_claim import join_directly

GRID = "33010200100101"  # in 清波街道 (QB), dispatched by hand from the command room
ROOM_ID, TEAM_ID = -100900, -100901
JSON = dict[str, Any]


class NoButton(LookupError):
    """The bot did not offer the button the next step needs (the flow changed?)."""


class Buttons:
    """Every button the bot's messages show now, parsed once as messages are stored (a
    FakeBotAPI observer): finding the next button is a scan of parsed entries, and a load
    generator's lookups stay off the event loop's bill."""

    def __init__(self) -> None:
        # chat -> message id -> its buttons; dicts keep first-insertion (= message id) order
        self._by_chat: dict[int, dict[int, list[tuple[callbacks.Button, str]]]] = {}
        self.first_seen: dict[tuple[int, str, int], float] = {}  # (chat, kind, case id) -> time

    def observe(self, message: JSON) -> None:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        found: list[tuple[callbacks.Button, str]] = []
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", ()):
            for button in row:
                data = button.get("callback_data")
                if data:
                    try:
                        found.append((callbacks.parse(data), data))
                    except callbacks.BadCallback:
                        continue
        chat = self._by_chat.setdefault(chat_id, {})
        if not found:
            chat.pop(message_id, None)
            return
        chat[message_id] = found
        now = time.perf_counter()
        for parsed, _ in found:
            case_id = getattr(parsed, "case_id", None)
            if case_id is not None:
                self.first_seen.setdefault((chat_id, parsed.KIND, case_id), now)

    def find(self, chat_id: int, kind: type[callbacks.Button], **fields: Any) -> tuple[int, str]:
        """(message_id, callback_data) of the newest button of ``kind`` whose fields match."""
        for message_id, found in reversed(self._by_chat.get(chat_id, {}).items()):
            for parsed, data in found:
                if isinstance(parsed, kind) and all(getattr(parsed, k) == v for k, v in fields.items()):
                    return message_id, data
        raise NoButton(f"no {kind.__name__} button with {fields} in chat {chat_id}")


@dataclass
class Reporter:
    user: FakeUser
    resident: bool
    location: tuple[float, float]


@dataclass
class Scene:
    bench: Bench
    room: FakeChat
    team: FakeChat
    dispatcher: FakeUser
    staff: list[FakeUser]
    location: tuple[float, float]
    # How long a step waits for the button it needs to appear: 0 when every turn drains the
    # outbox (the button is there or never will be); with sends left in the background, a
    # person waits for the card as they would on their phone.
    button_wait: float = 0.0
    buttons: Buttons = field(default_factory=Buttons)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(40_000))

    # ---- building ---------------------------------------------------------------------------

    @classmethod
    async def build(cls, bench: Bench, *, staff: int = 1) -> Scene:
        tg, admin = bench.tg, bench.admin
        room = await bound_group(tg, admin, ROOM_ID, "QB-CMD")
        team = await bound_group(tg, admin, TEAM_ID, "QB-ZF")
        dispatcher = tg.user(30_000, "调度员", language_code="zh-hans")
        await onboard(admin, dispatcher, "dispatcher", "330102001")
        people = []
        for i in range(staff):
            join_directly(bench.rt, 31_000 + i, f"执法{i}", "staff", "QB-ZF")
            people.append(tg.user(31_000 + i, f"执法{i}", language_code="zh-hans"))
        scene = cls(bench, room, team, dispatcher, people, grid_centre(bench.db, GRID))
        bench.tg.api.observers.append(scene.buttons.observe)
        return scene

    async def reporter(self, *, resident: bool) -> Reporter:
        """A resident (anyone) or a grid worker of GRID, each reporting from their own spot."""
        n = next(self._ids)
        user = self.bench.tg.user(n, f"{'居民' if resident else '网格员'}{n}", language_code="zh-hans")
        if not resident:
            await onboard(self.bench.admin, user, "worker", GRID)
        lat, lon = self.location
        # A few metres apart, so reports are not all offered as each other's duplicates.
        spot = (lat + 0.00002 * (n % 50), lon + 0.00002 * (n // 50 % 50))
        return Reporter(user, resident, spot)

    async def _press(self, user: FakeUser, chat_id: int, kind: type[callbacks.Button], **fields: Any) -> Turn:
        deadline = time.perf_counter() + self.button_wait
        while True:
            try:
                message_id, data = self.buttons.find(chat_id, kind, **fields)
            except NoButton:
                if time.perf_counter() >= deadline:
                    raise
                await asyncio.sleep(0.005)
                continue
            return await user.press_data_turn(chat_id, message_id, data)

    # ---- a report, step by step (the full /report flow) ---------------------------------

    async def report_command(self, r: Reporter) -> Turn:
        return await r.user.send("/report")

    async def report_location(self, r: Reporter) -> Turn:
        return await r.user.send_location(*r.location)

    async def report_photo(
        self, r: Reporter, photo: bytes, caption: str | None = None, size: tuple[int, int] | None = None
    ) -> Turn:
        return await r.user.send_photo(photo, caption=caption, size=size)

    async def photos_done(self, r: Reporter) -> Turn:
        return await self._press(r.user, r.user.id, callbacks.Report, step="done")

    async def report_description(self, r: Reporter, text: str) -> Turn:
        return await r.user.send(text)

    async def report_category(self, r: Reporter) -> Turn:
        # The first offer is the most likely category.
        return await self._press(r.user, r.user.id, callbacks.ReportCategory)

    async def report_submit(self, r: Reporter) -> Turn:
        """Submit as a new case (even when duplicates are offered)."""
        return await self._press(r.user, r.user.id, callbacks.Report, step="submit")

    def case_of(self, r: Reporter) -> tuple[int, str]:
        """(id, code) of the newest case ``r`` reported (the harness's own read)."""
        with self.bench.db.read() as s:
            row = s.exec(
                select(Case.id, Case.code)
                .join(User, User.id == Case.reporter_user_id)  # type: ignore[arg-type]
                .where(User.telegram_id == r.user.id)
                .order_by(Case.id.desc())  # type: ignore[union-attr]
                .limit(1)
            ).one()
        return int(row[0]), str(row[1])  # type: ignore[arg-type]

    # ---- the case's life ------------------------------------------------------------------

    async def dispatch(self, case_id: int) -> Turn:
        """The dispatcher sends it to the suggested team (the card's first button)."""
        return await self._press(self.dispatcher, self.room.id, callbacks.Dispatch, case_id=case_id)

    async def claim(self, case_id: int, staff: FakeUser) -> Turn:
        return await self._press(staff, self.team.id, callbacks.Claim, case_id=case_id)

    async def work(self, case_id: int, staff: FakeUser, action: str) -> Turn:
        """Open a work action (note, resolve) from the team card; it continues in private."""
        return await self._press(staff, self.team.id, callbacks.Work, action=action, case_id=case_id)

    async def input_text(self, staff: FakeUser, text: str) -> Turn:
        return await staff.send(text)

    async def input_photo(self, staff: FakeUser, photo: bytes, size: tuple[int, int] | None = None) -> Turn:
        return await staff.send_photo(photo, size=size)

    async def input_done(self, staff: FakeUser) -> Turn:
        return await self._press(staff, staff.id, callbacks.InputDone)

    async def confirm(self, case_id: int, r: Reporter) -> Turn:
        """Fixed: the reporter confirms a worker's case, the command room a resident's."""
        if r.resident:
            return await self._press(self.dispatcher, self.room.id, callbacks.Confirm, case_id=case_id)
        return await self._press(r.user, r.user.id, callbacks.Confirm, case_id=case_id)

    async def rate(self, r: Reporter, level: int = 5) -> Turn:
        return await self._press(r.user, r.user.id, callbacks.Rate, level=level)

    # ---- lists and numbers ----------------------------------------------------------------

    async def tasks(self, staff: FakeUser) -> Turn:
        return await staff.send("/tasks")

    async def case(self, staff: FakeUser, code: str) -> Turn:
        return await staff.send(f"/case {code}")

    async def my(self, r: Reporter) -> Turn:
        return await r.user.send("/my")

    async def stats(self, user: FakeUser | None = None) -> Turn:
        return await (user or self.dispatcher).send("/stats")

    async def supervisor(self, n: int) -> FakeUser:
        """Another of the command room's people, who asks for the numbers."""
        user = self.bench.tg.user(32_000 + n, f"督导{n}", language_code="zh-hans")
        await onboard(self.bench.admin, user, "dispatcher", "330102001")
        return user
