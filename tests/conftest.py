"""Shared fixtures: a scripted Eloqua stand-in on loopback, and a sleep that never waits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Scripted:
    """Answers activity POSTs from a script of (status, body, headers); then 201s."""

    script: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    next_id: int = 5000

    def then(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.script.append((status, body, headers or {}))
        return self


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()

    async def create(request: web.Request) -> web.StreamResponse:
        state.received.append(await request.json())
        if state.script:
            status, body, headers = state.script.pop(0)
            if status == 0:  # drop the connection without answering
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=201)
            return web.Response(
                status=status,
                text=json.dumps(body),
                headers=headers,
                content_type="application/json",
            )
        state.next_id += 1
        return web.json_response({**state.received[-1], "id": str(state.next_id)}, status=201)

    app = web.Application()
    app.router.add_post("/api/REST/2.0/data/activity", create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


class FakeSleep:
    """Records the waits the retry policy asks for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()
