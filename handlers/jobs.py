"""Periodic work on PTB's JobQueue: wake the outbox sender, retire idle report drafts.

No per-case jobs: each run looks in the database for what is due, so nothing is lost
or repeated across restarts.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bot.cases import casework, deadlines, digests
from bot.i18n import t
from bot.intake import drafts
from bot.outbox import chat_language
from handlers import desk_jobs
from handlers.common import in_thread, off_loop
from handlers.outbox_sender import flush
from handlers.rate import REMIND_EVERY_S, remind_job

log = logging.getLogger(__name__)

OUTBOX_EVERY_S = 5
DRAFTS_EVERY_S = 60
VERIFY_EVERY_S = 300
SWEEP_EVERY_S = 30
DIGEST_EVERY_S = 60


async def drain_outbox(context: ContextTypes.DEFAULT_TYPE) -> None:
    # Wakes the sender for rows that came due (retries) or that another process left.
    await flush(context.application)


async def expire_drafts(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = context.application.bot_data["rt"]
    for telegram_id in await in_thread(drafts.expire_idle, rt):
        lang = await off_loop(chat_language, rt, telegram_id)
        try:
            await context.bot.send_message(telegram_id, t(lang, "report.timed_out"))
        except TelegramError as exc:
            log.info("could not tell %s their draft expired: %s", telegram_id, exc)


async def unverified_cases(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = context.application.bot_data["rt"]
    codes = await in_thread(casework.escalate_unverified, rt, after=timedelta(hours=rt.settings.verify_hours))
    if codes:
        log.debug("put to the command room, unverified in time: %s", ", ".join(codes))
        await flush(context.application)


async def deadline_sweep(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = context.application.bot_data["rt"]
    result = await in_thread(deadlines.sweep, rt)
    if result.reminders:
        # each reminder and 督办 is logged as a business event (storage/events.py)
        log.debug("deadline sweep: %s reminders on %s cases %s", result.reminders, result.cases, result.kinds)
    await flush(context.application)


async def morning_digests(context: ContextTypes.DEFAULT_TYPE) -> None:
    result = await in_thread(digests.send_due_digests, context.application.bot_data["rt"])
    if result.messages:
        await flush(context.application)


def schedule(app: Application) -> None:
    if app.job_queue is None:  # installed without the job-queue extra
        log.warning("no JobQueue: queued messages are sent only after updates")
        return
    app.job_queue.run_repeating(drain_outbox, interval=OUTBOX_EVERY_S, first=1, name="outbox")
    app.job_queue.run_repeating(expire_drafts, interval=DRAFTS_EVERY_S, first=DRAFTS_EVERY_S, name="drafts")
    app.job_queue.run_repeating(deadline_sweep, interval=SWEEP_EVERY_S, first=2, name="deadlines")
    app.job_queue.run_repeating(morning_digests, interval=DIGEST_EVERY_S, first=10, name="digests")
    app.job_queue.run_repeating(unverified_cases, interval=VERIFY_EVERY_S, first=VERIFY_EVERY_S, name="verify")
    app.job_queue.run_repeating(remind_job, interval=REMIND_EVERY_S, first=REMIND_EVERY_S, name="rating_reminders")
    desk_jobs.schedule(app)  # issue 11: weekly and monthly reports
