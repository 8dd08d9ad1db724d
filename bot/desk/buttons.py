"""The desk's buttons (registered with bot/callbacks.py's parser by subclassing Button)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.callbacks import Button, choice, pattern

SCOPE_CODE = r"[A-Za-z0-9][A-Za-z0-9-]{0,23}"
PERIOD_TEXT = r"[a-z0-9][a-z0-9.-]{0,23}"
# Breakdowns in two letters (button data has 64 bytes): "--" for none.
BY_CODES = {
    "--": "none",
    "st": "street",
    "tm": "team",
    "dp": "department",
    "gr": "grid",
    "ps": "person",
    "ct": "category",
}
BY_OF = {v: k for k, v in BY_CODES.items()}


@dataclass(frozen=True)
class DeskStats(Button, kind="dstats"):
    """/stats again with another period or breakdown."""

    scope: str = field(metadata=pattern(SCOPE_CODE))
    period: str = field(metadata=pattern(PERIOD_TEXT))
    by: str = field(metadata=choice(*BY_CODES))

    @property
    def breakdown(self) -> str:
        return BY_CODES[self.by]


QUEUE_KINDS = ("all", "overdue", "unclaimed", "today", "waiting", "team", "grid", "pickteam", "pickgrid")


@dataclass(frozen=True)
class DeskQueue(Button, kind="dqueue"):
    """A /queue page: a filter (team and grid take the unit or grid id), or the list to pick one from."""

    kind: str = field(metadata=choice(*QUEUE_KINDS))
    arg: int
    page: int


@dataclass(frozen=True)
class DeskOpen(Button, kind="dopen"):
    """A queue or search line tapped: the case's card in private."""

    case_id: int


@dataclass(frozen=True)
class DeskFix(Button, kind="dfix"):
    """更正分类: the categories to choose from."""

    case_id: int


@dataclass(frozen=True)
class DeskFixTo(Button, kind="dfixto"):
    """The category chosen."""

    case_id: int
    category_id: int


@dataclass(frozen=True)
class DeskMap(Button, kind="dmap"):
    """/map again coloured the other way: "st" by state, "ct" by category."""

    scope: str = field(metadata=pattern(SCOPE_CODE))
    period: str = field(metadata=pattern(PERIOD_TEXT))
    colour: str = field(metadata=choice("st", "ct"))
