"""A tiny Bot API over real HTTP on 127.0.0.1, to prove `griddesk run` talks to whatever
TELEGRAM_API_BASE_URL names (a self-hosted Bot API server works the same way)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "GridDesk",
    "username": "GridDeskTestBot",
    "can_join_groups": True,
    "can_read_all_group_messages": True,
    "supports_inline_queries": False,
}


class FakeBotHTTPServer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (token, method)
        self.params: list[tuple[str, dict]] = []  # (method, parameters), in order
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def methods(self) -> list[str]:
        return [m for _, m in self.calls]

    def __enter__(self) -> FakeBotHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                _, _, rest = self.path.partition("/bot")
                token, _, method = rest.partition("/")
                outer.calls.append((token, method))
                params = json.loads(body) if body.startswith("{") else {k: v[0] for k, v in parse_qs(body).items()}
                outer.params.append((method, params))
                if token != "123456:fake":
                    self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                if method == "getMe":
                    result: object = BOT_USER
                elif method == "getUpdates":
                    time.sleep(min(float(params.get("timeout", 0) or 0), 0.2))
                    result = []
                elif method == "sendMessage":
                    chat_id = int(params["chat_id"])
                    result = {
                        "message_id": len(outer.calls),
                        "date": int(time.time()),
                        "text": params.get("text", ""),
                        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": "group"},
                    }
                else:
                    result = True
                self._send(200, {"ok": True, "result": result})

            do_GET = do_POST

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
