"""The `griddesk` command: run the bot, migrate, import the organisation, make invites."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError

from bot.errors import DomainError
from bot.i18n import t
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError, load_settings
from griddesk.logs import configure
from griddesk.startup import (
    StartupError,
    fill_figures,
    import_organisation,
    mask_logs,
    migrate,
    open_database,
    prepare,
)
from storage.db import PollerLock
from storage.orgspec import OrgSpec

log = logging.getLogger("griddesk")
STANDBY_RETRY_S = 5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="griddesk", description="GridDesk: grid governance on Telegram.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (long polling, or a webhook server)")
    run.add_argument("--webhook", metavar="URL", help="public HTTPS URL Telegram should post updates to")
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the HTTP API (health, metrics, Open311, 12345 intake) here; with --webhook it takes Telegram's posts too",
    )
    run.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one JSON object a line, for collectors"
    )

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations")
    fig = sub.add_parser("figures", help="the desk's figures kept per case (issue 11)")
    fig_sub = fig.add_subparsers(dest="figures_command", required=True)
    fig_sub.add_parser(
        "rebuild", help="derive every case's figures afresh (after changing the calendar or the claim limit)"
    )

    org = sub.add_parser("org", help="the organisation file")
    org_sub = org.add_subparsers(dest="org_command", required=True)
    imp = org_sub.add_parser("import", help="load an organisation file into the database (idempotent)")
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--replace", action="store_true", help="allow a file of another district to deactivate the one in the database"
    )
    chk = org_sub.add_parser("check", help="validate an organisation file without loading it")
    chk.add_argument("file", type=Path)

    demo = sub.add_parser("demo", help="play the whole loop on a built-in Telegram simulator (no token, no network)")
    demo.add_argument("--lang", choices=("zh_CN", "en"), default="zh_CN", help="the language the people speak")
    demo.add_argument("--interactive", action="store_true", help="type as the grid worker yourself")
    demo.add_argument("--out", type=Path, metavar="DIR", help="where to write the images the bot sent")

    inv = sub.add_parser("invite", help="make a single-use invite link")
    inv.add_argument("role", help="worker, staff, dispatcher, department or supervisor")
    inv.add_argument("scope", help="a grid, team, street, department or district code")
    inv.add_argument("--bot-username", help="skip asking Telegram for the bot's username")

    from griddesk import interop_cli

    interop_cli.add_parsers(sub)
    rev = sub.add_parser("revoke", help="take a role away (a person's, or everyone's with a role in a scope)")
    rev.add_argument("who", help="a Telegram id, @username, or a role")
    rev.add_argument("scope", nargs="?", help="a grid, team, street, department or district code")
    exp = sub.add_parser("export", help="write the assessment spreadsheet (issue 11)")
    exp.add_argument("--scope", required=True, help="a district, street, team, department or grid code")
    exp.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
    exp.add_argument("--to", dest="last", required=True, help="last day, YYYY-MM-DD (included)")
    exp.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    exp.add_argument("--out", required=True, type=Path)
    exp.add_argument("--lang", default="zh_CN", help="language of the headers (zh_CN or en)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure(getattr(args, "log_format", "text"))
    if args.command == "demo":
        import os

        from griddesk.demo import main as demo_main

        return demo_main(
            args.lang,
            out_dir=args.out,
            interactive=args.interactive,
            database_url=os.environ.get("DATABASE_URL") or None,
        )
    try:
        settings = load_settings()
        mask_logs(settings)  # the database password never reaches a log line
        if args.command == "run":
            return _run(settings, webhook=args.webhook, http=args.http)
        if args.command == "db":
            db = open_database(settings)
            migrate(db)
            filled = fill_figures(Runtime(settings=settings, db=db))
            print("Database schema is up to date." + (f" Figures derived for {filled} cases." if filled else ""))
            return 0
        if args.command == "figures":
            return _figures(settings)
        if args.command == "org":
            return _org(settings, args)
        if args.command == "invite":
            return _invite(settings, args)
        if args.command in ("apikey", "webhook"):
            from griddesk import interop_cli

            return interop_cli.run(settings, args)
        if args.command == "revoke":
            return _revoke(settings, args)
        if args.command == "export":
            return _export(settings, args)
    except (SettingsError, StartupError) as exc:
        print(f"griddesk: {exc}", file=sys.stderr)
        return 2
    return 1


def _run(settings: Settings, *, webhook: str | None, http: str | None = None) -> int:
    from griddesk.app import LOCK_CHECK_S, LOCK_LOST, SETTLE_HEAP, build_application
    from griddesk.serve import parse_listen, serve

    settings.require_token()
    if not settings.admin_ids:
        log.warning(
            "GRIDDESK_ADMIN_IDS is not set: nobody can administer this bot (/invite, /bind). Set it to "
            "your Telegram user id (numbers, comma-separated for several; @userinfobot tells you yours, "
            "and so does /whoami to this bot) and restart."
        )
    rt = prepare(settings)
    if webhook:
        parsed = urlparse(webhook)
        if parsed.scheme != "https" or not parsed.hostname:
            raise SettingsError("--webhook must be a public https:// URL, like https://bot.example.org/telegram.")
    taking_over = False  # after standing by, or after losing the lock ourselves
    while True:
        lock = PollerLock(rt.db)
        if not lock.try_acquire():
            log.info("another GridDesk process is polling this bot; standing by until it stops")
            while not lock.try_acquire():  # a lost database connection is reopened, never fatal
                time.sleep(STANDBY_RETRY_S)
            log.info("the other process stopped; taking over")
            taking_over = True
        if taking_over:
            # The lock is free when its holder stopped, but also when only its connection
            # died: that holder polls until its next check finds the lock gone. Never two
            # pollers: wait out that check (and its stopping) before polling.
            time.sleep(2 * LOCK_CHECK_S + 1)
            if not lock.still_held():
                lock.release()
                continue
        # Ask Telegram who we are before PTB does: a refused token ends in one sentence; an
        # unreachable server is asked again until it answers.
        _wait_for_bot_api(settings)
        asyncio.set_event_loop(asyncio.new_event_loop())  # PTB closes its loop when it stops
        app = build_application(rt)
        app.bot_data["poller_lock"] = lock  # re-checked while running (griddesk/app.py)
        app.bot_data[SETTLE_HEAP] = True  # this process lives on: its start-up heap is frozen
        try:
            if http:
                # The HTTP API beside the bot in one event loop; with --webhook it takes
                # Telegram's posts too (into the inbox, like polled updates).
                host, port = parse_listen(http)
                secret = settings.webhook_secret or secrets.token_urlsafe(32)
                asyncio.run(serve(app, host, port, webhook=webhook, secret=secret))
            elif webhook:
                parsed = urlparse(webhook)
                secret = settings.webhook_secret or secrets.token_urlsafe(32)
                log.info(
                    "starting webhook server on %s:%s for %s", settings.webhook_listen, settings.webhook_port, webhook
                )
                app.run_webhook(
                    listen=settings.webhook_listen,
                    port=settings.webhook_port,
                    url_path=parsed.path.lstrip("/"),
                    webhook_url=webhook,
                    secret_token=secret,
                    allowed_updates=Update.ALL_TYPES,
                    bootstrap_retries=-1,
                )
            else:
                log.info("starting long polling against %s", settings.telegram_api_base_url)
                app.run_polling(allowed_updates=Update.ALL_TYPES, bootstrap_retries=-1)
        except InvalidToken:
            raise SettingsError(
                "Telegram refused TELEGRAM_BOT_TOKEN: set it to the token @BotFather gave you."
            ) from None
        except TelegramError as exc:
            raise StartupError(unreachable(settings, exc)) from None
        finally:
            lock.release()
        if not app.bot_data.get(LOCK_LOST):
            return 0
        log.warning("stopped polling: the poller lock was lost; standing by again")
        taking_over = True


def _wait_for_bot_api(settings: Settings) -> None:
    """Ask Telegram who we are until it answers (or GRIDDESK_BOT_API_WAIT_S runs out): the
    first failure says what to try, the later ones only that we are still trying."""
    pause, waited, first = 1.0, 0.0, True
    while True:
        try:
            asyncio.run(_bot_username(settings))
            return
        except StartupError as exc:
            if settings.bot_api_wait_s and waited + pause > settings.bot_api_wait_s:
                raise
            if first:
                log.warning("%s Trying again until it answers.", exc)
                first = False
            else:
                log.warning("The Bot API still does not answer; trying again in %.0f s.", pause)
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 30.0)


def _org(settings: Settings, args: argparse.Namespace) -> int:
    from bot.org.org_file import OrgFileError, load_org_file

    try:
        spec = load_org_file(args.file)
    except OrgFileError as exc:
        print(f"griddesk: the organisation file is not valid:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"griddesk: cannot read {args.file}: {exc.strerror}.", file=sys.stderr)
        return 2
    if args.org_command == "check":
        print(f"{args.file} is valid.")
        print(org_summary(spec))
        return 0
    from storage.org_import import OrgImportRefused

    rt = prepare(settings, import_org_file=False)
    try:
        report, expired, refigured = import_organisation(
            rt, spec, replace=args.replace, progress=lambda n: print(f"  figures: {n:,} cases", flush=True)
        )
    except OrgImportRefused as exc:
        print(f"griddesk: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for r in expired:
        print(f"role ended (scope removed): {r.name} · {r.role} · {r.scope_code}")
    if refigured:
        print(f"the desk's figures of {refigured:,} cases derived again (the calendar or claim limit changed)")
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.people import revoke

    rt = prepare(settings, import_org_file=False)
    try:
        done = revoke.revoke(rt, by=None, who=args.who, scope=args.scope)
    except DomainError as exc:
        text = t("en", exc.key, **exc.params)
        print("griddesk: " + re.sub(r"<[^>]+>", "", text), file=sys.stderr)
        return 2
    for r in done:
        print(f"revoked: {r.name} ({r.telegram_id}) · {r.role} · {r.scope_code}")
    return 0


def org_summary(spec: OrgSpec) -> str:
    """What an organisation file defines, with the codes the bot derives from it."""
    lines = [f"district {spec.district.code} {spec.district.name.zh} / {spec.district.name.en}"]
    teams, rooms = spec.teams(), spec.command_rooms()
    for street in spec.streets:
        communities = [c for s, c in spec.iter_communities() if s.code == street.code]
        grids = [g for s, _c, g in spec.iter_grids() if s.code == street.code]
        lines.append(
            f"  street {street.code} {street.name.zh} / {street.name.en} (abbr {street.abbr}): "
            f"{len(communities)} communities, {len(grids)} grids"
        )
        for unit in [u for u in rooms if u.street_code == street.code] + [
            u for u in teams if u.street_code == street.code
        ]:
            what = "command room" if unit in rooms else "team"
            lines.append(f"    {what} {unit.code}  {unit.name.zh} / {unit.name.en}")
    lines.append(f"  departments: {', '.join(d.code for d in spec.departments) or 'none'}")
    urgent = sum(c.urgent for c in spec.categories)
    lines.append(
        f"  categories: {len(spec.categories)} ({urgent} urgent), platforms {', '.join(p.code for p in spec.platforms)}"
    )
    return "\n".join(lines)


def _invite(settings: Settings, args: argparse.Namespace) -> int:
    from bot.people import onboarding

    rt = prepare(settings, import_org_file=False)
    rt.bot_username = args.bot_username or asyncio.run(_bot_username(settings))
    try:
        made = onboarding.create_invite(rt, role=args.role, scope_code=args.scope, created_by=None)
    except DomainError as exc:
        print(
            "griddesk: " + t("en", exc.key, **exc.params).replace("<code>", "").replace("</code>", ""), file=sys.stderr
        )
        return 2
    expires = made.expires_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")
    print(f"{made.role} · {made.scope_code} {made.scope_name_zh} / {made.scope_name_en} · expires {expires}")
    print(made.link)
    return 0


def _figures(settings: Settings) -> int:
    from bot.desk import figures

    rt = prepare(settings, import_org_file=False)
    started = time.monotonic()
    count = figures.rebuild(rt)
    print(f"Figures derived for {count} cases in {time.monotonic() - started:.1f} s.")
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.desk import export

    rt = prepare(settings, import_org_file=False)
    try:
        count = export.export_file(rt, args.scope, args.first, args.last, args.format, args.out, args.lang)
    except DomainError as exc:
        print("griddesk: " + t("en", exc.key, **exc.params), file=sys.stderr)
        return 2
    print(f"{args.out}: {count} cases")
    return 0


async def _bot_username(settings: Settings) -> str:
    settings.require_token()
    bot = Bot(settings.telegram_bot_token, base_url=settings.telegram_api_base_url)
    try:
        async with bot:
            return bot.username
    except InvalidToken:
        raise SettingsError("Telegram refused TELEGRAM_BOT_TOKEN: set it to the token @BotFather gave you.") from None
    except TelegramError as exc:
        raise StartupError(unreachable(settings, exc)) from None


def unreachable(settings: Settings, exc: Exception) -> str:
    """No route to Telegram: what happened, and what to try."""
    return (
        f"Could not reach the Bot API at {settings.telegram_api_base_url} ({exc}). Try: (1) check this "
        "machine's network and DNS; (2) where api.telegram.org is blocked (mainland China), set HTTPS_PROXY="
        "http://host:port (or ALL_PROXY=socks5://host:port, after pip install 'python-telegram-bot[socks]') "
        "to a proxy that reaches it; (3) or run a self-hosted Bot API server "
        "(https://github.com/tdlib/telegram-bot-api) and set TELEGRAM_API_BASE_URL=http://host:8081/bot and "
        "TELEGRAM_FILE_BASE_URL=http://host:8081/file/bot."
    )


if __name__ == "__main__":
    raise SystemExit(main())
