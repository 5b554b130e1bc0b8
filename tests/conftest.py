"""Shared fixtures: a scripted Eloqua stand-in on loopback, and a sleep that never waits."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from postgres_server import pg_url, postgres_server  # noqa: F401 (fixtures)

from importer.sandbox.server import (
    SANDBOX_COMPANY,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    SandboxConfig,
    SandboxServer,
)


@dataclass
class Scripted:
    """Answers activity POSTs from a script of (status, body, headers); then 201s.

    A bytes body is sent as it is (not as JSON). ``/landing`` answers any method with
    ``200 {"id": "777"}`` and records it: where a test's redirects point.
    """

    script: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    landed: list[str] = field(default_factory=list)
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
                body=body if isinstance(body, bytes) else json.dumps(body).encode(),
                headers=headers,
                content_type="application/json",
            )
        state.next_id += 1
        return web.json_response({**state.received[-1], "id": str(state.next_id)}, status=201)

    async def landing(request: web.Request) -> web.Response:
        state.landed.append(request.method)
        return web.json_response({"id": "777"})

    app = web.Application()
    app.router.add_post("/api/REST/2.0/data/activity", create)
    app.router.add_route("*", "/landing", landing)
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


class ThreadedSandbox:
    """The real sandbox on a loopback port, served from its own thread and event loop, so
    tests can run the CLI in-process (it calls asyncio.run) or as a subprocess against it."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self._server = SandboxServer(config)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        started = threading.Event()

        async def serve() -> None:
            self._stop = asyncio.Event()
            async with self._server:
                started.set()
                await self._stop.wait()

        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(serve(),), daemon=True
        )
        self._thread.start()
        if not started.wait(timeout=60):
            raise RuntimeError("sandbox did not start")
        self.base_url = self._server.base_url
        self.state = self._server.state
        self.config = self._server.config  # read per request: a test may change it mid-run

    def close(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        self._loop.close()


def sandbox_env(base_url: str, password: str = SANDBOX_PASSWORD) -> dict[str, str]:
    return {
        "ELOQUA_BASE_URL": base_url,
        "ELOQUA_COMPANY": SANDBOX_COMPANY,
        "ELOQUA_USERNAME": SANDBOX_USERNAME,
        "ELOQUA_PASSWORD": password,
    }


@pytest.fixture
def sandbox_factory(monkeypatch) -> Iterator[Callable[..., ThreadedSandbox]]:
    """Start a sandbox (with optional faults) and point the ELOQUA_* environment at it."""
    started: list[ThreadedSandbox] = []
    for name in ("ELOQUA_ACCESS_TOKEN", "ELOQUA_LOGIN_URL"):
        monkeypatch.delenv(name, raising=False)

    def start(**config: Any) -> ThreadedSandbox:
        sandbox = ThreadedSandbox(SandboxConfig(**config))
        started.append(sandbox)
        for name, value in sandbox_env(sandbox.base_url).items():
            monkeypatch.setenv(name, value)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.close()


@pytest.fixture
def sandbox(sandbox_factory) -> ThreadedSandbox:
    return sandbox_factory()


@pytest.fixture
def no_backoff(monkeypatch) -> FakeSleep:
    """Retries happen at once; the waits asked for are recorded."""
    sleep = FakeSleep()
    monkeypatch.setattr("importer.retry.backoff_sleep", sleep)
    return sleep


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> None:
    """Every test works in its own folder, with its own per-user state (the default ledger)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ELOQUA_IMPORT_LEDGER", raising=False)  # a developer's own ledger
