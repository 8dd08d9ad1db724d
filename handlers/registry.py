"""All handler registration, in one place and in order.

PTB runs the first matching handler of each group, lowest group first, so the order below
is the order of precedence. Groups -3 and -2 take private messages someone owes (a
rating's comment, a case action's words and photos) and stop the update when they do;
group -1 watches the bot's own membership of chats; group 0 holds the features, then the
fallbacks that answer whatever nothing else took.
"""

from __future__ import annotations

from telegram.ext import Application, CallbackQueryHandler, ChatMemberHandler, CommandHandler, MessageHandler, filters

from bot.callbacks import (
    Assign,
    Claim,
    Confirm,
    Dispatch,
    DispatchMenu,
    Duplicate,
    Extension,
    FollowUp,
    InputCancel,
    InputDone,
    InputHours,
    InputTeam,
    Lang,
    NotFixed,
    Rate,
    Reject,
    Release,
    Report,
    ReportCategory,
    ReportEdit,
    ReportGrid,
    ReportIn,
    ReportJoin,
    ReportLocation,
    ReportPlatform,
    SkipComment,
    Tasks,
    Work,
)
from handlers import (
    bind,
    buttons,
    casework,
    claim,
    dispatch,
    errors,
    fallback,
    help,
    invite,
    lang,
    membership,
    my,
    rate,
    report,
    start,
    tasks,
    whoami,
)


def register(app: Application) -> None:
    app.add_handler(ChatMemberHandler(membership.bot_membership, ChatMemberHandler.MY_CHAT_MEMBER), group=-1)
    # Words and photos someone owes a case action (a resolve's result, a reason) come
    # before the report conversation; the handler stops the update when it takes it.
    private_input = filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED & ~filters.COMMAND
    app.add_handler(MessageHandler(private_input, casework.on_private_input), group=-2)
    # A resident's comment after rating a case (commands too: they end the wait for one).
    app.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED, rate.on_private_message), group=-3
    )

    app.add_handler(CommandHandler("start", start.start))
    app.add_handler(CommandHandler("help", help.help_command))
    app.add_handler(CommandHandler("lang", lang.lang_command))
    app.add_handler(CommandHandler("whoami", whoami.whoami))
    app.add_handler(CommandHandler("invite", invite.invite))
    app.add_handler(CommandHandler("bind", bind.bind))
    app.add_handler(CommandHandler("cancel", report.cancel_command))
    app.add_handler(CommandHandler("report", report.report_command))
    app.add_handler(CommandHandler("my", my.my_command))
    app.add_handler(CommandHandler("tasks", tasks.tasks_command))
    app.add_handler(CommandHandler("case", tasks.case_command))
    app.add_handler(CommandHandler("assign", claim.assign_command))
    app.add_handler(CommandHandler("duplicate", dispatch.duplicate_command))
    app.add_handler(CommandHandler("reject", dispatch.reject_command))
    app.add_handler(CommandHandler("ratelink", rate.ratelink_command))
    app.add_handler(CommandHandler("stats", rate.stats_command))

    buttons.route(Lang, lang.lang_pressed)
    buttons.route(Tasks, tasks.on_page)
    buttons.route(Claim, claim.on_claim)
    buttons.route(Release, claim.on_release)
    buttons.route(Assign, claim.on_assign)
    buttons.route(Work, casework.on_work_button)
    buttons.route(NotFixed, casework.on_work_button)
    buttons.route(InputDone, casework.on_input_button)
    buttons.route(InputCancel, casework.on_input_button)
    buttons.route(InputTeam, casework.on_input_button)
    buttons.route(InputHours, casework.on_input_button)
    buttons.route(Confirm, casework.on_confirm)
    buttons.route(ReportIn, casework.on_report_in)
    buttons.route(Extension, casework.on_extension_decision)
    buttons.route(Rate, rate.on_rate)
    buttons.route(SkipComment, rate.on_skip)
    buttons.route(FollowUp, rate.on_followup)
    buttons.route(Report, report.on_report_button)
    buttons.route(ReportLocation, report.on_report_button)
    buttons.route(ReportGrid, report.on_report_button)
    buttons.route(ReportPlatform, report.on_report_button)
    buttons.route(ReportCategory, report.on_report_button)
    buttons.route(ReportEdit, report.on_report_button)
    buttons.route(ReportJoin, report.on_report_button)
    buttons.route(Dispatch, dispatch.on_button)
    buttons.route(Duplicate, dispatch.on_button)
    buttons.route(Reject, dispatch.on_button)
    buttons.route(DispatchMenu, dispatch.on_button)
    app.add_handler(CallbackQueryHandler(buttons.on_button))

    # The report conversation (private chats). Edited messages are left out on purpose:
    # live-location ticks arrive as edits and must not move a report's location.
    private = filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED
    app.add_handler(MessageHandler(private & (filters.PHOTO | filters.Document.ALL), report.on_photo))
    app.add_handler(MessageHandler(private & (filters.LOCATION | filters.VENUE), report.on_location))
    app.add_handler(MessageHandler(private & filters.VOICE, report.on_voice))
    app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, report.on_text))
    app.add_handler(
        MessageHandler(
            private
            & (
                filters.Sticker.ALL
                | filters.VIDEO
                | filters.CONTACT
                | filters.ANIMATION
                | filters.AUDIO
                | filters.VIDEO_NOTE
            ),
            report.on_other,
        )
    )

    app.add_handler(
        MessageHandler(
            filters.ChatType.GROUPS & filters.REPLY & filters.TEXT & ~filters.COMMAND, casework.on_department_reply
        )
    )

    app.add_handler(MessageHandler(filters.COMMAND, fallback.unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, fallback.private_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, fallback.private_other))

    app.add_error_handler(errors.on_error)
