"""API keys of HTTP clients: made by `griddesk apikey create NAME`, kept hashed, limited per key."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from bot.errors import DomainError
from bot.runtime import Runtime
from storage import external
from storage.models import pk

KEY_PREFIX = "gd_"


class KeyNameTaken(DomainError):
    key = "apikey.name_taken"


@dataclass(frozen=True)
class Client:
    id: int
    name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(rt: Runtime, name: str) -> str:
    """A new key for client `name`; the key is returned once and only its hash is kept."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with rt.db.session() as s:
        if external.api_key_named(s, name) is not None:
            raise KeyNameTaken(name=name)
        external.add_api_key(s, name=name, key_hash=hash_key(key), now=rt.clock.now())
    return key


def client(rt: Runtime, key: str | None) -> Client | None:
    """Who holds this key (None for a missing, unknown or revoked key)."""
    if not key or len(key) > 200:
        return None
    cache: dict[str, Client] = rt.cache.setdefault("api_clients", {})
    digest = hash_key(key)
    if digest in cache:
        return cache[digest]
    with rt.db.read() as s:
        row = external.api_key_by_hash(s, digest)
    if row is None:
        return None
    found = Client(pk(row), row.name)
    cache[digest] = found
    return found


@dataclass
class RateLimiter:
    """At most `limit` requests per `window_s` seconds per key (a sliding window, in memory:
    one process serves the API)."""

    limit: int = 60
    window_s: float = 60.0
    seen: dict[int, deque[float]] = field(default_factory=dict)

    def check(self, client_id: int, now: float | None = None) -> float | None:
        """None if allowed (and counted), else how many seconds until the next is allowed."""
        now = time.monotonic() if now is None else now
        times = self.seen.setdefault(client_id, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return times[0] + self.window_s - now
        times.append(now)
        return None
