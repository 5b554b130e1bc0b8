"""Helpers for the web page's tests: the page's server in a thread of its own (so Playwright's
synchronous API and the server's event loop do not share a thread)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from importer.ui.server import UiOptions, UiServer


class ThreadedUi:
    """``eloqua-import ui --sandbox`` on a loopback port, served from its own thread."""

    def __init__(self, options: UiOptions) -> None:
        self.server = UiServer(options)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        started = threading.Event()
        self.error: BaseException | None = None

        async def serve() -> None:
            self._stop = asyncio.Event()
            try:
                async with self.server:
                    started.set()
                    await self._stop.wait()
            except BaseException as exc:
                self.error = exc
                started.set()
                raise

        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(serve(),), daemon=True
        )
        self._thread.start()
        if not started.wait(timeout=60) or self.error is not None:
            raise RuntimeError(f"the page's server did not start: {self.error!r}")
        self.url = self.server.url
        self.base = self.url.split("/?")[0]

    @property
    def activities(self) -> list[dict[str, Any]]:
        """What the sandbox holds (read from its state, as the sandbox tests do)."""
        return list(self.server.sandbox.state.activities)

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. to read a job's state)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def close(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        self._loop.close()
