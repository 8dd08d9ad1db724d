"""All handler registration, in one place and in order.

PTB runs the first matching handler of each group, lowest group first, so the order below
is the order of precedence. Group -2 takes every private message (handlers/private.py: a
rating's comment, a case action's words and photos, the report conversation) and stops the
update unless it is a command; group -1 watches the bot's own membership of chats; group 0
holds the commands, buttons and group messages, then the fallback for unknown commands.
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
    InputMore,
    InputTeam,
    InvitePage,
    InvitePick,
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
from bot.desk.buttons import DeskFix, DeskFixTo, DeskMap, DeskOpen, DeskQueue, DeskStats
from handlers import (
    bind,
    buttons,
    casework,
    claim,
    desk,
    desk_queue,
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
    revoke,
    start,
    tasks,
    whoami,
)
from handlers import (
    private as private_messages,
)


def register(app: Application) -> None:
    app.add_handler(ChatMemberHandler(membership.bot_membership, ChatMemberHandler.MY_CHAT_MEMBER), group=-1)
    # Every private message goes first to what the person owes (a rating's comment, a case
    # action's words and photos, the report being written): handlers/private.py. Edited
    # messages are left out on purpose: live-location ticks must not move a report.
    private = filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED
    app.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, private_messages.on_private_message), group=-2)

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
    app.add_handler(CommandHandler("stats", desk.stats_command))  # the desk's figures (issue 11)
    app.add_handler(CommandHandler("export", desk.export_command))
    app.add_handler(CommandHandler("map", desk.map_command))
    app.add_handler(CommandHandler("queue", desk_queue.queue_command))
    app.add_handler(CommandHandler("find", desk_queue.find_command))
    app.add_handler(CommandHandler("revoke", revoke.revoke_command))
    app.add_handler(ChatMemberHandler(revoke.member_changed, ChatMemberHandler.CHAT_MEMBER), group=-1)

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
    buttons.route(InputMore, casework.on_input_button)
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
    buttons.route(DeskStats, desk.on_stats_button)
    buttons.route(DeskQueue, desk_queue.on_queue_button)
    buttons.route(DeskOpen, desk_queue.on_open)
    buttons.route(DeskFix, desk_queue.on_fix)
    buttons.route(DeskFixTo, desk_queue.on_fix_to)
    buttons.route(InvitePick, invite.on_pick)
    buttons.route(InvitePage, invite.on_pick)
    buttons.route(DeskMap, desk.on_map_button)  # /map coloured by category or state
    app.add_handler(CallbackQueryHandler(buttons.on_button))

    app.add_handler(
        MessageHandler(
            filters.ChatType.GROUPS & filters.REPLY & filters.TEXT & ~filters.COMMAND, casework.on_department_reply
        )
    )

    app.add_handler(MessageHandler(filters.COMMAND, fallback.unknown_command))

    app.add_error_handler(errors.on_error)
