"""Posting webhook events (the rows bot/interop/webhooks.py writes with each change) to their
subscribers with httpx: signed, retried with backoff, a subscriber that keeps failing paused
and the administrators told. One background task per process, woken after each change."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from telegram.ext import Application

from bot import notify
from bot.interop import webhooks as rules
from bot.metrics import WEBHOOKS_DELIVERED
from bot.runtime import Runtime
from handlers.outbox_sender import SENDING
from storage import webhooks
from storage.models import pk

log = logging.getLogger(__name__)

KEY = "webhook_sender"
TRANSPORT_KEY = "webhook_transport"  # tests and benchmarks put an httpx transport here
LEASE = timedelta(seconds=60)
IDLE_S = 5.0  # without a wake-up, look for due retries this often
CONCURRENCY = 16
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Job:
    row_id: int
    subscription_id: int
    url: str
    secret: str
    event_id: str
    event: str
    body: dict[str, Any]
    attempts: int


class WebhookSender:
    def __init__(self, app: Application) -> None:
        self.app = app
        self.rt: Runtime = app.bot_data["rt"]
        self.woken = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient | None = None
        self.lock = asyncio.Lock()
        self.paused_someone = False

    def wake(self) -> None:
        self.woken.set()

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            transport = self.app.bot_data.get(TRANSPORT_KEY)
            self.client = httpx.AsyncClient(timeout=TIMEOUT_S, transport=transport, follow_redirects=False)
        return self.client

    def _claim(self) -> list[Job]:
        now = self.rt.clock.now()
        with self.rt.db.read() as s:
            if not webhooks.any_due(s, now=now):
                return []  # the common case (no subscriber, nothing to retry): no write lock
        with self.rt.db.session() as s:
            rows = webhooks.claim_due(s, now=now, lease=LEASE)
            subs = {sid: webhooks.subscription(s, sid) for sid in {r.subscription_id for r in rows}}
            return [
                Job(pk(r), r.subscription_id, sub.url, sub.secret, r.event_id, r.event, dict(r.body), r.attempts)
                for r in rows
                if (sub := subs.get(r.subscription_id)) is not None
            ]

    async def deliver_due(self) -> tuple[int, int]:
        """One pass: post every due event, then record all outcomes in one transaction; how
        many were tried and how many delivered."""
        async with self.lock:
            jobs = await asyncio.to_thread(self._claim)
            if not jobs:
                return 0, 0
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(job: Job) -> str | None:
                async with gate:
                    return await self._post(job)

            errors = await asyncio.gather(*(one(j) for j in jobs))
            await asyncio.to_thread(self._record, list(zip(jobs, errors, strict=True)))
            delivered = sum(1 for e in errors if e is None)
            WEBHOOKS_DELIVERED.labels("ok").inc(delivered)
            WEBHOOKS_DELIVERED.labels("failed").inc(len(jobs) - delivered)
            return len(jobs), delivered

    async def _post(self, job: Job) -> str | None:
        """None when delivered, else why not."""
        raw = rules.encode(job.body)
        stamp = int(self.rt.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            rules.HEADER: rules.sign(job.secret, stamp, raw),
            "X-GridDesk-Event": job.event,
            "X-GridDesk-Event-Id": job.event_id,
            "User-Agent": "GridDesk-Webhooks/1",
        }
        try:
            answer = await self._client().post(job.url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"

    def _record(self, outcomes: list[tuple[Job, str | None]]) -> None:
        now = self.rt.clock.now()
        with self.rt.db.session() as s:
            ok = [job for job, error in outcomes if error is None]
            webhooks.delivered_many(
                s,
                event_ids=[j.row_id for j in ok],
                subscription_ids={j.subscription_id for j in ok},
                now=now,
            )
            for job, error in outcomes:
                if error is None:
                    continue
                retry_at = now + rules.retry_delay(job.attempts) if job.attempts < rules.MAX_ATTEMPTS else None
                failures = webhooks.failed(
                    s, event_id=job.row_id, subscription_id=job.subscription_id, retry_at=retry_at, error=error
                )
                if failures >= rules.PAUSE_AFTER_FAILURES and webhooks.pause(
                    s, subscription_id=job.subscription_id, now=now
                ):
                    log.warning(
                        "webhook subscription %s paused after %s failures: %s", job.subscription_id, failures, error
                    )
                    for admin in self.rt.settings.admin_ids:
                        notify.text_to_user(
                            s,
                            telegram_id=admin,
                            key="webhook.paused",
                            now=now,
                            id=job.subscription_id,
                            url=job.url,
                            failures=failures,
                        )
                    self.paused_someone = True

    async def run(self) -> None:
        SENDING.set(True)  # background delivery, not an update's work (benchmarks/costs.py)
        look = True  # at start, after a full pass, and every IDLE_S (due retries)
        while True:
            try:
                # Woken by a change: look only if it queued events.
                if self.rt.cache.pop(rules.OWED, False) or look:
                    look = (await self.deliver_due())[0] > 0  # a full batch: maybe more behind it
                if self.paused_someone:
                    self.paused_someone = False
                    from handlers.outbox_sender import flush

                    await flush(self.app)
                if look:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery pass failed; trying again shortly")
            try:
                await asyncio.wait_for(self.woken.wait(), timeout=IDLE_S)
            except TimeoutError:
                look = True
            self.woken.clear()


def start(app: Application) -> WebhookSender:
    sender = WebhookSender(app)
    app.bot_data[KEY] = sender
    app.bot_data.setdefault("wake_also", []).append(sender.wake)
    sender.task = asyncio.create_task(sender.run(), name="griddesk-webhooks")
    return sender


async def stop(app: Application) -> None:
    sender = app.bot_data.pop(KEY, None)
    if not isinstance(sender, WebhookSender):
        return
    if sender.task is not None:
        sender.task.cancel()
        try:
            await sender.task
        except (asyncio.CancelledError, Exception):
            pass
    if sender.client is not None:
        await sender.client.aclose()


async def deliver_now(app: Application) -> int:
    """Deliver every due event now (tests; a running sender would soon do the same)."""
    sender = app.bot_data.get(KEY)
    if not isinstance(sender, WebhookSender):
        sender = WebhookSender(app)
        app.bot_data[KEY] = sender
    total = 0
    while True:
        tried, delivered = await sender.deliver_due()
        total += delivered
        if not tried:
            break
    if sender.paused_someone:
        sender.paused_someone = False
        from handlers.outbox_sender import flush

        await flush(app)
    return total
