"""Write a validated organisation spec into the database, idempotently.

Rows are matched by ``code``. A re-import of the same file changes nothing; a changed
file updates the rows it describes, creates new ones, and deactivates (never deletes)
rows that left the file: cases, memberships and audit events still point at them, and a
row that comes back to the file is reactivated with its old id.

Deactivating something that open cases still use would strand those cases, so the import
refuses first and changes nothing. Only the given session is used; the caller commits.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import (
    AuditEvent,
    Case,
    CaseState,
    Category,
    Community,
    District,
    Grid,
    Platform,
    Street,
    Unit,
    UnitKind,
    WebhookSubscription,
    utcnow,
)
from storage.orgspec import OrgSpec

# Report order; also the kinds ImportReport counts.
KINDS = (
    "district",
    "platform",
    "street",
    "community",
    "grid",
    UnitKind.TEAM,
    UnitKind.COMMAND_ROOM,
    UnitKind.DEPARTMENT,
    "category",
    "webhook",
)


class OrgImportRefused(Exception):
    """The file would deactivate something open cases still use; nothing was changed."""

    def __init__(self, message: str, blockers: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.blockers = blockers or {}  # "grid 33010200100101" -> open cases


@dataclass
class ImportReport:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)  # includes reactivated rows
    deactivated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(+self.created or +self.updated or +self.deactivated)

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {"created": n, "updated": n, "deactivated": n}} for kinds that changed."""
        out = {}
        for kind in KINDS:
            row = {
                "created": self.created[kind],
                "updated": self.updated[kind],
                "deactivated": self.deactivated[kind],
            }
            if any(row.values()):
                out[kind] = row
        return out

    def summary(self) -> str:
        """One line for logs and the admin's chat, e.g. 'grid: 1 created, 2 updated; …'."""
        if not self.changed:
            return "organisation unchanged"
        parts = []
        for kind, row in self.counts().items():
            words = [f"{n} {what}" for what, n in row.items() if n]
            parts.append(f"{kind}: {', '.join(words)}")
        return "; ".join(parts)


class OrgReplaceRefused(OrgImportRefused):
    """The file describes another district than the one in the database: importing it would
    deactivate the operator's organisation; only an explicit replace may do that."""


def other_districts(session: Session, district_code: str) -> list[tuple[str, str, int]]:
    """(code, name, active streets) of each district other than district_code that still
    has active streets: what an import of district_code would deactivate."""
    out = []
    for district in session.exec(select(District).where(District.code != district_code).order_by(col(District.id))):
        streets = session.exec(
            select(func.count()).select_from(Street).where(Street.district_id == district.id, col(Street.active))
        ).one()
        if streets:
            out.append((district.code, district.name_zh, int(streets)))
    return out


def import_org(
    session: Session, spec: OrgSpec, *, actor_user_id: int | None = None, replace: bool = False
) -> ImportReport:
    """Upsert spec into the database by code; see the module docstring. Caller commits.

    A file of another district than the database's is refused (OrgReplaceRefused) unless
    ``replace``: it would deactivate every street of the district the operator imported."""
    if not replace:
        others = other_districts(session, spec.district.code)
        if others:
            listed = ", ".join(f"{code} {name} ({n} active street{'s' if n != 1 else ''})" for code, name, n in others)
            raise OrgReplaceRefused(
                f"Import refused: the file describes district {spec.district.code} {spec.district.name.zh}, "
                f"but the database holds {listed}, which this import would deactivate. To replace the "
                "organisation, run `griddesk org import FILE --replace`. Nothing was changed."
            )
    importer = _Importer(session, spec)
    importer.refuse_if_stranding_open_cases()
    importer.run()
    report = importer.report
    if report.changed:
        session.add(
            AuditEvent(
                actor_user_id=actor_user_id,
                action="org.imported",
                subject_type="org",
                subject_id=importer.district_id,
                note=report.summary(),
                data={"district": spec.district.code, "source": spec.source, "counts": report.counts()},
            )
        )
        session.flush()
    return report


@dataclass
class _Row:
    """What the file says one row should hold."""

    kind: str
    code: str
    values: dict[str, Any]


class _Importer:
    def __init__(self, session: Session, spec: OrgSpec) -> None:
        self.session = session
        self.spec = spec
        self.report = ImportReport()
        self.district_id: int | None = None

    # -- what the file wants ------------------------------------------------------

    def _wanted_codes(self) -> dict[type, set[str]]:
        spec = self.spec
        return {
            Street: {s.code for s in spec.streets},
            Community: {c.code for _s, c in spec.iter_communities()},
            Grid: {g.code for _s, _c, g in spec.iter_grids()},
            Unit: {u.code for u in spec.teams() + spec.command_rooms()} | {d.code for d in spec.departments},
            Category: {c.code for c in spec.categories},
        }

    def refuse_if_stranding_open_cases(self) -> None:
        """Raise OrgImportRefused when a row to deactivate is used by open cases."""
        wanted = self._wanted_codes()
        columns = {
            Street: (Case.street_id, "street"),
            Community: (Case.community_id, "community"),
            Grid: (Case.grid_id, "grid"),
            Unit: (Case.unit_id, "unit"),
            Category: (Case.category_id, "category"),
        }
        blockers: dict[str, int] = {}
        for model, (column, label) in columns.items():
            model_: Any = model
            leaving = {
                row.id: row.code
                for row in self.session.exec(select(model_).where(col(model_.active)))
                if row.code not in wanted[model]
            }
            if not leaving:
                continue
            query = (
                select(column, func.count())
                .where(col(column).in_(list(leaving)), col(Case.state).not_in(CaseState.FINAL))
                .group_by(col(column))
            )
            for row_id, count in self.session.exec(query):
                blockers[f"{label} {leaving[row_id]}"] = count
        if blockers:
            listed = ", ".join(f"{what} ({n} open case{'s' if n != 1 else ''})" for what, n in sorted(blockers.items()))
            raise OrgImportRefused(
                f"Import refused: the file removes {listed}. Close or move those cases first, "
                "or keep these entries in the file. Nothing was changed.",
                blockers,
            )

    # -- writing ----------------------------------------------------------------------

    def run(self) -> None:
        spec = self.spec
        district = self._upsert_one(
            District,
            "district",
            spec.district.code,
            {
                "name_zh": spec.district.name.zh,
                "name_en": spec.district.name.en,
                "timezone": spec.district.timezone,
                "settings": {
                    **spec.district.settings.values(),
                    "extra_days_off": list(spec.district.extra_days_off),
                    "extra_workdays": list(spec.district.extra_workdays),
                },
            },
        )
        self.district_id = district.id

        platforms = self._sync(
            Platform,
            [_Row("platform", p.code, {"name_zh": p.name.zh, "name_en": p.name.en}) for p in spec.platforms],
        )
        platform_ids = {code: row.id for code, row in platforms.items()}

        self._free_abbrs()
        streets = self._sync(
            Street,
            [
                _Row(
                    "street",
                    s.code,
                    {
                        "district_id": district.id,
                        "abbr": s.abbr,
                        "name_zh": s.name.zh,
                        "name_en": s.name.en,
                        "auto_dispatch": s.auto_dispatch,
                        "settings": s.settings.values(),
                    },
                )
                for s in spec.streets
            ],
        )
        street_ids = {code: row.id for code, row in streets.items()}

        communities = self._sync(
            Community,
            [
                _Row(
                    "community",
                    c.code,
                    {"street_id": street_ids[s.code], "name_zh": c.name.zh, "name_en": c.name.en},
                )
                for s, c in spec.iter_communities()
            ],
        )
        community_ids = {code: row.id for code, row in communities.items()}

        grid_rows = []
        for s, c, g in spec.iter_grids():
            centre = g.centre()
            grid_rows.append(
                _Row(
                    "grid",
                    g.code,
                    {
                        "community_id": community_ids[c.code],
                        "street_id": street_ids[s.code],
                        "name_zh": g.name.zh,
                        "name_en": g.name.en,
                        "boundary": g.geojson(),
                        "centre_lat": centre[0] if centre else None,
                        "centre_lon": centre[1] if centre else None,
                    },
                )
            )
        self._sync(Grid, grid_rows)

        unit_rows = [
            _Row(
                u.kind,
                u.code,
                {
                    "kind": u.kind,
                    "street_id": street_ids[u.street_code],
                    "platform_id": platform_ids[u.platform_code] if u.platform_code else None,
                    "name_zh": u.name.zh,
                    "name_en": u.name.en,
                },
            )
            for u in spec.teams() + spec.command_rooms()
        ]
        unit_rows += [
            _Row(
                UnitKind.DEPARTMENT,
                d.code,
                {
                    "kind": UnitKind.DEPARTMENT,
                    "street_id": None,
                    "platform_id": None,
                    "name_zh": d.name.zh,
                    "name_en": d.name.en,
                },
            )
            for d in spec.departments
        ]
        self._sync(Unit, unit_rows)

        self._sync(
            Category,
            [
                _Row(
                    "category",
                    c.code,
                    {
                        "name_zh": c.name.zh,
                        "name_en": c.name.en,
                        "platform_id": platform_ids[c.platform],
                        "urgent": c.urgent,
                        "limit_value": c.limit_value,
                        "limit_unit": c.limit_unit,
                        "keywords": list(c.keywords),
                        "after_photo_required": c.after_photo_required,
                        "sort_order": i,
                        "public": c.public,
                        "questions": [q.model_dump() for q in c.questions],
                    },
                )
                for i, c in enumerate(spec.categories)
            ],
        )
        self._webhooks()

    def _webhooks(self) -> None:
        """Subscriptions declared in the file (origin "org"), keyed by URL and scope; the
        secret comes from the environment variable the file names. CLI ones are left alone."""
        existing = {
            (row.url, row.scope_code): row
            for row in self.session.exec(select(WebhookSubscription).where(WebhookSubscription.origin == "org"))
        }
        wanted = set()
        for hook in self.spec.webhooks:
            secret = os.environ.get(hook.secret_env, "")
            if not secret:
                raise OrgImportRefused(
                    f"webhook {hook.url}: set the environment variable {hook.secret_env} to its secret"
                )
            key = (hook.url, hook.scope)
            wanted.add(key)
            values: dict[str, Any] = {"events": list(hook.events), "secret": secret[:64], "active": True}
            row = existing.get(key)
            if row is None:
                self.session.add(WebhookSubscription(url=hook.url, scope_code=hook.scope, origin="org", **values))
                self.report.created["webhook"] += 1
            elif _apply(row, values):
                self.report.updated["webhook"] += 1
            else:
                self.report.unchanged["webhook"] += 1
        for key, row in existing.items():
            if key not in wanted and row.active:
                row.active = False
                self.report.deactivated["webhook"] += 1
        self.session.flush()

    def _upsert_one(self, model: Any, kind: str, code: str, values: dict[str, Any]) -> Any:
        row = self.session.exec(select(model).where(model.code == code)).first()
        if row is None:
            row = model(code=code, **values)
            self.session.add(row)
            self.report.created[kind] += 1
        elif _apply(row, values):
            if hasattr(row, "updated_at"):
                row.updated_at = utcnow()
            self.report.updated[kind] += 1
        else:
            self.report.unchanged[kind] += 1
        self.session.flush()
        return row

    def _sync(self, model: Any, rows: Iterable[_Row]) -> dict[str, Any]:
        """Upsert rows by code, deactivate the model's other active rows; code -> row."""
        existing = {row.code: row for row in self.session.exec(select(model))}
        out: dict[str, Any] = {}
        for want in rows:
            values = dict(want.values, active=True)
            row = existing.get(want.code)
            if row is None:
                row = model(code=want.code, **values)
                self.session.add(row)
                self.report.created[want.kind] += 1
            elif _apply(row, values):
                self.report.updated[want.kind] += 1
            else:
                self.report.unchanged[want.kind] += 1
            out[want.code] = row
        for code, row in existing.items():
            if code not in out and row.active:
                row.active = False
                self.report.deactivated[_kind_of(model, row)] += 1
        self.session.flush()
        return out

    def _free_abbrs(self) -> None:
        """Park abbreviations that move between streets, so the unique index never clashes.

        Street.abbr is unique over all rows, active or not. When a file gives a street's
        abbr to another street (or renames streets' abbrs in a swap), every row whose abbr
        changes, or who holds an abbr another street now wants, first gets a placeholder.
        """
        wanted = {s.code: s.abbr for s in self.spec.streets}
        taken = set(wanted.values())
        parked = False
        for row in self.session.exec(select(Street)):
            target = wanted.get(row.code)
            if (target is not None and row.abbr != target) or (target is None and row.abbr in taken):
                row.abbr = f"~{row.id}"[:8]
                parked = True
        if parked:
            self.session.flush()


def _apply(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _kind_of(model: Any, row: Any) -> str:
    if model is Unit:
        return row.kind
    return {
        District: "district",
        Platform: "platform",
        Street: "street",
        Community: "community",
        Grid: "grid",
        Category: "category",
    }[model]
