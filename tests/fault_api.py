"""A Bot API over real HTTP that serves updates (getUpdates with Telegram's offset rules),
keeps the messages the bot sends, and can misbehave like a faulty proxy in front of
Telegram: a share of requests answered 502, dropped before they arrive, or carried out with
the answer lost (the bot sees a dropped connection and may send again).

The fault tests drive a real `griddesk run` subprocess against it (tests/test_faults.py).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.http_fake_api import BOT_USER

TOKEN = "123456:fake"
JSON = dict[str, Any]
FAULTS = ("502", "drop", "lost")
DECODED = ("reply_markup", "entities", "caption_entities", "media", "allowed_updates", "link_preview_options")


class FaultBotAPI:
    def __init__(self, *, fault_rate: float = 0.0, seed: int = 1, faulty: Callable[[str], bool] | None = None) -> None:
        self.fault_rate = fault_rate
        self.faulty = faulty or (lambda method: True)
        self.rng = random.Random(seed)
        self.lock = threading.Condition()
        self.updates: list[JSON] = []
        self.next_update_id = 1
        self.confirmed = 0  # every update up to here was confirmed (offset)
        self.messages: dict[tuple[int, int], JSON] = {}  # (chat, message_id) -> latest version
        self.sent: list[tuple[str, int, int]] = []  # (method, chat, message_id), in order
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self.requests = 0
        self.polling: list[socket.socket] = []  # connections of getUpdates requests being answered now
        self.conflicts = 0  # a getUpdates while another was under way: two pollers
        self._ids: dict[int, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]  # a killed bot's broken pipes
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- life ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def __enter__(self) -> FaultBotAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what users do ------------------------------------------------------------------

    def push(self, payload: JSON) -> int:
        with self.lock:
            update_id = self.next_update_id
            self.next_update_id += 1
            self.updates.append({"update_id": update_id, **payload})
            self.lock.notify_all()
            return update_id

    def pushed_ids(self) -> list[int]:
        with self.lock:
            return [u["update_id"] for u in self.updates]

    def add_file(self, file_id: str, data: bytes) -> None:
        self.files[file_id] = data

    def to_chat(self, chat_id: int) -> list[JSON]:
        """The chat's messages from the bot as they are now, oldest first."""
        with self.lock:
            return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]

    # -- the server ---------------------------------------------------------------------

    def _message_id(self, chat_id: int) -> int:
        self._ids[chat_id] = self._ids.get(chat_id, 0) + 1
        return self._ids[chat_id]

    def _message(self, method: str, params: JSON) -> JSON:
        chat_id = int(params["chat_id"])
        with self.lock:
            message_id = self._message_id(chat_id)
            message: JSON = {
                "message_id": message_id,
                "date": int(time.time()),
                "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": "group"},
            }
            if method == "sendPhoto":
                file_id = f"up-{chat_id}-{message_id}"
                message["photo"] = [{"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600}]
                if params.get("caption"):
                    message["caption"] = params["caption"]
            else:
                message["text"] = params.get("text", "")
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            self.messages[(chat_id, message_id)] = message
            self.sent.append((method, chat_id, message_id))
            return _as_returned(message)

    def _edit(self, method: str, params: JSON) -> JSON | bool:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        with self.lock:
            message = dict(self.messages.get((chat_id, message_id)) or {})
            if not message:
                raise _ApiError(400, "Bad Request: message to edit not found")
            before = dict(message)
            if method == "editMessageText":
                message["text"] = params.get("text", "")
            elif method == "editMessageCaption":
                message["caption"] = params.get("caption", "")
            if "reply_markup" in params or method != "editMessageReplyMarkup":
                message["reply_markup"] = params.get("reply_markup") or {}
            elif method == "editMessageReplyMarkup":
                message["reply_markup"] = {}
            if message == {**before, "reply_markup": before.get("reply_markup") or {}}:
                # as Telegram: an edit that changes nothing is refused (a repeated acknowledgement)
                raise _ApiError(400, "Bad Request: message is not modified")
            self.messages[(chat_id, message_id)] = message
            self.sent.append((method, chat_id, message_id))
            return _as_returned(message)

    def _updates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 1.0)
        deadline = time.monotonic() + timeout
        with self.lock:
            if offset:
                self.confirmed = max(self.confirmed, offset - 1)
            while True:
                ready = [u for u in self.updates if u["update_id"] > self.confirmed]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return ready[:100]
                self.lock.wait(left)

    def _answer(self, method: str, params: JSON, connection: socket.socket | None = None) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "getUpdates":
            with self.lock:
                # Two pollers: a getUpdates while another's client still waits for its answer
                # (one it gave up on, as PTB does when it stops polling, is no conflict).
                if any(_connected(c) for c in self.polling):
                    self.conflicts += 1
                    raise _ApiError(409, "Conflict: terminated by other getUpdates request")
                if connection is not None:
                    self.polling.append(connection)
            try:
                return self._updates(params)
            finally:
                with self.lock:
                    if connection in self.polling:
                        self.polling.remove(connection)
        if method in ("sendMessage", "sendPhoto"):
            return self._message(method, params)
        if method == "sendMediaGroup":
            media = params.get("media") or []
            return [self._message("sendPhoto", {"chat_id": params["chat_id"]}) for _ in media]
        if method.startswith("editMessage"):
            return self._edit(method, params)
        if method == "getFile":
            file_id = str(params["file_id"])
            if file_id not in self.files:
                raise _ApiError(400, "Bad Request: wrong file_id")
            size = len(self.files[file_id])
            return {"file_id": file_id, "file_unique_id": file_id, "file_size": size, "file_path": f"photos/{file_id}"}
        if method == "getChatMember":
            return {"status": "member", "user": BOT_USER}
        return True

    def _fault(self, method: str) -> str | None:
        if self.fault_rate <= 0 or not self.faulty(method):
            return None
        with self.lock:
            if self.rng.random() >= self.fault_rate:
                return None
            kind = self.rng.choice(FAULTS)
            self.faults[kind] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if "/file/bot" in self.path:
                    file_id = self.path.rsplit("/", 1)[-1]
                    fault = outer._fault("download")
                    if fault in ("drop", "lost"):
                        self.close_connection = True
                        return
                    if fault == "502":
                        self._send(502, b"Bad Gateway", "text/plain")
                        return
                    data = outer.files.get(file_id)
                    self._send(200 if data else 404, data or b"", "application/octet-stream")
                    return
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                _, _, rest = self.path.partition("/bot")
                token, _, method = rest.partition("/")
                outer.requests += 1
                fault = outer._fault(method)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "502":
                    self._json(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
                    return
                if token != TOKEN:
                    self._json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                params = _params(self.headers.get("Content-Type", ""), body)
                try:
                    result = outer._answer(method, params, self.connection)
                    payload: JSON = {"ok": True, "result": result}
                    status = 200
                except _ApiError as exc:
                    status, payload = exc.status, {"ok": False, "error_code": exc.status, "description": exc.text}
                if fault == "lost":  # done, but the answer never arrives
                    self.close_connection = True
                    return
                self._json(status, payload)

            def _json(self, status: int, payload: JSON) -> None:
                self._send(status, json.dumps(payload).encode(), "application/json")

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _connected(connection: socket.socket) -> bool:
    """Is the client still there? (A closed peer reads as end of file without blocking.)"""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True  # nothing to read, still open
    except OSError:
        return False


class _ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def _params(ctype: str, body: bytes) -> JSON:
    if ctype.startswith("multipart/"):
        message = BytesParser(policy=email_policy).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        raw: JSON = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name and not part.get_filename():
                raw[str(name)] = part.get_content() if part.get_content_maintype() == "text" else part.get_payload()
            elif name:
                raw[str(name)] = "<file>"
    elif body.startswith(b"{"):
        raw = json.loads(body)
    else:
        raw = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    out: JSON = {}
    for key, value in raw.items():
        if key in DECODED and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def _as_returned(message: JSON) -> JSON:
    """What Telegram answers: a message's reply_markup only when it is an inline keyboard."""
    markup = message.get("reply_markup") or {}
    if markup.get("inline_keyboard"):
        return message
    return {k: v for k, v in message.items() if k != "reply_markup"}
