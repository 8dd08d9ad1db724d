"""Flood control: 40 messages queued for one group while residents get private notices.

Telegram allows about one message a second in a chat, 20 a minute in a group and 30 a
second overall. Time is scaled (--scale 10: every window ten times shorter, so a Telegram
minute is 6 s here) and every figure is given back in Telegram seconds. Measured: how long
each private notice waited from its commit to its send (target: none over 5 s), and the
rate the group got its messages at against 20 a minute (target: at least 90 %).

    python -m benchmarks.flood
    python -m benchmarks.flood --scale 20 --residents 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import start, stop
from bot import notify
from bot.outbox import Budgets, Window
from handlers import outbox_sender

GROUP = -100_777_001


async def run(scale: float, residents: int, cards: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench = await start(f"sqlite:///{tmp}/flood.db", Path(tmp) / "media", drain_outbox=False)
        app, rt, tg = bench.app, bench.rt, bench.tg
        tg.group(GROUP, "某社区群", admins=[bench.admin], bot_status="administrator")
        people = [tg.user(8_800_000 + n, f"居民{n}", language_code="zh-hans") for n in range(residents)]
        await outbox_sender.stop_sender(app)
        budgets = Budgets(
            private=(Window(1, 1.0 / scale),),
            group=(Window(1, 1.0 / scale), Window(20, 60.0 / scale)),
            overall=(Window(30, 1.0 / scale),),
        )
        sender = outbox_sender.Sender(app, budgets=budgets)
        app.bot_data["outbox_sender"] = sender
        sender.start()
        api = bench.tg.api
        stamps: list[float] = []  # when each of api.calls was seen (5 ms resolution)
        watching = True

        async def watch() -> None:
            while watching:
                now = time.monotonic()
                stamps.extend([now] * (len(api.calls) - len(stamps)))
                await asyncio.sleep(0.005)

        watcher = asyncio.get_running_loop().create_task(watch())
        committed: dict[int, tuple[int, float]] = {}
        t0 = time.monotonic()
        with rt.db.session() as s:
            for n in range(cards):
                notify.text_to_user(
                    s, telegram_id=GROUP, key="chat.lost", now=rt.clock.now(), unit=f"卡片{n}", title="x", open=n
                )
        await outbox_sender.flush(app)
        notices = []
        for n in range(residents * 3):  # a notice every 2 Telegram seconds while the group's backlog drains
            await asyncio.sleep(2.0 / scale)
            who = people[n % residents]
            with rt.db.session() as s:
                notify.text_to_user(s, telegram_id=who.id, key="work.wrong_input", now=rt.clock.now())
            committed[n] = (who.id, time.monotonic())
            notices.append(n)
            await outbox_sender.flush(app)
        await sender.drain(timeout=600)
        await asyncio.sleep(0.02)
        watching = False
        await watcher
        group_times = sorted(_sends(api, stamps, GROUP))
        waits = []
        for chat, at in committed.values():
            times = [t for t in _sends(api, stamps, chat) if t >= at - 1e-3]
            waits.append((min(times) - at) * scale if times else float("inf"))
        span = (group_times[-1] - t0) * scale if group_times else float("inf")
        rate = len(group_times) / span * 60 if span else 0.0
        print(f"time scale 1/{scale:g}; {cards} group messages, {len(waits)} private notices to {residents} residents")
        print(
            f"private notice wait (Telegram s): median {statistics.median(waits):.2f}  "
            f"max {max(waits):.2f}  over 5 s: {sum(w > 5 for w in waits)}"
        )
        print(
            f"group: {len(group_times)} messages in {span:.1f} Telegram s = {rate:.1f}/min "
            f"({rate / 20:.0%} of 20/min; the first 20 go at 1/s, then 20 a minute)"
        )
        await sender.stop()
        await stop(bench)


def _sends(api, stamps: list[float], chat_id: int) -> list[float]:
    return [
        at
        for c, at in zip(api.calls, stamps, strict=False)
        if c.method == "sendMessage" and int(c.params.get("chat_id", 0)) == chat_id
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=10.0)
    p.add_argument("--residents", type=int, default=10)
    p.add_argument("--cards", type=int, default=40)
    o = p.parse_args()
    asyncio.run(run(o.scale, o.residents, o.cards))


if __name__ == "__main__":
    main()
