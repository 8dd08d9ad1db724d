"""The fake Telegram the tests use: the package's Bot API simulator (griddesk/simulator/),
re-exported under its old name so tests and benchmarks keep importing ``tests.fakebot``."""

from griddesk.simulator import *  # noqa: F403
from griddesk.simulator import __all__  # noqa: F401
