"""Webhook delivery to a local receiver (uvicorn on loopback, one subscriber): events per
second when a backlog is delivered, and the delay from the commit of a change to the
receiver having its event (median, p99) when changes come one by one.

    python -m benchmarks.webhooks
    python -m benchmarks.webhooks --database postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path

import uvicorn
from sqlmodel import select

from benchmarks.common import percentile, private_schema_url
from benchmarks.sweep import fresh
from bot.clock import Clock
from bot.intake.submit import ReportIn, submit_report
from bot.interop import webhooks
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk import webhook_sender
from griddesk.app import build_application
from storage.db import Database
from storage.models import Case, Category, Grid


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.arrived: dict[str, float] = {}
        self.bad = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        if webhooks.verify(self.secret, headers.get(b"x-griddesk-signature", b"").decode(), raw, now=time.time()):
            self.arrived[json.loads(raw)["id"]] = time.perf_counter()
        else:
            self.bad += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run(url: str, media: Path, backlog: int, singles: int) -> dict[str, float]:
    db = Database(url)
    settings = Settings(
        TELEGRAM_BOT_TOKEN="123456:bench", DATABASE_URL=url, GRIDDESK_MEDIA_DIR=str(media), _env_file=None
    )
    rt = Runtime(settings=settings, db=db, clock=Clock())
    with db.session() as s:
        grid = s.exec(select(Grid)).first()
        cat = s.exec(select(Category).where(Category.code == "ROAD-DAMAGE")).one()
    port = free_port()
    with db.session() as s:
        sub = webhooks.subscribe(
            rt, s, url=f"http://127.0.0.1:{port}/hook", scope_code="330102", events=None, now=rt.clock.now()
        )
    receiver = Receiver(sub.secret)
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    assert grid is not None
    report = ReportIn(
        None, "patrol", grid.centre_lat or 0, grid.centre_lon or 0, grid.id or 0, cat.id or 0, "bench", ()
    )
    app = build_application(rt)

    # 1. a backlog: `backlog` cases created (one event each) while no sender runs, then delivered
    for _ in range(backlog):
        submit_report(rt, report)
    sender = webhook_sender.WebhookSender(app)
    began = time.perf_counter()
    while len(receiver.arrived) < backlog:
        tried, _ = await sender.deliver_due()
        if not tried:
            await asyncio.sleep(0.01)
    rate = backlog / (time.perf_counter() - began)

    # 2. one change at a time, the running sender woken after each commit (as flush() does)
    app.bot_data[webhook_sender.KEY] = sender
    sender.task = asyncio.create_task(sender.run())
    delays = []
    for _ in range(singles):
        done = await asyncio.to_thread(submit_report, rt, report)
        committed = time.perf_counter()
        sender.wake()
        with db.read() as s:
            case_id = s.exec(select(Case.id).where(Case.code == done.code)).one()
        assert case_id is not None
        event_id = _event_of(db, case_id)
        while event_id not in receiver.arrived:
            await asyncio.sleep(0.0005)
        delays.append((receiver.arrived[event_id] - committed) * 1000)
        await asyncio.sleep(0.02)
    sender.task.cancel()
    server.should_exit = True
    await serving
    if sender.client is not None:
        await sender.client.aclose()
    db.dispose()
    return {
        "rate": rate,
        "median": statistics.median(delays),
        "p99": percentile(delays, 0.99),
        "bad": receiver.bad,
    }


def _event_of(db: Database, case_id: int) -> str:
    from storage.models import WebhookEvent

    with db.read() as s:
        return s.exec(select(WebhookEvent.event_id).where(WebhookEvent.case_id == case_id)).one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="")
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--singles", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = private_schema_url(args.database, "bench_webhooks") if args.database else f"sqlite:///{tmp}/hooks.db"
        fresh(url).dispose()
        f = asyncio.run(run(url, Path(tmp) / "media", args.backlog, args.singles))
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: one subscriber on loopback (uvicorn), signed deliveries verified by the receiver")
    print(f"  backlog of {args.backlog}: {f['rate']:.0f} events/s")
    print(
        f"  commit → delivered, {args.singles} changes one by one: median {f['median']:.1f} ms, p99 {f['p99']:.1f} ms"
    )
    print(f"  signatures refused: {int(f['bad'])}")


if __name__ == "__main__":
    main()
