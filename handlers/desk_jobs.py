"""The desk's periodic reports on the JobQueue: weekly and monthly figures, 红黑榜 and the
longest-overdue cases through the outbox; the monthly one with the spreadsheet attached (an
outbox row of its own, kind desk_spreadsheet, delivered by `deliver_spreadsheet`)."""

from __future__ import annotations

import io
import logging

from telegram import InputFile
from telegram.ext import Application, ContextTypes

from bot import outbox
from bot.desk import export, figures, reports
from bot.runtime import Runtime
from handlers.common import in_thread
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)
REPORTS_EVERY_S = 300
FIGURES_EVERY_S = 60  # the desk's per-case figures caught up with the changes since


def _spreadsheet(rt: Runtime, code: str, first: str, last: str, lang: str) -> bytes:
    buf = io.BytesIO()
    export.export_to(rt, code, first, last, lang, buf)
    return buf.getvalue()


async def periodic_reports(context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = context.application.bot_data["rt"]
    result = await in_thread(reports.send_due_reports, rt)
    if not result.messages:
        return
    log.info("desk reports: %s reports, %s messages", result.reports, result.messages)
    await flush(context.application)


async def deliver_spreadsheet(app: Application, rt: Runtime, job: outbox.Job, lang: str) -> int:
    """The outbox sender's delivery of a monthly report's spreadsheet (kind desk_spreadsheet):
    made now, in the reader's language; a failed send is retried by the outbox."""
    code, first, last = job.payload["code"], job.payload["first"], job.payload["last"]
    data = await in_thread(_spreadsheet, rt, code, first, last, lang)
    name = f"griddesk-{code}-{first.replace('-', '')}-{last.replace('-', '')}.xlsx"
    message = await app.bot.send_document(job.chat_id, InputFile(data, filename=name))
    return message.message_id


async def figures_catch_up(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Between questions, so that /stats rarely has cases to derive before it answers."""
    rt = context.application.bot_data["rt"]
    done = await in_thread(figures.catch_up, rt)
    if done:
        log.debug("desk figures: %s case(s) derived again", done)


def schedule(app: Application) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(periodic_reports, interval=REPORTS_EVERY_S, first=30, name="desk_reports")
        app.job_queue.run_repeating(figures_catch_up, interval=FIGURES_EVERY_S, first=20, name="desk_figures")
