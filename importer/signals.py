"""Ctrl-C and SIGTERM: one handler class for ``run`` (the pipeline) and ``watch``.

:class:`SignalHandlers` installs handlers on the running event loop for the length of a
``with`` block and removes them on the way out. It only routes signals to callbacks: what a
signal means is its owner's (the pipeline stops sending and reports every row; ``watch`` stops
after the current step), and owners tell the user through their own callbacks, so library code
never prints. On Windows the event loop has no signal handlers: there it does nothing and
Ctrl-C raises KeyboardInterrupt as usual.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

#: The signals that stop a run or a watch cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(sig: signal.Signals) -> str:
    """How messages name the signal: ``Ctrl-C`` for SIGINT."""
    return "Ctrl-C" if sig == signal.SIGINT else sig.name


class SignalHandlers:
    """SIGINT/SIGTERM handlers on the running loop, installed by ``on`` while in ``with``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.platform != "win32"
        self.loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> SignalHandlers:
        if self.enabled:
            self.loop = asyncio.get_running_loop()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.loop is not None:
            for sig in STOP_SIGNALS:
                self.loop.remove_signal_handler(sig)

    @property
    def active(self) -> bool:
        """Inside ``with``, and signals can be handled here."""
        return self.loop is not None

    def on(self, sig: signal.Signals, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on ``sig`` from now on."""
        if self.loop is not None:
            self.loop.add_signal_handler(sig, callback, *args)

    def on_stop_signals(self, callback: Callable[[signal.Signals], Any]) -> None:
        """Call ``callback(sig)`` on SIGINT and SIGTERM."""
        for sig in STOP_SIGNALS:
            self.on(sig, callback, sig)

    def ignore(self, sig: signal.Signals) -> None:
        """Let ``sig`` change nothing from now on."""
        self.on(sig, _ignore)

    def release(self, sig: signal.Signals) -> None:
        """Back to Python's default: the next Ctrl-C raises KeyboardInterrupt (quits)."""
        if self.loop is not None:
            self.loop.remove_signal_handler(sig)


def _ignore() -> None:
    pass
