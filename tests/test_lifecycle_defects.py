"""The defects found when GridDesk was tried from outside, each through the real Application:
they failed before the case lifecycle was consolidated (bot/cases/lifecycle.py)."""

from __future__ import annotations

from types import SimpleNamespace

from sqlmodel import select

from bot.i18n import t
from bot.runtime import Runtime
from storage.db import Database
from storage.models import CaseCard, ExtensionRequest, FollowUp, RatingLink, Street
from tests.fakebot import FakeTelegram, FakeUser
from tests.test_casework import claim, file_and_dispatch, world  # noqa: F401  (fixture)
from tests.test_rating import close_residents_case, report_and_dispatch, w  # noqa: F401  (fixture)


def _card_text(message) -> str:
    return message.caption or message.text or ""


async def test_approved_extension_shows_the_new_due_time_on_every_card(world: dict, db: Database, rt: Runtime) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    team_card = world["team"].last_message()
    await world["staff"].press(team_card, "⏰ 申请延期", chat=world["team"])
    await world["staff"].press(world["staff"].last_message(), "+24 个工作小时")  # far enough for a date
    await world["staff"].send("需等待业主回国后配合拆除")
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    await world["dispatcher"].press(world["room"].last_message(), "✅ 同意", chat=world["room"])
    with db.session() as s:
        row = s.exec(select(ExtensionRequest)).one()
    new_due = row.new_due_at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")
    old_due = row.old_due_at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")  # type: ignore[union-attr]
    assert new_due != old_due
    team_text = _card_text(world["team"].message(team_card.message_id))
    assert new_due in team_text and old_due not in team_text
    # the command room's card (the case card it dispatched from) shows it too
    with db.session() as s:
        room_card = s.exec(select(CaseCard).where(CaseCard.case_id == case.id, CaseCard.purpose == "command")).one()
    assert new_due in _card_text(world["room"].message(room_card.message_id))
    # and the owner is told the new due time in words
    assert new_due in world["staff"].last_text() and "已获同意" in world["staff"].last_text()


async def test_the_follow_up_limit_promised_is_the_one_set(w: SimpleNamespace, tg: FakeTelegram, db: Database) -> None:
    """The street's `follow_up_days` in the organisation file is what the resident is told
    and what the follow-up is due by (no second figure from the environment)."""
    with db.session() as s:
        street = s.exec(select(Street).where(Street.code == "330102001")).one()
        street.settings = {**(street.settings or {}), "follow_up_days": 5}
        s.add(street)
    w.rt.cache.clear()  # what an organisation re-import does
    lin = tg.user(9570, "Ms Lin", language_code="zh-hans")
    case = await report_and_dispatch(w, lin, "违章搭建彩钢棚")
    await close_residents_case(w, case)
    question = lin.last_message()
    await lin.press(question, "🙁")
    assert "5 个工作日" in lin.chat.message(question.message_id).body
    from bot.cases import deadlines

    with db.session() as s:
        followup = s.exec(select(FollowUp)).one()
        clock = deadlines.street_clock(w.rt, s, case.street_id)
    assert followup.due_at == clock.calendar.add_working_days(followup.created_at, 5)


async def test_the_reporting_resident_cannot_make_rating_links(
    w: SimpleNamespace, tg: FakeTelegram, db: Database
) -> None:
    lin = tg.user(9580, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    turn = await lin.send(f"/ratelink {case.code}")
    assert turn.texts == [t("en", "rate.link_not_allowed")]
    await close_residents_case(w, case)
    turn = await lin.send(f"/ratelink {case.code}")
    assert turn.texts == [t("en", "rate.link_not_allowed")]
    with db.session() as s:
        assert s.exec(select(RatingLink)).all() == []
    # the people the README names still can: the case's grid worker
    turn = await w.worker.send(f"/ratelink {case.code}")
    assert "photo" in turn.replies[-1]


async def test_a_bot_that_may_not_post_does_not_greet(tg: FakeTelegram, admin: FakeUser, api) -> None:
    group = tg.group(-100990, "只读群")
    turn = await tg.bot_added_to(group, by=admin, status="restricted")
    assert turn.errors == []
    assert api.sent_messages(group.id) == []
