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
from bot.settings import Settings, SettingsError, load_settings
from griddesk.startup import StartupError, mask_logs, migrate, open_database, prepare
from storage.db import PollerLock

log = logging.getLogger("griddesk")
STANDBY_RETRY_S = 5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="griddesk", description="GridDesk: grid governance on Telegram.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (long polling, or a webhook server)")
    run.add_argument("--webhook", metavar="URL", help="public HTTPS URL Telegram should post updates to")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations")

    org = sub.add_parser("org", help="the organisation file")
    org_sub = org.add_subparsers(dest="org_command", required=True)
    imp = org_sub.add_parser("import", help="load an organisation file into the database (idempotent)")
    imp.add_argument("file", type=Path)
    chk = org_sub.add_parser("check", help="validate an organisation file without loading it")
    chk.add_argument("file", type=Path)

    inv = sub.add_parser("invite", help="make a single-use invite link")
    inv.add_argument("role", help="worker, staff, dispatcher, department or supervisor")
    inv.add_argument("scope", help="a grid, team, street, department or district code")
    inv.add_argument("--bot-username", help="skip asking Telegram for the bot's username")

    rev = sub.add_parser("revoke", help="take a role away (a person's, or everyone's with a role in a scope)")
    rev.add_argument("who", help="a Telegram id, @username, or a role")
    rev.add_argument("scope", nargs="?", help="a grid, team, street, department or district code")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_settings()
        mask_logs(settings)  # the database password never reaches a log line
        if args.command == "run":
            return _run(settings, webhook=args.webhook)
        if args.command == "db":
            db = open_database(settings)
            migrate(db)
            print("Database schema is up to date.")
            return 0
        if args.command == "org":
            return _org(settings, args)
        if args.command == "invite":
            return _invite(settings, args)
        if args.command == "revoke":
            return _revoke(settings, args)
    except (SettingsError, StartupError) as exc:
        print(f"griddesk: {exc}", file=sys.stderr)
        return 2
    return 1


def _run(settings: Settings, *, webhook: str | None) -> int:
    from griddesk.app import LOCK_LOST, build_application

    settings.require_token()
    rt = prepare(settings)
    if webhook:
        parsed = urlparse(webhook)
        if parsed.scheme != "https" or not parsed.hostname:
            raise SettingsError("--webhook must be a public https:// URL, like https://bot.example.org/telegram.")
    while True:
        lock = PollerLock(rt.db)
        if not lock.try_acquire():
            log.info("another GridDesk process is polling this bot; standing by until it stops")
            while not lock.try_acquire():  # a lost database connection is reopened, never fatal
                time.sleep(STANDBY_RETRY_S)
            log.info("the other process stopped; taking over")
        # Ask Telegram who we are before PTB does: a refused token ends in one sentence; an
        # unreachable server is asked again until it answers.
        _wait_for_bot_api(settings)
        asyncio.set_event_loop(asyncio.new_event_loop())  # PTB closes its loop when it stops
        app = build_application(rt)
        app.bot_data["poller_lock"] = lock  # re-checked while running (griddesk/app.py)
        try:
            if webhook:
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
            raise StartupError(f"Could not reach the Bot API at {settings.telegram_api_base_url}: {exc}.") from None
        finally:
            lock.release()
        if not app.bot_data.get(LOCK_LOST):
            return 0
        log.warning("stopped polling: the poller lock was lost; standing by again")


def _wait_for_bot_api(settings: Settings) -> None:
    pause = 1.0
    while True:
        try:
            asyncio.run(_bot_username(settings))
            return
        except StartupError as exc:
            log.warning("%s Trying again in %.0f s.", exc, pause)
            time.sleep(pause)
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
        return 0
    from bot.people.revoke import expire_removed_scopes
    from storage.org_import import OrgImportRefused, import_org

    rt = prepare(settings, import_org_file=False)
    try:
        with rt.db.session() as session:
            report = import_org(session, spec)
            expired = expire_removed_scopes(rt, session)
    except OrgImportRefused as exc:
        print(f"griddesk: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for r in expired:
        print(f"role ended (scope removed): {r.name} · {r.role} · {r.scope_code}")
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


async def _bot_username(settings: Settings) -> str:
    settings.require_token()
    bot = Bot(settings.telegram_bot_token, base_url=settings.telegram_api_base_url)
    try:
        async with bot:
            return bot.username
    except InvalidToken:
        raise SettingsError("Telegram refused TELEGRAM_BOT_TOKEN: set it to the token @BotFather gave you.") from None
    except TelegramError as exc:
        raise StartupError(f"Could not reach the Bot API at {settings.telegram_api_base_url} ({exc}).") from None


if __name__ == "__main__":
    raise SystemExit(main())
