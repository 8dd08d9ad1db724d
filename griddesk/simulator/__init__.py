"""A simulated Telegram (used by `griddesk demo` and the tests): a Bot API server at PTB's request layer plus a "player" API.

Two layers:

* :class:`FakeBotAPI` (``api.py``) is a :class:`telegram.request.BaseRequest`. Give it to the
  ``ApplicationBuilder`` (``.request(api).get_updates_request(api)``) and every Bot API call
  the bot makes lands in :meth:`FakeBotAPI.do_request` instead of the network. It answers like
  Telegram does (same JSON shapes, same HTTP status codes and, where we know them, the same
  error descriptions), records each call, and keeps the state a test wants to look at: every
  message in every chat as it currently is (after edits/deletes), uploaded files, chat
  membership, who blocked the bot. It implements the methods GridDesk calls; others are 404.

* :class:`FakeTelegram` (``telegram.py``) drives the application as users would:
  ``await alice.send("/start")`` builds a Telegram-shaped update, feeds it to
  ``Application.process_update`` and waits until everything the update started has finished
  (see :meth:`FakeTelegram.deliver`).

``formatting.py`` turns HTML parse mode into text + entities as Telegram does; ``model.py``
holds the records and limits; ``images.py`` the (lazy, cheap) photo sizes.

Why the request layer and not ``unittest.mock`` on ``Bot``: PTB's own serialisation (reply
markups, InputFile uploads, Defaults such as parse_mode, arbitrary callback data) and its error
mapping (400 -> BadRequest, 403 -> Forbidden, 429 -> RetryAfter ...) stay in the loop, so the
tests exercise the same code paths as production.

Facts taken from the installed PTB 22.8 (``telegram/_bot.py``, ``telegram/request/*``):

* API calls are ``POST {base_url}{token}/{method}``; the method is the last path segment.
* ``RequestData.parameters`` already holds Python values (TelegramObjects were ``to_dict``-ed,
  datetimes made timestamps). An ``InputFile`` that is not attached via ``attach://`` is *not*
  among the parameters; it only shows up in ``multipart_data`` under the parameter's name.
* ``Bot.get_file`` prefixes ``file_path`` with ``{base_file_url}{token}/``; ``File.download_*``
  then calls ``request.retrieve(url)`` which reaches ``do_request`` with ``method="GET"``.
"""

from griddesk.simulator.api import FakeBotAPI, media_json
from griddesk.simulator.formatting import (
    EntityParseError,
    Formatted,
    detect_entities,
    parse_formatted,
    parse_html,
    utf16_len,
)
from griddesk.simulator.model import (
    BOT_FIRST_NAME,
    BOT_ID,
    BOT_USERNAME,
    JSON,
    MAX_CALLBACK_DATA_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_MESSAGE_LENGTH,
    NOT_MODIFIED,
    ApiError,
    Call,
    ChatState,
    StoredFile,
    member_json,
)
from griddesk.simulator.telegram import (
    BotMessage,
    FakeChat,
    FakeTelegram,
    FakeUser,
    MessageRef,
    SettleTimeout,
    Turn,
    buttons,
)

__all__ = [
    "BOT_FIRST_NAME",
    "BOT_ID",
    "BOT_USERNAME",
    "JSON",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "NOT_MODIFIED",
    "ApiError",
    "BotMessage",
    "Call",
    "ChatState",
    "EntityParseError",
    "FakeBotAPI",
    "FakeChat",
    "FakeTelegram",
    "FakeUser",
    "Formatted",
    "MessageRef",
    "SettleTimeout",
    "StoredFile",
    "Turn",
    "buttons",
    "detect_entities",
    "media_json",
    "member_json",
    "parse_formatted",
    "parse_html",
    "utf16_len",
]
