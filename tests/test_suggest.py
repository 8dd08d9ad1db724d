"""bot.intake.suggest: ranking the responsibility list for a grid worker's short description."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot.intake.suggest import CategoryInfo, score_categories, suggest
from bot.org import categories, index
from bot.runtime import Runtime
from storage.db import Database
from storage.models import Category


def cat(cid: int, code: str, zh: str, en: str, platform: str, *keywords: str) -> CategoryInfo:
    return CategoryInfo(cid, code, zh, en, platform, tuple(keywords))


# A small responsibility list in file order, modelled on the sample organisation.
CATS = [
    cat(
        101,
        "TRAFFIC-PARKING",
        "违章停车",
        "Illegal parking",
        "ZF",
        "违停",
        "乱停车",
        "违章停车",
        "停车",
        "占用人行道",
        "parking",
        "parked",
    ),
    cat(
        102,
        "ROAD-DAMAGE",
        "道路破损",
        "Damaged road or pavement",
        "ZF",
        "路面破损",
        "坑洼",
        "坑洞",
        "塌陷",
        "人行道",
        "pothole",
    ),
    cat(
        103,
        "CLEAN-EXPOSED-GARBAGE",
        "暴露垃圾",
        "Exposed garbage",
        "ZF",
        "垃圾",
        "暴露垃圾",
        "垃圾堆",
        "乱倒",
        "满溢",
        "垃圾桶",
        "garbage",
        "rubbish",
    ),
    cat(
        104, "CLEAN-STREET", "道路不洁", "Dirty street", "ZF", "路面脏", "不洁", "清扫", "油污", "落叶", "泥浆", "狗屎"
    ),
    cat(105, "CLEAN-WASTE-SORTING", "垃圾分类不规范", "Waste not sorted", "ZF", "垃圾分类", "混投", "厨余", "可回收"),
    cat(
        106,
        "CITY-ILLEGAL-BUILDING",
        "违法建设",
        "Illegal construction",
        "ZF",
        "违建",
        "违章建筑",
        "私搭乱建",
        "搭建",
        "加建",
        "阳光房",
    ),
    cat(107, "FIRE-HAZARD", "消防安全隐患", "Fire hazard", "ZF", "消防", "灭火器", "消防栓", "安全出口", "fire"),
    cat(
        108,
        "FIRE-ACCESS-BLOCKED",
        "消防通道堵塞",
        "Blocked fire lane",
        "ZF",
        "消防通道",
        "生命通道",
        "堵塞",
        "占用",
        "堵住",
        "fire lane",
    ),
    cat(
        109,
        "CITY-STREET-VENDOR",
        "占道经营",
        "Street vending",
        "ZF",
        "占道经营",
        "流动摊贩",
        "摆摊",
        "出店经营",
        "vendor",
    ),
    cat(110, "ENV-NOISE", "噪声扰民", "Noise nuisance", "ZF", "噪音", "噪声", "扰民", "广场舞", "吵闹", "noise"),
    cat(
        111, "DISPUTE-NEIGHBOUR", "邻里纠纷", "Neighbour dispute", "ZZ", "邻居", "邻里", "纠纷", "吵架", "矛盾", "漏水"
    ),
    cat(112, "MARKET-FOOD", "食品安全", "Food safety", "SC", "食品", "过期", "变质", "无证经营", "小作坊", "expired"),
    cat(113, "MANHOLE-COVER", "井盖缺失", "Missing manhole cover", "ZF", "井盖", "窨井", "下水道盖", "缺失", "manhole"),
    cat(
        114,
        "SERVICE-ELDERLY",
        "高龄老人帮扶",
        "Help for elderly residents",
        "BM",
        "老人",
        "独居",
        "高龄",
        "空巢",
        "elderly",
    ),
]
IDS = [c.category_id for c in CATS]
BY_CODE = {c.code: c.category_id for c in CATS}


def top(description: str, n: int = 1, recent: tuple[int, ...] = ()) -> list[str]:
    code = {c.category_id: c.code for c in CATS}
    return [code[cid] for cid in suggest(description, CATS, recent)[:n]]


def test_parking_blocking_the_fire_lane_ranks_both() -> None:
    assert set(top("小区门口有车辆违停，堵住了消防通道", 2)) == {"FIRE-ACCESS-BLOCKED", "TRAFFIC-PARKING"}


def test_garbage_by_the_road() -> None:
    assert top("垃圾堆在路边好几天了") == ["CLEAN-EXPOSED-GARBAGE"]


def test_english_parking() -> None:
    assert top("parking on the pavement") == ["TRAFFIC-PARKING"]
    assert top("Cars PARKED on the pavement again") == ["TRAFFIC-PARKING"]
    assert top("ｐａｒｋｉｎｇ") == ["TRAFFIC-PARKING"]  # full-width letters from a Chinese keyboard


def test_english_words_match_whole_words_with_endings() -> None:
    assert top("the manhole is open") == ["MANHOLE-COVER"]
    assert top("rubbish dumped behind the market") == ["CLEAN-EXPOSED-GARBAGE"]
    assert top("loud noises every night") == ["ENV-NOISE"]
    assert top("an elderly man living alone") == ["SERVICE-ELDERLY"]
    # "fire lane" is a word sequence; "firewood" is not the word "fire".
    assert top("someone blocked the fire lane", 2) == ["FIRE-ACCESS-BLOCKED", "FIRE-HAZARD"]
    assert "FIRE-HAZARD" not in top("firewood stacked by the gate", 1)


@pytest.mark.parametrize(
    "description, expected",
    [
        ("3号楼东侧井盖缺失，很危险", "MANHOLE-COVER"),
        ("楼下广场舞音乐太吵了，噪音很大", "ENV-NOISE"),
        ("楼上漏水，邻居之间闹矛盾", "DISPUTE-NEIGHBOUR"),
        ("有人在楼顶私搭乱建阳光房", "CITY-ILLEGAL-BUILDING"),
        ("超市货架上有过期食品", "MARKET-FOOD"),
        ("路口有流动摊贩摆摊卖水果", "CITY-STREET-VENDOR"),
        ("独居高龄老人需要上门帮扶", "SERVICE-ELDERLY"),
        ("厨余垃圾和可回收物混投", "CLEAN-WASTE-SORTING"),
        ("人行道上有个大坑洞", "ROAD-DAMAGE"),
        ("路面脏，满地油污", "CLEAN-STREET"),
        ("消防 通道被杂物堵塞", "FIRE-ACCESS-BLOCKED"),  # a stray space does not break a word
    ],
)
def test_typical_reports(description: str, expected: str) -> None:
    assert top(description) == [expected]


def test_longer_matches_weigh_more() -> None:
    scores = dict(score_categories("垃圾分类没做好", CATS))
    # 垃圾分类 (4 characters) beats 垃圾 (2), which sits inside it and counts half.
    assert scores[BY_CODE["CLEAN-WASTE-SORTING"]] > scores[BY_CODE["CLEAN-EXPOSED-GARBAGE"]] > 0
    assert top("垃圾分类没做好") == ["CLEAN-WASTE-SORTING"]


def test_the_category_name_itself_counts() -> None:
    assert top("发现一处违法建设") == ["CITY-ILLEGAL-BUILDING"]
    assert top("食品安全问题") == ["MARKET-FOOD"]


def test_empty_description_orders_by_recent_then_file() -> None:
    x, y = BY_CODE["ENV-NOISE"], BY_CODE["MARKET-FOOD"]
    got = suggest("", CATS, [x, y])
    assert got[:2] == [x, y]
    assert got[2:] == [c for c in IDS if c not in (x, y)][:4]
    assert suggest("", CATS) == IDS[:6]


def test_gibberish_is_file_order_with_recent_first() -> None:
    recent = [BY_CODE["SERVICE-ELDERLY"], BY_CODE["ROAD-DAMAGE"]]
    got = suggest("asdf qwer 12345 ……", CATS, recent, limit=len(CATS))
    assert got == recent + [c for c in IDS if c not in recent]


def test_recent_nudges_but_does_not_override_a_clear_match() -> None:
    noise = BY_CODE["ENV-NOISE"]
    assert top("垃圾堆在路边好几天了", recent=(noise,)) == ["CLEAN-EXPOSED-GARBAGE"]
    assert top("堵塞", recent=(BY_CODE["FIRE-HAZARD"],)) == ["FIRE-ACCESS-BLOCKED"]
    # Between two equally good matches the list order decides, unless one is recent.
    assert top("垃圾，噪音", 2) == ["CLEAN-EXPOSED-GARBAGE", "ENV-NOISE"]
    assert top("垃圾，噪音", 2, recent=(noise,)) == ["ENV-NOISE", "CLEAN-EXPOSED-GARBAGE"]


def test_recent_ids_decay_and_unknown_or_repeated_ones_are_ignored() -> None:
    a, b, c = BY_CODE["MARKET-FOOD"], BY_CODE["ENV-NOISE"], BY_CODE["ROAD-DAMAGE"]
    got = suggest("", CATS, [a, 9999, b, a, c, a], limit=4)
    assert got[:3] == [a, b, c]
    assert 9999 not in got


def test_never_unknown_or_duplicate_ids_and_respects_limit() -> None:
    doubled = CATS + [CATS[0]]  # a category passed twice
    for description in ("", "违停 垃圾 噪音 parking noise", "小区门口有车辆违停，堵住了消防通道"):
        for limit in (0, 1, 6, 50):
            got = suggest(description, doubled, [101, 101, 42], limit=limit)
            assert len(got) == len(set(got)) == min(limit, len(CATS))
            assert set(got) <= set(IDS)
    assert suggest("违停", [], [101]) == []


def test_deterministic_and_order_sensitive_only_for_ties() -> None:
    desc = "小区门口有车辆违停，堵住了消防通道"
    first = suggest(desc, CATS, [110])
    assert all(suggest(desc, CATS, [110]) == first for _ in range(3))
    # Reversing the file order flips ties but not real differences.
    assert suggest(desc, list(reversed(CATS)))[:2] == suggest(desc, CATS)[:2]
    assert suggest("", list(reversed(CATS)), limit=3) == IDS[::-1][:3]


def test_none_and_odd_text_do_not_crash() -> None:
    assert suggest(None, CATS, limit=2) == IDS[:2]  # type: ignore[arg-type]
    assert len(suggest("🙂🙂🙂\n\t", CATS)) == 6
    weird = [CategoryInfo(1, "X", "", "", "ZF", ("", "  ")), CategoryInfo(2, "Y", "井盖", "", "ZF", ())]
    assert suggest("井盖没了", weird) == [2, 1]


def test_english_name_words_count_too() -> None:
    # No English keyword says "dispute", but the English name does.
    assert top("a dispute between neighbours") == ["DISPUTE-NEIGHBOUR"]
    assert top("food safety problem at the canteen") == ["MARKET-FOOD"]


def test_a_new_keyword_is_suggested_once_the_catalogue_is_read_again(rt: Runtime, db: Database) -> None:
    """The catalogue's terms are worked out once and kept; an import (the catalogue read
    again) brings a new keyword into the suggestions."""
    first = categories.suggestions(rt, user_id=1, description="石狮子歪了", limit=1)[0]
    assert categories.suggestions(rt, user_id=1, description="石狮子歪了", limit=1)[0] == first
    with db.session() as s:
        other = s.exec(select(Category).where(Category.code != first.code, col(Category.active))).first()
        assert other is not None
        other.keywords = [*other.keywords, "石狮子"]
        s.add(other)
    assert categories.suggestions(rt, user_id=1, description="石狮子歪了", limit=1)[0] == first  # kept
    index.forget(rt)
    assert categories.suggestions(rt, user_id=1, description="石狮子歪了", limit=1)[0].code == other.code
