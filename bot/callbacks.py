"""Callback data: short, versioned strings like ``v1:claim:42`` (Telegram allows 64 bytes).

A button is never trusted: parsing only says what the press *claims* to be; the handler
re-checks the user's rights and the case's state on every press.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1"
MAX_BYTES = 64


class BadCallback(ValueError):
    """Callback data we did not make, or made by an older version of the bot."""


@dataclass(frozen=True)
class Callback:
    action: str
    args: tuple[str, ...] = ()

    def pack(self) -> str:
        data = ":".join((VERSION, self.action, *self.args))
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
        return data

    def arg(self, index: int) -> str:
        try:
            return self.args[index]
        except IndexError:
            raise BadCallback(self) from None

    def int_arg(self, index: int) -> int:
        value = self.arg(index)
        if not value.isdigit() or len(value) > 12:
            raise BadCallback(self)
        return int(value)


def cb(action: str, *args: object) -> str:
    return Callback(action, tuple(str(a) for a in args)).pack()


def parse(data: str | None) -> Callback:
    if not data or len(data.encode()) > MAX_BYTES:
        raise BadCallback(data)
    parts = data.split(":")
    if len(parts) < 2 or parts[0] != VERSION or not parts[1]:
        raise BadCallback(data)
    return Callback(parts[1], tuple(parts[2:]))
