"""The one signal handler class: routes SIGINT/SIGTERM to its owner's callback, and lets go."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from importer.signals import SignalHandlers, signal_name

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no loop signal handlers")


async def test_a_signal_reaches_the_owner_callback_and_the_handlers_go_with_the_block() -> None:
    seen: list[signal.Signals] = []
    arrived = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        seen.append(sig)
        arrived.set()

    loop = asyncio.get_running_loop()
    with SignalHandlers(enabled=True) as handlers:
        handlers.on_stop_signals(on_signal)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(arrived.wait(), timeout=30)
    assert seen == [signal.SIGTERM]
    assert loop.remove_signal_handler(signal.SIGTERM) is False  # removed on the way out
    assert loop.remove_signal_handler(signal.SIGINT) is False


async def test_disabled_handlers_install_nothing() -> None:
    with SignalHandlers(enabled=False) as handlers:
        handlers.on_stop_signals(lambda sig: None)
        assert not handlers.active
        assert asyncio.get_running_loop().remove_signal_handler(signal.SIGINT) is False


def test_messages_name_sigint_as_ctrl_c() -> None:
    assert (signal_name(signal.SIGINT), signal_name(signal.SIGTERM)) == ("Ctrl-C", "SIGTERM")
