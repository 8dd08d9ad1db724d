"""How a worker process of handlers/workers.py starts. A module of its own, importing nothing
of the bot: a worker loads only what its jobs need."""

from __future__ import annotations

import os
import signal

# Workers decode photos and draw charts: work a person waits a moment for anyway. The bot's
# own process answers everyone's taps and texts; on a machine with few cores, it goes first.
NICENESS = 10


def start() -> None:
    # Ctrl-C reaches the whole process group: let the bot shut the pool down instead of
    # every worker dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:  # a platform or sandbox that refuses: the same work at the same priority
        pass
