"""Claiming a case in the team group: one owner, however many press at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from bot.i18n import t
from bot.people import identity as people
from bot.people import onboarding
from bot.runtime import Runtime
from storage.db import Database
from storage.models import AuditEvent, Case, User
from tests.fakebot import FakeChat, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.rows import fetch

HB_GRID = "33010200200101"  # 湖滨街道 auto-dispatches to its teams


async def file_garbage_case(worker: FakeUser, db: Database) -> Case:
    lat, lon = grid_centre(db, HB_GRID)
    await worker.send_photo(make_jpeg(), caption="路边垃圾成堆")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "暴露垃圾")
    await worker.press(worker.last_message(), "✅ 确认上报")
    with db.session() as s:
        return s.exec(select(Case)).one()


def join_directly(rt: Runtime, telegram_id: int, name: str, role: str, scope: str) -> None:
    """Register a member through the services (fast, for crowds)."""
    person = people.identify(rt, people.Profile(telegram_id=telegram_id, first_name=name, language_code="zh-hans"))
    made = onboarding.create_invite(rt, role=role, scope_code=scope, created_by=None)
    onboarding.redeem_invite(rt, code=made.code, user_id=person.user_id)


@pytest.fixture
async def setting(tg: FakeTelegram, admin: FakeUser, db: Database) -> tuple[FakeUser, FakeChat, Case]:
    worker = tg.user(7001, "赵网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", HB_GRID)
    team = await bound_group(tg, admin, -100700, "HB-ZF")
    case = await file_garbage_case(worker, db)
    return worker, team, case


async def test_first_press_wins_and_the_card_shows_the_owner(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    worker, team, case = setting
    card = team.last_message()
    assert case.state == "dispatched" and case.code in card.caption_text
    assert buttons(card) == [["🙋 认领"]]
    join_directly(rt, 7101, "钱执法", "staff", "HB-ZF")
    join_directly(rt, 7102, "孙执法", "staff", "HB-ZF")
    first, second = tg.user(7101, "钱执法", language_code="zh-hans"), tg.user(7102, "孙执法", language_code="zh-hans")
    answer = await first.press(card, "🙋 认领", chat=team)
    assert answer is not None and "您已认领" in answer.params["text"]
    card = team.message(card.message_id)
    assert "认领人：钱执法" in card.caption_text
    assert buttons(card) == [["✅ 处置完毕", "📝 进展"], ["📣 吹哨", "⏰ 申请延期"], ["🔙 退回", "↩️ 放弃认领"]]
    assert "已有工作人员认领" in worker.last_text()
    # a late press on the old button: told who has it, nothing changes
    answer = await second.press_data(team.id, card.message_id, f"v1:claim:{case.id}")
    assert answer is not None and "已由钱执法认领" in answer.params["text"]
    with db.session() as s:
        fresh = fetch(s, Case, case.id)
        owner = s.exec(select(User).where(User.telegram_id == 7101)).one()
        claims = s.exec(select(AuditEvent).where(AuditEvent.action == "case.claimed")).all()
    assert fresh.state == "claimed" and fresh.owner_user_id == owner.id and len(claims) == 1


async def test_fifty_presses_at_once_make_one_owner(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    _, team, case = setting
    staff = []
    for i in range(50):
        join_directly(rt, 7200 + i, f"staff{i}", "staff", "HB-ZF")
        staff.append(tg.user(7200 + i, f"staff{i}", language_code="zh-hans"))
    card = team.last_message()
    answers = await asyncio.gather(*(u.press_data(team.id, card.message_id, f"v1:claim:{case.id}") for u in staff))
    won = [a for a in answers if a is not None and "您已认领" in a.params.get("text", "")]
    lost = [a for a in answers if a is not None and "已由" in a.params.get("text", "")]
    assert len(won) == 1 and len(lost) == 49
    with db.session() as s:
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "case.claimed")).all()) == 1
        assert fetch(s, Case, case.id).owner_user_id is not None


async def test_outsiders_cannot_claim(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    _, team, case = setting
    join_directly(rt, 7301, "other team", "staff", "HB-SC")
    outsider = tg.user(7301, "other team", language_code="en")
    resident = tg.user(7302, "resident", language_code="en")
    card = team.last_message()
    for who in (outsider, resident):
        answer = await who.press_data(team.id, card.message_id, f"v1:claim:{case.id}")
        assert answer is not None and answer.params["text"] == t("en", "button.stale")
    with db.session() as s:
        assert fetch(s, Case, case.id).state == "dispatched"


async def test_a_forged_claim_on_a_claimed_case_reveals_nothing(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    """Rights before state: a resident forging Claim for somebody else's case hears the
    uniform stale answer, not "already claimed by <name>" (ids are sequential)."""
    _, team, case = setting
    join_directly(rt, 7601, "王认领", "staff", "HB-ZF")
    staff = tg.user(7601, "王认领", language_code="zh-hans")
    await staff.press(team.last_message(), "🙋 认领", chat=team)
    resident = tg.user(7602, "resident", language_code="en")
    answer = await resident.press_data(resident.id, 4242, f"v1:claim:{case.id}")
    assert answer is not None and answer.params["text"] == t("en", "button.stale")
    assert "王认领" not in answer.params["text"] and case.code not in answer.params["text"]
    # a team member who pressed late does hear who won
    join_directly(rt, 7603, "赵迟到", "staff", "HB-ZF")
    late = tg.user(7603, "赵迟到", language_code="zh-hans")
    answer = await late.press_data(team.id, team.last_message().message_id, f"v1:claim:{case.id}")
    assert answer is not None and "王认领" in answer.params["text"]
    with db.session() as s:
        assert fetch(s, Case, case.id).owner_user_id is not None


async def test_owner_releases(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    _, team, case = setting
    join_directly(rt, 7401, "李执法", "staff", "HB-ZF")
    staff = tg.user(7401, "李执法", language_code="zh-hans")
    card = team.last_message()
    await staff.press(card, "🙋 认领", chat=team)
    await staff.press(team.message(card.message_id), "↩️ 放弃认领", chat=team)
    card = team.message(card.message_id)
    assert buttons(card) == [["🙋 认领"]] and "认领人" not in card.caption_text
    with db.session() as s:
        fresh = fetch(s, Case, case.id)
    assert fresh.state == "dispatched" and fresh.owner_user_id is None


async def test_forged_claim_data(
    tg: FakeTelegram, rt: Runtime, db: Database, setting: tuple[FakeUser, FakeChat, Case]
) -> None:
    _, team, case = setting
    someone = tg.user(7501, "x", language_code="en")
    join_directly(rt, 7101, "钱执法", "staff", "HB-ZF")  # one who could claim it, with honest data
    staff = tg.user(7101, "钱执法", language_code="zh-hans")
    card = team.last_message()
    wide = str(case.id).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    arabic = str(case.id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    forged = (
        "v1:claim:999999",  # unknown case
        "v1:claim:abc",  # not a number
        f"v1:claim:{wide}",  # digits, but not ASCII ones
        f"v1:claim:{arabic}",
        f"v1:claim:+{case.id}",  # a sign
        f"v1:claim:-{case.id}",
        f"v1:claim:0{case.id}",  # not as we write it
        f"v1:claim: {case.id}",
        f"v1:claim:{case.id}\n",
        "v1:claim:1234567890123",  # more than 12 digits
        "v1:claim",  # missing id
        "v1:claim:",
        f"v1:claim:{case.id}:1",  # an extra field
        f"v1:cl:{case.id}",  # the old two-letter code
        f"v1:zz:{case.id}",  # an unknown kind
        f"v1:CLAIM:{case.id}",
        f"v2:claim:{case.id}",  # another version
        f"claim:{case.id}",
        "v1:claim:" + "9" * 70,  # over Telegram's 64 bytes
    )
    for user, lang in ((someone, "en"), (staff, "zh_CN")):
        for data in forged:
            answer = await user.press_data(team.id, card.message_id, data)
            assert answer is not None and answer.params.get("show_alert") is True, data
            assert answer.params["text"] == t(lang, "button.stale"), data
    with db.session() as s:
        fresh = fetch(s, Case, case.id)
    assert fresh is not None and fresh.state == "dispatched" and fresh.owner_user_id is None
    # the same presser, with the honest data, gets it
    answer = await staff.press_data(team.id, card.message_id, f"v1:claim:{case.id}")
    assert answer is not None and "您已认领" in answer.params["text"]
