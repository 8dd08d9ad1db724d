"""The organisation file's typed spec: what ``bot.org.org_file`` parses and validates,
and what ``storage.org_import`` writes. Plain pydantic models, no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from shapely.geometry import shape as _geo_shape
from shapely.geometry.base import BaseGeometry

from storage.models import WEBHOOK_EVENTS

# --- derived units -----------------------------------------------------------------

TEAM = "team"
COMMAND_ROOM = "command_room"


def team_code(abbr: str, platform_code: str) -> str:
    return f"{abbr}-{platform_code}"


def command_room_code(abbr: str) -> str:
    return f"{abbr}-CMD"


# --- the typed spec ----------------------------------------------------------------


class _Model(BaseModel):
    # strict: YAML already gives bools and numbers their types; "yes" must not become True
    # by a second, looser rule, and a typo'd key must not be dropped silently.
    model_config = ConfigDict(extra="forbid", strict=True)


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _pattern(regex: str, message: str, max_length: int = 32) -> AfterValidator:
    """A validator for a code of the given shape (used as ``Annotated[str, _pattern(...)]``)."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if len(value) > max_length or not compiled.fullmatch(value):
            raise ValueError(message.format(value=value))
        return value

    return AfterValidator(check)


DistrictCode = Annotated[
    str,
    _pattern(
        r"[1-9]\d{5}",
        'district code "{value}" is not valid: it must be the 6-digit county code (GB/T 2260), like 330102',
    ),
]
StreetCode = Annotated[
    str,
    _pattern(
        r"\d{9}",
        'street code "{value}" is not valid: it must be 9 digits, the district code and 3 more, like 330102001',
    ),
]
CommunityCode = Annotated[
    str,
    _pattern(
        r"\d{12}",
        'community code "{value}" is not valid: it must be 12 digits, the street code and 3 more, like 330102001001',
    ),
]
GridCode = Annotated[
    str,
    _pattern(
        r"\d{14}",
        'grid code "{value}" is not valid: it must be 14 digits, the community code and 2 more, like 33010200100101',
    ),
]
StreetAbbr = Annotated[
    str,
    _pattern(
        r"[A-Z]{2,4}",
        'street abbr "{value}" is not valid: it must be 2 to 4 uppercase letters, like QB',
    ),
]
PlatformCode = Annotated[
    str,
    _pattern(
        r"[A-Z][A-Z0-9]{1,7}",
        'platform code "{value}" is not valid: it must be 2 to 8 uppercase letters or digits, '
        "starting with a letter, like ZF",
    ),
]
DepartmentCode = Annotated[
    str,
    _pattern(
        r"[A-Z][A-Z0-9_]*(?:-[A-Z0-9_]+)*",
        'department code "{value}" is not valid: it must be a short uppercase id (letters, digits, '
        "dashes, at most 32 characters), like HOUSING",
    ),
]
CategoryCode = Annotated[
    str,
    _pattern(
        r"[A-Z0-9]+(?:-[A-Z0-9]+)*",
        'category code "{value}" is not valid: it must be uppercase letters, digits and dashes '
        "(at most 32 characters), like TRAFFIC-PARKING",
    ),
]

_LIMIT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([hd])", re.IGNORECASE)


def _check_limit(value: str) -> str:
    match = _LIMIT_RE.fullmatch(value.strip())
    number = float(match.group(1)) if match else 0.0
    if not match or number <= 0 or not math.isfinite(number):
        raise ValueError(
            f'limit "{value}" is not valid: it must be a positive number of working hours or '
            "working days, like 4h, 1.5h or 5d"
        )
    return f"{match.group(1)}{match.group(2).lower()}"


Limit = Annotated[str, AfterValidator(_check_limit)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Names(_Model):
    """A name in Chinese and English; ``en`` defaults to ``zh`` when left out."""

    zh: Text
    en: Text | None = None

    @model_validator(mode="after")
    def _default_en(self) -> Names:
        if not self.en:
            self.en = self.zh
        return self

    def get(self, language: str | None) -> str:
        """The name for a UI language code (zh_CN, zh-hans, en, …)."""
        if language and language.lower().startswith("zh"):
            return self.zh
        return self.en or self.zh


class PlatformSpec(_Model):
    code: PlatformCode
    name: Names


class DepartmentSpec(_Model):
    code: DepartmentCode
    name: Names


class GridSpec(_Model):
    code: GridCode
    name: Names
    boundary: dict[str, Any] | None = None

    def geojson(self) -> dict[str, Any] | None:
        """The boundary as plain GeoJSON: floats, [lon, lat] only (altitude dropped)."""
        if self.boundary is None:
            return None
        kind = self.boundary["type"]
        coords = self.boundary["coordinates"]
        if kind == "Polygon":
            return {"type": kind, "coordinates": _norm_polygon(coords)}
        return {"type": kind, "coordinates": [_norm_polygon(p) for p in coords]}

    def shape(self) -> BaseGeometry | None:
        geo = self.geojson()
        return _geo_shape(geo) if geo else None

    def centre(self) -> tuple[float, float] | None:
        """(lat, lon) of a point guaranteed inside the boundary, or None without one."""
        geom = self.shape()
        if geom is None:
            return None
        point = geom.representative_point()
        return (point.y, point.x)


def _norm_polygon(rings: list) -> list:
    return [[[float(p[0]), float(p[1])] for p in ring] for ring in rings]


class CommunitySpec(_Model):
    code: CommunityCode
    name: Names
    grids: list[GridSpec]


_SPAN_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")
_CLOCK_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _check_span(value: str) -> str:
    if not _SPAN_RE.fullmatch(value.strip()):
        raise ValueError(f'"{value}" is not a time span: write it like 08:30-12:00')
    return value.strip()


def _check_clock(value: str) -> str:
    if not _CLOCK_RE.fullmatch(value.strip()):
        raise ValueError(f'"{value}" is not a time of day: write it like 08:30')
    return value.strip()


def _check_day(value: str) -> str:
    try:
        date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f'"{value}" is not a date: write it like 2026-10-09') from None
    return value.strip()


Span = Annotated[str, AfterValidator(_check_span)]
Clock = Annotated[str, AfterValidator(_check_clock)]
Day = Annotated[str, AfterValidator(_check_day)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class TimeSettings(_Model):
    """Deadline settings (时限): at the district level, and per street where it differs."""

    working_hours: list[Span] | None = None  # default 08:30-12:00, 14:00-18:00
    quiet_hours: Span | None = None  # default 22:00-07:30; "00:00-00:00" for none
    claim_minutes: Annotated[int, Field(gt=0, le=24 * 60)] | None = None  # default 30 (working time)
    reminders: list[Fraction] | None = None  # fractions of the allowed time; default [0.5, 0.8]
    digest_time: Clock | None = None  # default 08:30, working days only
    follow_up_days: Annotated[float, Field(gt=0, le=60)] | None = None  # 回访 limit, default 3 working days
    # issue 11 (bot/desk/reports.py): when the weekly and monthly reports go out (district level)
    weekly_report: Annotated[str, Field(pattern=r"^(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d$")] | None = (
        None
    )
    monthly_report_day: Annotated[int, Field(ge=1, le=28)] | None = None

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class StreetSpec(_Model):
    code: StreetCode
    abbr: StreetAbbr
    name: Names
    auto_dispatch: StrictBool = False
    settings: TimeSettings = Field(default_factory=TimeSettings)
    # The platform teams this street has; None in the file means all platforms, and
    # OrgSpec fills the list in, so after parsing it is always a list.
    platforms: list[str] | None = None
    communities: list[CommunitySpec]

    @property
    def command_room_code(self) -> str:
        return command_room_code(self.abbr)

    def team_code(self, platform_code: str) -> str:
        return team_code(self.abbr, platform_code)


class QuestionSpec(_Model):
    """An extra question of a category, asked by Open311 clients (a service definition's attribute)."""

    code: CategoryCode
    name: Names
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"] = "string"
    required: StrictBool = False
    values: list[Keyword] = Field(default_factory=list)  # for the list types


class CategorySpec(_Model):
    code: CategoryCode
    name: Names
    platform: str
    urgency: Literal["normal", "urgent"] = "normal"
    limit: Limit
    keywords: list[Keyword] = Field(default_factory=list)
    after_photo_required: StrictBool = True
    public: StrictBool = True  # false: never listed nor shown outside (Open311, issue 13)
    questions: list[QuestionSpec] = Field(default_factory=list)

    @property
    def urgent(self) -> bool:
        return self.urgency == "urgent"

    @property
    def limit_value(self) -> float:
        return float(self.limit[:-1])

    @property
    def limit_unit(self) -> str:
        """ "hours" (working hours; wall-clock hours if urgent) or "days" (working days)."""
        return "hours" if self.limit.endswith("h") else "days"


class WebhookSpec(_Model):
    """A system outside subscribed to a street's or the district's case events (issue 13).
    The secret is never in the file: `secret_env` names the environment variable holding it."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000)]
    scope: str
    events: list[str] = Field(default_factory=list)  # empty: all of them
    secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f'event "{unknown[0]}" is not one of {", ".join(WEBHOOK_EVENTS)}')
        return sorted(set(value))


class DistrictSpec(_Model):
    code: DistrictCode
    name: Names
    timezone: str = "Asia/Shanghai"
    settings: TimeSettings = Field(default_factory=TimeSettings)
    extra_days_off: list[Day] = Field(default_factory=list)  # beyond China's public holidays
    extra_workdays: list[Day] = Field(default_factory=list)  # e.g. a local make-up day

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'timezone "{value}" is not a known IANA time zone, like Asia/Shanghai') from None
        return value


DEFAULT_PLATFORMS: tuple[tuple[str, str, str], ...] = (
    ("ZZ", "综治工作", "Comprehensive governance"),
    ("SC", "市场监管", "Market supervision"),
    ("ZF", "综合执法", "Comprehensive law enforcement"),
    ("BM", "便民服务", "Convenience services"),
)


def _default_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(code=c, name=Names(zh=zh, en=en)) for c, zh, en in DEFAULT_PLATFORMS]


@dataclass(frozen=True)
class DerivedUnit:
    """A unit the file implies: a street's platform team or its command room."""

    code: str
    kind: str  # "team" or "command_room" (storage.models.UnitKind values)
    name: Names
    street_code: str
    platform_code: str | None = None


def _lower_first(words: str | None) -> str:
    """'Comprehensive law enforcement' -> 'comprehensive law enforcement' (an acronym stays)."""
    words = words or ""
    return words[:1].lower() + words[1:] if words[1:2].islower() else words


class OrgSpec(_Model):
    """A validated organisation file. Build it with parse_org_text or load_org_file."""

    version: Literal[1]
    district: DistrictSpec
    platforms: list[PlatformSpec] = Field(default_factory=_default_platforms)
    departments: list[DepartmentSpec] = Field(default_factory=list)
    streets: list[StreetSpec]
    categories: list[CategorySpec]
    webhooks: list[WebhookSpec] = Field(default_factory=list)

    _source: str = PrivateAttr(default="<string>")

    @model_validator(mode="after")
    def _fill_street_platforms(self) -> OrgSpec:
        every = [p.code for p in self.platforms]
        for street in self.streets:
            if street.platforms is None:
                street.platforms = list(every)
        return self

    @model_validator(mode="after")
    def _webhook_scopes(self) -> OrgSpec:
        scopes = {self.district.code} | {s.code for s in self.streets}
        for hook in self.webhooks:
            if hook.scope not in scopes:
                raise ValueError(f'webhook {hook.url}: scope "{hook.scope}" is neither a street nor the district')
        return self

    @property
    def source(self) -> str:
        return self._source

    def platform(self, code: str) -> PlatformSpec | None:
        return next((p for p in self.platforms if p.code == code), None)

    def iter_communities(self) -> Iterator[tuple[StreetSpec, CommunitySpec]]:
        for street in self.streets:
            for community in street.communities:
                yield street, community

    def iter_grids(self) -> Iterator[tuple[StreetSpec, CommunitySpec, GridSpec]]:
        for street, community in self.iter_communities():
            for grid in community.grids:
                yield street, community, grid

    def teams(self) -> list[DerivedUnit]:
        """Each street's platform teams, in file order: code ``{abbr}-{platform}``."""
        out = []
        for street in self.streets:
            for code in street.platforms or []:
                platform = self.platform(code)
                assert platform is not None  # checked when parsing
                out.append(
                    DerivedUnit(
                        code=street.team_code(code),
                        kind=TEAM,
                        name=Names(
                            zh=f"{street.name.zh}{platform.name.zh}平台",
                            # "Qingbo Subdistrict comprehensive law enforcement team": a common noun
                            en=f"{street.name.en} {_lower_first(platform.name.en)} team",
                        ),
                        street_code=street.code,
                        platform_code=code,
                    )
                )
        return out

    def command_rooms(self) -> list[DerivedUnit]:
        """Each street's command room (综合信息指挥室): code ``{abbr}-CMD``."""
        return [
            DerivedUnit(
                code=street.command_room_code,
                kind=COMMAND_ROOM,
                name=Names(zh=f"{street.name.zh}综合信息指挥室", en=f"{street.name.en} command room"),
                street_code=street.code,
            )
            for street in self.streets
        ]

    def all_codes(self) -> dict[str, str]:
        """Every code an admin may type in /invite or /bind, mapped to its kind."""
        codes = {self.district.code: "district"}
        for street in self.streets:
            codes[street.code] = "street"
        for _street, community in self.iter_communities():
            codes[community.code] = "community"
        for _street, _community, grid in self.iter_grids():
            codes[grid.code] = "grid"
        for unit in self.teams() + self.command_rooms():
            codes[unit.code] = unit.kind
        for department in self.departments:
            codes[department.code] = "department"
        return codes
