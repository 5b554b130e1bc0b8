"""What an answer from Eloqua (or from whatever stands in front of it) means for a row:
redirects, answers without an id, gateway errors, answers that trickle in. Real servers on
127.0.0.1; the CLI end to end where the user sees the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from results_csv import read_results

from importer.cli import main
from importer.config import Credentials
from importer.eloqua import EloquaClient, Timeouts, open_session
from importer.fields import Lookup
from importer.ledger import Ledger
from importer.lookup import LookupFailed, Resolver
from importer.retry import RetryPolicy
from importer.sender import Job, Outcome, Sender, SendOptions, send_one

PAYLOAD = {
    "name": "Expo",
    "assetName": "Expo",
    "assetType": "Tradeshow",
    "activityType": "Visited Booth",
    "activityDate": "1773493500",
    "contactId": 2001,
}
CREDENTIALS = Credentials("Acme", "api.user", "s3cret")
MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")
SCANS = """\
First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign
Zoe,2001,Spring Expo,visited,03/07/2026 09:05,B12,37
Jose,2002,Spring Expo,demo,03/09/2026 09:05,B14,
Ann,2003,Spring Expo,visited,03/09/2026 10:00,B12,
"""
ACTIVITY = "/api/REST/2.0/data/activity"
ASSET_TYPES = "/api/REST/2.0/assets/external/types"


async def send(base_url: str, sleep, timeouts: Timeouts | None = None) -> Outcome:
    async with open_session(4, timeouts) as session:
        client = EloquaClient(session, base_url, CREDENTIALS)
        return await send_one(client, PAYLOAD, RetryPolicy(sleep=sleep))


async def send_two_on_one_connection(base_url: str, sleep) -> list[Outcome]:
    async with open_session(1, Timeouts(read=1.0)) as session:
        client = EloquaClient(session, base_url, CREDENTIALS)
        policy = RetryPolicy(max_attempts=1, sleep=sleep)
        return list(await asyncio.gather(*(send_one(client, PAYLOAD, policy) for _ in "ab")))


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
def threaded_app() -> Iterator[Callable[[web.Application], str]]:
    """Serve an app from a thread of its own (the CLI runs its own event loop); its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield lambda app: asyncio.run_coroutine_threadsafe(start(app), loop).result(timeout=60)
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=60)
    loop.close()


@pytest.fixture
def eloqua_env(monkeypatch) -> Callable[[str], None]:
    for name in ("ELOQUA_ACCESS_TOKEN", "ELOQUA_LOGIN_URL"):
        monkeypatch.delenv(name, raising=False)

    def point_at(base_url: str) -> None:
        monkeypatch.setenv("ELOQUA_BASE_URL", base_url)
        monkeypatch.setenv("ELOQUA_COMPANY", "Acme")
        monkeypatch.setenv("ELOQUA_USERNAME", "api.user")
        monkeypatch.setenv("ELOQUA_PASSWORD", "s3cret")

    return point_at


def run_cli(tmp_path: Path, *args: str) -> int:
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "scans.csv").write_text(SCANS, encoding="utf-8")
    return main(
        ["run", str(tmp_path / "scans.csv"), "--mapping", str(tmp_path / "map.yaml"),
         "--results", str(tmp_path / "results.csv"), "--quiet", *args]
    )  # fmt: skip


# --- redirects are never followed ------------------------------------------------------------


async def test_302_on_a_create_is_not_followed_and_the_row_is_uncertain(scripted, fake_sleep):
    scripted.then(302, b"", {"Location": f"{scripted.base_url}/landing"})
    outcome = await send(scripted.base_url, fake_sleep)
    # Followed, the GET to /landing answered 200 {"id": "777"}: a row "created" that never was.
    assert scripted.landed == []
    assert outcome.status == "uncertain" and outcome.http_status == 302
    assert outcome.activity_id == ""
    assert f"'{scripted.base_url}/landing'" in outcome.error
    assert len(scripted.received) == 1 and fake_sleep.waits == []


@pytest.mark.parametrize("status", [307, 308])
async def test_307_on_a_create_never_sends_the_payload_elsewhere_and_is_failed(
    scripted, fake_sleep, status
):
    scripted.then(status, b"", {"Location": f"{scripted.base_url}/landing"})
    outcome = await send(scripted.base_url, fake_sleep)
    assert scripted.landed == []
    assert outcome.status == "failed" and outcome.http_status == status
    assert "not created" in outcome.error and "/landing" in outcome.error
    assert len(scripted.received) == 1


async def test_a_redirected_create_stops_the_run_at_once_and_the_ledger_keeps_it_uncertain(
    scripted, fake_sleep, tmp_path
):
    scripted.then(303, b"", {"Location": f"{scripted.base_url}/landing"})
    outcomes: dict[int, Outcome] = {}
    ledger_path = tmp_path / "ledger.sqlite3"
    async with open_session(1) as session, Ledger(ledger_path, "site/acme") as ledger:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=outcomes.__setitem__,
            options=SendOptions(concurrency=1, policy=RetryPolicy(sleep=fake_sleep)),
            ledger=ledger,
        )
        jobs = (Job(n, {**PAYLOAD, "contactId": n}, f"fp-{n}".encode()) for n in range(20))
        stats = await sender.run(jobs)
    assert len(scripted.received) == 1 and scripted.landed == []
    assert "redirect" in stats.stopped_reason and "/landing" in stats.stopped_reason
    assert outcomes[0].status == "uncertain"
    assert {outcomes[n].status for n in range(1, 20)} == {"failed"}
    async with Ledger(ledger_path, "site/acme") as ledger:
        assert (await ledger.claim(b"fp-0", "again")).decision == "uncertain"
        assert (await ledger.claim(b"fp-1", "again")).decision == "send"


async def test_a_redirected_contact_search_is_not_followed(fake_sleep):
    landed: list[str] = []

    async def contacts(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        landed.append(request.method)
        return web.json_response({"elements": [{"id": "777"}], "total": 1})

    app = web.Application()
    app.router.add_get("/api/REST/1.0/data/contacts", contacts)
    app.router.add_get("/landing", landing)
    async with serving(app) as base, open_session(1) as session:
        resolver = Resolver(EloquaClient(session, base, CREDENTIALS), RetryPolicy(sleep=fake_sleep))
        with pytest.raises(LookupFailed) as failed:
            await resolver.id_of(Lookup("contact", "ann@example.com"))
    assert landed == []
    assert failed.value.status == "failed" and "/landing" in str(failed.value)


def moved_app(moved_to: str = "/moved") -> web.Application:
    """Everything redirects to ``moved_to``, which answers like a healthy Eloqua."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(moved_to + request.path)

    async def moved(request: web.Request) -> web.Response:
        if request.path.endswith("/id"):
            base = f"http://{request.host}"
            return web.json_response({"site": {"name": "Acme"}, "urls": {"base": base}})
        if request.method == "POST":
            return web.json_response({"id": "777"}, status=201)
        return web.json_response({"elements": [], "total": 0})

    app = web.Application()
    app.router.add_route("*", moved_to + "/{tail:.*}", moved)
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


def test_a_base_url_that_redirects_is_a_configuration_error_before_sending(
    tmp_path, threaded_app, eloqua_env, capsys
):
    base = threaded_app(moved_app())
    eloqua_env(base)
    assert run_cli(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"the Eloqua base URL {base} (from ELOQUA_BASE_URL) answered 301" in err
    assert f"'/moved{ASSET_TYPES}'" in err or f"{base}/moved{ASSET_TYPES}" in err
    assert "Nothing was sent" in err and "Traceback" not in err
    assert not (tmp_path / "results.csv").exists()


def test_a_login_url_that_redirects_is_a_configuration_error_before_sending(
    tmp_path, threaded_app, eloqua_env, monkeypatch, capsys
):
    base = threaded_app(moved_app())
    eloqua_env(base)
    monkeypatch.delenv("ELOQUA_BASE_URL")
    monkeypatch.setenv("ELOQUA_LOGIN_URL", base)
    assert run_cli(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"{base}/id answered 301" in err and "/moved/id" in err and "ELOQUA_LOGIN_URL" in err
    assert "s3cret" not in err


def test_a_run_whose_creates_are_redirected_stops_and_a_rerun_resends_nothing(
    tmp_path, threaded_app, eloqua_env, capsys
):
    posts: list[str] = []
    landed: list[str] = []

    async def asset_types(request: web.Request) -> web.Response:
        return web.json_response({"elements": [], "total": 0})

    async def create(request: web.Request) -> web.Response:
        posts.append(await request.text())
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        landed.append(request.method)
        return web.json_response({"id": "777"})

    app = web.Application()
    app.router.add_get(ASSET_TYPES, asset_types)
    app.router.add_post(ACTIVITY, create)
    app.router.add_route("*", "/landing", landing)
    eloqua_env(threaded_app(app))

    assert run_cli(tmp_path, "--concurrency", "1") == 3
    results = read_results(tmp_path / "results.csv")
    assert [results[n]["status"] for n in (2, 3, 4)] == ["uncertain", "failed", "failed"]
    assert results[2]["http_status"] == "302" and "'/landing'" in results[2]["error"]
    assert "a create was redirected" in capsys.readouterr().out
    assert len(posts) == 1 and landed == []

    # The rerun stops again at the next row; the first stays uncertain, never resent.
    assert run_cli(tmp_path, "--concurrency", "1") == 3
    again = read_results(tmp_path / "results.csv")
    assert again[2]["status"] == "uncertain" and "--retry-uncertain" in again[2]["error"]
    assert len(posts) == 2 and landed == []


# --- an answer without a usable id -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"id": None}, {}, {"id": ""}, {"id": "  "}, {"id": ["1"]}, {"id": {"n": 1}}, {"id": True},
     b"Created", b"", [{"id": "1"}]],
    ids=["null", "missing", "empty", "blank", "list", "object", "bool", "text", "no-body", "array"],
)  # fmt: skip
async def test_a_201_without_a_usable_id_is_uncertain_never_created(scripted, fake_sleep, body):
    scripted.then(201, body)
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and outcome.activity_id == ""
    assert "without a usable activity id" in outcome.error
    assert len(scripted.received) == 1


@pytest.mark.parametrize("body", [{"id": "100234"}, {"id": 100234}])
async def test_a_201_with_a_string_or_integer_id_is_created(scripted, fake_sleep, body):
    scripted.then(201, body)
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "created" and outcome.activity_id == "100234"


async def test_the_ledger_keeps_a_201_without_id_as_uncertain(scripted, fake_sleep, tmp_path):
    scripted.then(201, {"id": None})
    outcomes: dict[int, Outcome] = {}
    ledger_path = tmp_path / "ledger.sqlite3"
    async with open_session(1) as session, Ledger(ledger_path, "site/acme") as ledger:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=outcomes.__setitem__,
            options=SendOptions(concurrency=1, policy=RetryPolicy(sleep=fake_sleep)),
            ledger=ledger,
        )
        await sender.run([Job(0, PAYLOAD, b"fp-0")])
    assert outcomes[0].status == "uncertain"
    async with Ledger(ledger_path, "site/acme") as ledger:
        claim = await ledger.claim(b"fp-0", "again")
    assert claim.decision == "uncertain" and claim.activity_id == ""


# --- gateway errors --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_a_create_is_uncertain_and_not_resent(
    scripted, fake_sleep, status
):
    scripted.then(status, "gateway")
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and outcome.http_status == status
    assert "gateway" in outcome.error and "--retry-uncertain" in outcome.error
    assert len(scripted.received) == 1 and fake_sleep.waits == []


async def test_a_gateway_error_after_a_retried_500_is_uncertain(scripted, fake_sleep):
    scripted.then(500).then(504)
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and outcome.attempts == 2
    assert len(scripted.received) == 2


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_a_lookup_is_retried(fake_sleep, status):
    answers = [web.Response(status=status, text="gateway")]

    async def contacts(request: web.Request) -> web.Response:
        if answers:
            return answers.pop(0)
        return web.json_response({"elements": [{"id": "77"}], "total": 1})

    app = web.Application()
    app.router.add_get("/api/REST/1.0/data/contacts", contacts)
    async with serving(app) as base, open_session(1) as session:
        resolver = Resolver(EloquaClient(session, base, CREDENTIALS), RetryPolicy(sleep=fake_sleep))
        assert await resolver.id_of(Lookup("contact", "ann@example.com")) == 77
    assert len(fake_sleep.waits) == 1


# --- an answer that trickles in --------------------------------------------------------------


@contextlib.asynccontextmanager
async def trickling(where: str, requests: list[bytes] | None = None) -> AsyncIterator[str]:
    """A server that reads a request, then answers one byte at a time, forever: in the
    headers (``where="headers"``), in a body without a length (``"body"``) or in one whose
    (small) length never arrives whole (``"body with a length"``). Request heads go to
    ``requests``."""
    handlers: set[asyncio.Task] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            if requests is not None:
                requests.append(head)
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n")
            if where == "headers":
                writer.write(b"X-Slow: ")
            elif where == "body with a length":
                writer.write(b"Content-Length: 100000\r\n\r\n")
            else:
                writer.write(b"Connection: close\r\n\r\n")
            while True:  # never finishes: well within any per-byte timeout each time
                writer.write(b"a" if where == "headers" else b" ")
                await writer.drain()
                await asyncio.sleep(0.01)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


@pytest.mark.parametrize("where", ["headers", "body", "body with a length"])
async def test_timeout_bounds_the_whole_answer_however_slowly_it_trickles(fake_sleep, where):
    async with trickling(where) as base, asyncio.timeout(60):  # before the fix: forever
        outcome = await send(base, fake_sleep, Timeouts(read=0.5))
    assert outcome.status == "uncertain" and outcome.attempts == 1
    assert "TimeoutError" in outcome.error and fake_sleep.waits == []


async def test_a_create_that_never_got_a_connection_in_time_is_failed_not_uncertain(fake_sleep):
    requests: list[bytes] = []
    async with trickling("body", requests) as base, asyncio.timeout(60):
        # One connection: the first create holds it until the timeout, the second waits.
        first, second = await send_two_on_one_connection(base, fake_sleep)
    assert len(requests) == 1
    assert first.status == "uncertain"
    assert second.status == "failed" and "could not connect" in second.error


@pytest.mark.parametrize(
    "body",
    [{"id": "null"}, {"id": "None"}, {"id": "undefined"}, {"id": "0"}, {"id": -1}, {"id": 0},
     {"id": "12ab"}, {"id": "\uff11\uff12"}, {"id": 1.5}],
    ids=["null-text", "None-text", "undefined", "zero-text", "negative", "zero", "not-digits",
         "fullwidth-digits", "float"],
)  # fmt: skip
async def test_a_201_whose_id_is_not_an_eloqua_id_is_uncertain(scripted, fake_sleep, body):
    # Eloqua's ids are positive whole numbers: {"id": "null"} from a proxy or a broken gateway
    # says no more than {"id": null} about what was created.
    scripted.then(201, body)
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and outcome.activity_id == ""
    assert len(scripted.received) == 1


async def test_an_answer_larger_than_the_cap_is_never_read_whole(scripted, fake_sleep, monkeypatch):
    # Eloqua's answers are a few KB; a broken proxy streaming hundreds of MB must not fill
    # memory. A create answered that way is uncertain: its id was never read.
    import importer.eloqua

    monkeypatch.setattr(importer.eloqua, "MAX_ANSWER_BYTES", 1000)
    scripted.then(201, {"id": "5001", "padding": "x" * 5000})
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and outcome.activity_id == ""
    assert "more than 1,000 bytes" in outcome.error
    assert len(scripted.received) == 1


async def test_a_small_compressed_answer_that_inflates_past_the_cap_is_never_read_whole(
    scripted, fake_sleep, monkeypatch
):
    # Its Content-Length is within the cap, but aiohttp inflates it: the cap counts what is
    # read, not what was declared.
    import gzip

    import importer.eloqua

    monkeypatch.setattr(importer.eloqua, "MAX_ANSWER_BYTES", 1000)
    inflating = gzip.compress(json.dumps({"id": "5001", "padding": "x" * 5000}).encode())
    assert len(inflating) < 1000
    scripted.then(201, inflating, {"Content-Encoding": "gzip"})
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain" and "more than 1,000 bytes" in outcome.error


async def test_an_answer_is_decoded_in_the_charset_it_declares(fake_sleep):
    from aiohttp import web

    message = "Caf\u00e9 M\u00fcller is not allowed"
    body = json.dumps({"message": message}, ensure_ascii=False).encode("latin-1")

    async def reject(request: web.Request) -> web.Response:
        content_type = "application/json; charset=ISO-8859-1"
        return web.Response(status=400, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_post("/api/REST/2.0/data/activity", reject)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        for _ in range(2):  # the second answer finds its charset already known
            outcome = await send(f"http://127.0.0.1:{runner.addresses[0][1]}", fake_sleep)
            assert outcome.status == "rejected" and message in outcome.error
    finally:
        await runner.cleanup()
