"""Getting a runtime ready: settings checked, database reachable and migrated, org loaded."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlmodel import select

from bot.clock import Clock
from bot.org.org_file import DEFAULT_ORG_FILE, OrgFileError, OrgSpec, load_org_file
from bot.people.revoke import Revoked, expire_removed_scopes
from bot.runtime import Runtime
from bot.settings import Settings
from storage.db import Database, mask_secrets, mask_url
from storage.migrate import upgrade
from storage.models import District
from storage.org_import import ImportReport, OrgImportRefused, import_org

log = logging.getLogger("griddesk")


class StartupError(Exception):
    """Start-up cannot go on; str() is one sentence for the operator."""


def open_database(settings: Settings) -> Database:
    try:
        db = Database(settings.database_url)
        db.check()
    except Exception as exc:  # driver errors differ by backend; all mean the same here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = mask_secrets(reason, settings.database_url)
        raise StartupError(
            f"Cannot reach the database at DATABASE_URL ({_redact(settings.database_url)}): {reason}. "
            "Check that the server is running and the URL is right."
        ) from None
    return db


def migrate(db: Database) -> None:
    try:
        upgrade(db)
    except Exception as exc:
        raise StartupError(f"Could not upgrade the database schema: {exc}") from None


def uses_sample(settings: Settings) -> bool:
    """True when GRIDDESK_ORG_FILE is unset (or names the bundled sample itself)."""
    try:
        return settings.org_file.resolve() == DEFAULT_ORG_FILE.resolve()
    except OSError:
        return False


def load_org(rt: Runtime) -> ImportReport | None:
    """Import the organisation file at start-up. The bundled sample only goes into an empty
    database: an operator's organisation is never replaced by it (None: nothing imported).
    An operator's own file is imported, but never one that would deactivate the district
    the database holds (that takes `griddesk org import FILE --replace`)."""
    sample = uses_sample(rt.settings)
    if sample:
        with rt.db.session() as s:
            if s.exec(select(District)).first() is not None:
                log.info(
                    "GRIDDESK_ORG_FILE is not set: using the organisation already in the database "
                    "(the bundled sample is imported into an empty database only)"
                )
                return None
    try:
        spec = load_org_file(rt.settings.org_file)
    except OrgFileError as exc:
        raise StartupError(f"The organisation file is not valid:\n{exc}") from None
    try:
        report, _expired, _refigured = import_organisation(rt, spec)
    except OrgImportRefused as exc:
        raise StartupError(str(exc)) from None
    log.info("organisation %s imported from %s: %s", spec.district.code, rt.settings.org_file, report.summary())
    return report


def import_organisation(
    rt: Runtime, spec: OrgSpec, *, replace: bool = False, progress: Callable[[int], None] | None = None
) -> tuple[ImportReport, list[Revoked], int]:
    """Import an organisation file (start-up and `griddesk org import`): the roles whose scope
    left the file end with it, and the desk's figures of the streets whose calendar or claim
    limit changed are derived again. (report, roles ended, cases whose figures were derived)."""
    from bot.desk import figures
    from bot.org import index

    with rt.db.read() as s:
        measured = figures.measures(rt, s)
    with rt.db.session() as s:
        report = import_org(s, spec, replace=replace)
        expired = expire_removed_scopes(rt, s)
    index.forget(rt)
    refigured = figures.after_import(rt, measured, progress=progress)
    if refigured:
        log.info("the desk's figures of %s case(s) derived again (calendar or claim limit changed)", refigured)
    return report, expired, refigured


def prepare(settings: Settings, *, clock: Clock | None = None, import_org_file: bool = True) -> Runtime:
    settings.require_org_file()
    db = open_database(settings)
    migrate(db)
    rt = Runtime(settings=settings, db=db, clock=clock or Clock())
    if import_org_file:
        load_org(rt)
    fill_figures(rt)
    return rt


def fill_figures(rt: Runtime) -> int:
    """The desk's per-case figures for a database upgraded to migration 0008 (whose rules a
    migration cannot run): derived once, at the first start after the upgrade."""
    from bot.desk import figures
    from storage import desk_figures

    with rt.db.read() as s:
        if not desk_figures.never_filled(s):
            return 0
    log.info("deriving the desk's figures of every case (once, after migration 0008)")
    return figures.rebuild(rt)


def _redact(url: str) -> str:
    # Never print a password: postgresql://user:secret@host/db -> postgresql://user:***@host/db
    return mask_url(url)


class MaskDatabasePassword(logging.Filter):
    """Every log line with the database password in it shows `***` instead."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message, self.url)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = mask_secrets(text, self.url), None
        return True


def mask_logs(settings: Settings) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskDatabasePassword(settings.database_url))
