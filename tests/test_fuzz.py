"""Generated input through the real Application: texts, captions and button data with
control characters, RTL and zero-width marks, NUL, 4,096+ characters and HTML. No traceback
(an error other than a rule's refusal fails the test), no Telegram 400 (the fake refuses
what Telegram refuses), and a refused button press changes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from storage.db import Database
from storage.models import AuditEvent, Case, Outbox
from tests.fakebot import FakeBotAPI, FakeChat, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard, receipt
from tests.images import make_jpeg

GRID = "33010200100101"
NASTY = ["\x00", "\u202e", "\u200b", "\u200f", "\ufeff", "\x1b", "\r", "<b>", "</i>", "&amp;", "&", "<", "🧱", "\u0301"]
pieces = st.one_of(st.sampled_from(NASTY), st.text(max_size=8))
texts = st.one_of(
    st.lists(pieces, max_size=12).map("".join),
    st.builds(
        lambda part, n: (part * n)[:5000], st.sampled_from(["好", "a<b>", "🧱", "\u202e&x"]), st.integers(1000, 5000)
    ),
)
button_data = st.one_of(
    st.text(max_size=64),
    st.builds(
        lambda kind, n: f"v1:{kind}:{n}", st.sampled_from(["claim", "release", "work", "rate", "r", "x"]), st.integers()
    ),
    st.builds(
        lambda kind, a, b: f"v1:{kind}:{a}:{b}",
        st.sampled_from(["dispatch", "assign", "dup"]),
        st.integers(),
        st.text(max_size=8),
    ),
).map(lambda data: data.encode("utf-8")[:64].decode("utf-8", "ignore") or "x")

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(Case)).one(), s.exec(
            select(func.count()).select_from(AuditEvent)
        ).one()


def no_bad_requests(api: FakeBotAPI) -> None:
    refused = [(c.method, c.status, c.error) for c in api.calls if c.status == 400]
    assert not refused, refused


@FUZZ
@given(text=texts)
async def test_texts_in_a_report_and_as_commands(tg: FakeTelegram, api: FakeBotAPI, text: str) -> None:
    user = tg.user(8401, "居民", language_code="zh-hans")
    await user.send(text)  # wherever the person is in a report, or nowhere
    await user.send("/case " + text[:200])
    no_bad_requests(api)


@FUZZ
@given(caption=texts)
async def test_captions_on_photos(tg: FakeTelegram, api: FakeBotAPI, db: Database, caption: str) -> None:
    user = tg.user(8402, "网格员", language_code="zh-hans")
    await user.send_photo(make_jpeg(), caption=caption[:1024])
    no_bad_requests(api)


@FUZZ
@given(data=button_data)
async def test_forged_button_data_changes_nothing(
    tg: FakeTelegram, api: FakeBotAPI, db: Database, admin: FakeUser, data: str
) -> None:
    user = tg.user(8403, "居民", language_code="zh-hans")
    turn = await user.send("/help")
    before = counts(db)
    await user.press_data(user.id, turn.replies[0]["message_id"], data)
    assert counts(db) == before
    no_bad_requests(api)


async def test_a_whole_report_with_hostile_text_reaches_the_command_room(
    tg: FakeTelegram, api: FakeBotAPI, db: Database, admin: FakeUser
) -> None:
    room: FakeChat = await bound_group(tg, admin, -100840, "QB-CMD")
    worker = tg.user(8404, "\u202e网格\x00员<b>", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    text = ("违章\x00搭建\u200b<script>&amp;\u202e" * 400)[:5000]
    await worker.send_photo(make_jpeg(), caption=text[:1024])
    await worker.send_location(*grid_centre(db, GRID))
    card = worker.last_message()
    await worker.press(card, "违法建设")
    summary = worker.last_message()
    submit = next(label for row in buttons(summary) for label in row if label.startswith("✅"))
    await worker.press(summary, submit)
    no_bad_requests(api)
    with db.session() as s:
        case = s.exec(select(Case)).one()
        failed = s.exec(select(Outbox).where(Outbox.state != "sent")).all()
    assert "\x00" not in case.description and case.code in receipt(worker)
    assert failed == []
    assert case.code in (room.last_message().caption or room.last_message().text or "")
