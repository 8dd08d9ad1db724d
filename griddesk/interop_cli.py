"""`griddesk apikey …` and `griddesk webhook …`: the HTTP API's clients and subscribers."""

from __future__ import annotations

import argparse
import sys

from bot.errors import DomainError
from bot.interop import apikeys, webhooks
from bot.settings import Settings
from griddesk.startup import prepare
from storage import webhooks as subscriptions

# A bot already running is another process: it reads who listens again within this.
_RUNNING_BOT_HEARS = (
    f"(a bot already running takes this in within {webhooks.LISTENERS_TTL.total_seconds():.0f} seconds)"
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    key = sub.add_parser("apikey", help="API keys of HTTP clients (Open311 apps, the 12345 hotline)")
    key_sub = key.add_subparsers(dest="apikey_command", required=True)
    create = key_sub.add_parser("create", help="make a key for a client; it is printed once")
    create.add_argument("name")

    hook = sub.add_parser("webhook", help="outbound webhook subscriptions")
    hook_sub = hook.add_subparsers(dest="webhook_command", required=True)
    add = hook_sub.add_parser("add", help="subscribe a URL to a street's or the district's case events")
    add.add_argument("url")
    add.add_argument("--scope", required=True, help="a street code or the district code")
    add.add_argument("--events", help=f"comma-separated, of: {', '.join(webhooks.EVENTS)} (default: all)")
    hook_sub.add_parser("list", help="list the subscriptions")
    remove = hook_sub.add_parser("remove", help="stop a subscription")
    remove.add_argument("id", type=int)
    resume = hook_sub.add_parser("resume", help="resume a paused subscription")
    resume.add_argument("id", type=int)


def run(settings: Settings, args: argparse.Namespace) -> int:
    rt = prepare(settings, import_org_file=args.command == "webhook")
    now = rt.clock.now()
    if args.command == "apikey":
        try:
            key = apikeys.create(rt, args.name)
        except DomainError:
            print(f"griddesk: a client named {args.name} already has a key.", file=sys.stderr)
            return 2
        print(f"API key for {args.name} (shown once; keep it secret):")
        print(key)
        return 0
    command = args.webhook_command
    with rt.db.session() as s:
        if command == "add":
            events = [e.strip() for e in (args.events or "").split(",") if e.strip()]
            try:
                sub = webhooks.subscribe(rt, s, url=args.url, scope_code=args.scope, events=events, now=now)
            except webhooks.BadSubscription as exc:
                print(f"griddesk: {exc}.", file=sys.stderr)
                return 2
            print(f"subscription {sub.id}: {sub.url} · {sub.scope_code} · {','.join(sub.events) or 'all events'}")
            print(f"secret (verify X-GridDesk-Signature with it): {sub.secret}")
            print(_RUNNING_BOT_HEARS)
            return 0
        if command == "list":
            for row in subscriptions.subscriptions(s):
                state = "removed" if not row.active else ("paused" if row.paused_at else "active")
                print(f"{row.id}\t{state}\t{row.scope_code}\t{','.join(row.events) or 'all'}\t{row.url}")
            return 0
        if command == "remove":
            if not subscriptions.remove_subscription(s, args.id):
                print(f"griddesk: no subscription {args.id}.", file=sys.stderr)
                return 2
            print(f"subscription {args.id} removed.")
            print(_RUNNING_BOT_HEARS)
            return 0
        if command == "resume":
            if not subscriptions.resume(s, subscription_id=args.id, now=now):
                print(f"griddesk: no subscription {args.id}.", file=sys.stderr)
                return 2
            print(f"subscription {args.id} resumed.")
            return 0
    return 1
