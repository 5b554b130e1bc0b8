"""OAuth2 that renews itself: the token endpoint of the sandbox, renewals (ahead of expiry, once
after a 401, one at a time in a process and across processes), the token file, `login`, and
imports that cross several token expiries without losing or duplicating a row.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from results_csv import read_results
from test_exactly_once import MAPPING, scans

from importer.auth import (
    AuthRefused,
    OAuth2Auth,
    OAuthApp,
    TokenFile,
    Tokens,
    fingerprint,
    record_from_tokens,
)
from importer.cli import main
from importer.eloqua import RENEWALS, EloquaClient
from importer.errors import Unauthorized
from importer.retry import RetryPolicy
from importer.sandbox.server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SandboxConfig,
    SandboxServer,
)
from importer.sender import send_one

ROOT = Path(__file__).resolve().parent.parent


# --- helpers ----------------------------------------------------------------------------------


def token_grant(base_url: str, body: dict[str, str], secret: str = SANDBOX_CLIENT_SECRET):
    """POST a grant to the sandbox's token endpoint: (status, JSON answer)."""
    basic = base64.b64encode(f"{SANDBOX_CLIENT_ID}:{secret}".encode()).decode()
    request = urllib.request.Request(
        base_url + "/auth/oauth2/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {basic}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def password_grant(base_url: str) -> dict[str, str]:
    status, answer = token_grant(
        base_url,
        {"grant_type": "password", "username": "Sandbox\\api.user", "password": "sandbox"},
    )
    assert status == 200, answer
    return answer


def oauth_env(monkeypatch, sandbox, tmp_path: Path, seed: str = "") -> Path:
    """Point the environment at the sandbox's OAuth2 app, refresh chain (no password)."""
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "token.json"
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)
    monkeypatch.setenv("ELOQUA_CLIENT_ID", SANDBOX_CLIENT_ID)
    monkeypatch.setenv("ELOQUA_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    monkeypatch.setenv("ELOQUA_TOKEN_FILE", str(token_file))
    if seed:
        monkeypatch.setenv("ELOQUA_REFRESH_TOKEN", seed)
    return token_file


def import_file(tmp_path: Path, data: Path, results: str = "results.csv") -> int:
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    return main(
        [
            "run",
            str(data),
            "--mapping",
            str(tmp_path / "map.yaml"),
            "--quiet",
            "--results",
            str(tmp_path / results),
        ]
    )


def assert_created_once(sandbox, expected: int) -> None:
    keys = Counter(
        (a["contactId"], a["activityDate"], a["assetName"]) for a in sandbox.state.activities
    )
    assert len(sandbox.state.activities) == expected
    assert max(keys.values()) == 1, "an activity was created twice"


def app_for(base_url: str) -> OAuthApp:
    return OAuthApp(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url)


# --- the sandbox's token endpoint -------------------------------------------------------------


def test_sandbox_refresh_tokens_are_single_use_and_old_access_tokens_keep_working(sandbox):
    first = password_grant(sandbox.base_url)
    assert first["token_type"] == "bearer" and first["expires_in"] == 28800
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    status, second = token_grant(sandbox.base_url, refresh)
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert token_grant(sandbox.base_url, refresh) == (400, {"error": "invalid_grant"})
    wrong_client = token_grant(sandbox.base_url, refresh, secret="nope")
    assert wrong_client == (401, {"error": "invalid_client"})
    for token in (first["access_token"], second["access_token"]):  # both valid (Eloqua 26B)
        request = urllib.request.Request(
            sandbox.base_url + "/id", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["site"]["name"] == "Sandbox"


# --- renewals in one process ------------------------------------------------------------------


async def test_concurrent_401s_with_one_token_cause_one_refresh(tmp_path):
    config = SandboxConfig(token_requests=25)
    async with SandboxServer(config) as server, aiohttp.ClientSession() as session:
        seed = await password_grant_async(server)
        token_file = TokenFile(tmp_path / "t.json")
        auth = OAuth2Auth(app_for(server.base_url), token_file=token_file, seed=seed)
        client = EloquaClient(session, server.base_url, auth)
        answers = await asyncio.gather(
            *(client.get("/api/REST/2.0/assets/external/types") for _ in range(40))
        )
        assert [a.status for a in answers] == [200] * 40
        # The seed once, then one refresh for the requests refused after the 25th.
        assert server.state.oauth.grants["refresh_token"] == 2
        assert auth.grants == 2


async def password_grant_async(server: SandboxServer) -> str:
    body = {"grant_type": "password", "username": "Sandbox\\api.user", "password": "sandbox"}
    headers = {"Authorization": app_for(server.base_url).client_auth()}
    url = server.base_url + "/auth/oauth2/token"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return (await response.json())["refresh_token"]


async def clocked_auth(server: SandboxServer, tmp_path, now: list[float]) -> OAuth2Auth:
    """OAuth2 against ``server`` with a token file, on the clock ``now[0]``."""
    return OAuth2Auth(
        app_for(server.base_url),
        token_file=TokenFile(tmp_path / "t.json"),
        seed=await password_grant_async(server),
        clock=lambda: now[0],
    )


async def test_access_token_is_renewed_ahead_of_expiry(tmp_path):
    now = [1_000_000.0]
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        auth = await clocked_auth(server, tmp_path, now)
        first = await auth.header(session)
        now[0] += 28800 - 400  # 6 min 40 s left: more than the 5 minute margin
        assert await auth.header(session) == first
        now[0] += 200  # 3 min 20 s left: renewed before Eloqua refuses it
        second = await auth.header(session)
        assert second != first and auth.grants == 2
        assert "access token expires" in auth.status()


async def test_a_request_near_the_tokens_expiry_renews_it_first_not_after_a_401(tmp_path):
    # The client takes the header without an await while the token is good; near its expiry
    # (or before the first token) it goes the slow way, which renews.
    now = [1_000_000.0]
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        auth = await clocked_auth(server, tmp_path, now)
        assert auth.header_now() is None  # no token yet
        client = EloquaClient(session, server.base_url, auth)
        types = "/api/REST/2.0/assets/external/types"
        assert (await client.get(types)).status == 200 and auth.grants == 1
        first = auth.header_now()
        assert first is not None and first == await auth.header(session)
        now[0] += 28800 - 200  # 3 min 20 s left: within the renew-ahead margin
        assert auth.header_now() is None
        assert (await client.get(types)).status == 200
        assert auth.grants == 2 and auth.header_now() not in (None, first)
        assert server.state.oauth.grants["refused"] == 0


async def test_a_process_adopts_tokens_another_process_renewed(tmp_path):
    """Two auth objects on one token file act as two processes: the second does not refresh
    with the refresh token the first has spent, it takes the new tokens from the file."""
    config = SandboxConfig(token_requests=3)
    async with SandboxServer(config) as server, aiohttp.ClientSession() as session:
        app, path = app_for(server.base_url), TokenFile(tmp_path / "t.json")
        seed = await password_grant_async(server)
        one = OAuth2Auth(app, token_file=path, seed=seed)
        two = OAuth2Auth(app, token_file=path, seed=seed)
        shared = await one.header(session)
        assert await two.header(session) == shared  # read from the file, no grant
        assert two.grants == 0
        assert await one.renew(session, shared)
        renewed = await one.header(session)
        assert await two.renew(session, shared)  # 401 with the old token: adopts
        assert await two.header(session) == renewed and two.grants == 0
        assert server.state.oauth.grants["refused"] == 0
        assert path.read()["generation"] == 2  # type: ignore[index]


async def test_a_new_refresh_token_in_the_environment_starts_a_new_chain(tmp_path):
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        app, path = app_for(server.base_url), TokenFile(tmp_path / "t.json")
        spent = await password_grant_async(server)
        await OAuth2Auth(app, token_file=path, seed=spent).header(session)
        still_set = OAuth2Auth(app, token_file=path, seed=spent)  # the old value: file wins
        await still_set.header(session)
        assert still_set.grants == 0
        fresh = OAuth2Auth(app, token_file=path, seed=await password_grant_async(server))
        await fresh.header(session)
        assert fresh.grants == 1 and server.state.oauth.grants["refused"] == 0


async def test_a_deleted_token_file_is_written_again_from_memory(tmp_path):
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        path = TokenFile(tmp_path / "t.json")
        auth = OAuth2Auth(
            app_for(server.base_url), token_file=path, seed=await password_grant_async(server)
        )
        used = await auth.header(session)
        path.path.unlink()
        assert await auth.renew(session, used)
        assert await auth.header(session) != used
        assert path.read() is not None and server.state.oauth.grants["refused"] == 0


async def test_a_401_is_resent_with_renewed_tokens_then_stops(tmp_path, scripted):
    """Eloqua refuses the request (401: not processed), the token is renewed and the same
    request sent again; when every renewed token is refused too, the 401 stands after
    RENEWALS renewals: the run stops, never an endless loop."""
    for _ in range(RENEWALS + 1):
        scripted.then(401, "Not authenticated.")
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        auth = OAuth2Auth(
            app_for(server.base_url),
            token_file=TokenFile(tmp_path / "t.json"),
            seed=await password_grant_async(server),
        )
        client = EloquaClient(session, scripted.base_url, auth)
        with pytest.raises(Unauthorized):
            await send_one(client, {"assetName": "x"}, RetryPolicy(max_attempts=1))
        # The seed, then one refresh per renewal; one send per token.
        assert len(scripted.received) == RENEWALS + 1 and auth.grants == RENEWALS + 1
        assert "eloqua-import login" in client.why_unauthorized()
        assert (await client.create_activity({"assetName": "y"})).status == 201


async def test_a_renewed_token_worn_out_by_another_process_is_renewed_again(tmp_path, scripted):
    """Two processes share the chain: the token this one adopted may be spent by the time its
    resend arrives. A newer token is tried before the 401 stands."""
    scripted.then(401, "Not authenticated.").then(401, "Not authenticated.")
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        auth = OAuth2Auth(
            app_for(server.base_url),
            token_file=TokenFile(tmp_path / "t.json"),
            seed=await password_grant_async(server),
        )
        client = EloquaClient(session, scripted.base_url, auth)
        outcome = await send_one(client, {"assetName": "x"}, RetryPolicy(max_attempts=1))
        assert outcome.status == "created" and len(scripted.received) == 3
        assert auth.grants == 3  # the seed, then a new token for each resend


def test_login_that_gets_no_answer_stops_with_exit_3(tmp_path, sandbox, monkeypatch, capsys):
    oauth_env(monkeypatch, sandbox, tmp_path)
    assert main(["login", "--no-browser", "--port", "0", "--timeout", "0.05"]) == 3
    shown = capsys.readouterr()
    assert "/auth/oauth2/authorize?" in shown.out and "Nothing was stored" in shown.err
    assert not (tmp_path / "token.json").exists()


async def test_renewed_tokens_that_cannot_be_saved_stop_the_run(tmp_path, monkeypatch):
    def full_disk(record) -> None:
        raise OSError(28, "No space left on device")

    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        path = TokenFile(tmp_path / "t.json")
        monkeypatch.setattr(path, "write", full_disk)
        auth = OAuth2Auth(
            app_for(server.base_url), token_file=path, seed=await password_grant_async(server)
        )
        with pytest.raises(AuthRefused, match=r"No space left on device.*eloqua-import login"):
            await auth.header(session)


async def test_refused_refresh_is_final_and_names_login(tmp_path):
    async with SandboxServer() as server, aiohttp.ClientSession() as session:
        auth = OAuth2Auth(
            app_for(server.base_url), token_file=TokenFile(tmp_path / "t.json"), seed="spent"
        )
        with pytest.raises(AuthRefused, match=r"invalid_grant.*eloqua-import login"):
            await auth.header(session)
        with pytest.raises(AuthRefused):
            await auth.header(session)
        assert server.state.oauth.grants["refused"] == 1  # not asked again


def test_token_file_is_private_and_leaves_no_temporary_files(tmp_path):
    token_file = TokenFile(tmp_path / "state" / "token.json")
    for generation in (1, 2):
        token_file.write({"refresh_token": "r", "generation": generation})
    assert stat.S_IMODE(token_file.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in token_file.path.parent.iterdir()) == ["token.json"]
    assert token_file.read() == {"refresh_token": "r", "generation": 2}


# --- imports across expiries ------------------------------------------------------------------


def test_300_rows_with_tokens_expiring_every_50_requests_are_created_once(
    tmp_path, sandbox_factory, monkeypatch
):
    sandbox = sandbox_factory(token_requests=50)
    seed = password_grant(sandbox.base_url)["refresh_token"]
    token_file = oauth_env(monkeypatch, sandbox, tmp_path, seed)
    assert import_file(tmp_path, scans(tmp_path / "a.csv", 300)) == 0
    assert_created_once(sandbox, 300)
    grants = sandbox.state.oauth.grants
    assert grants["refused"] == 0 and grants["refresh_token"] >= 6
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    assert stored["generation"] == grants["refresh_token"]  # every refresh was stored
    assert stored["seed_sha256"] == fingerprint(seed) and seed not in token_file.read_text()

    # The next run goes on from the rotated token in the file (the seed, still set, is spent)...
    data = tmp_path / "b.csv"
    data.write_text(scans(tmp_path / "x.csv", 60).read_text().replace("Spring", "Fall"))
    assert import_file(tmp_path, data, "b.results.csv") == 0
    assert_created_once(sandbox, 360)
    assert sandbox.state.oauth.grants["refused"] == 0
    # ... and the refresh tokens it replaced are refused.
    assert (
        token_grant(sandbox.base_url, {"grant_type": "refresh_token", "refresh_token": seed})[0]
        == 400
    )


def test_password_grant_renews_across_expiries(tmp_path, sandbox_factory, monkeypatch):
    sandbox = sandbox_factory(token_requests=40)  # the Basic variables are set: password grant
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)
    monkeypatch.setenv("ELOQUA_CLIENT_ID", SANDBOX_CLIENT_ID)
    monkeypatch.setenv("ELOQUA_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    assert import_file(tmp_path, scans(tmp_path / "a.csv", 120)) == 0
    assert_created_once(sandbox, 120)
    assert sandbox.state.oauth.grants["password"] >= 3
    assert not list((tmp_path / "state").rglob("oauth-token.json"))  # kept in memory


def test_refused_refresh_mid_run_exits_3_with_login_advice_and_results(
    tmp_path, sandbox_factory, monkeypatch, capsys
):
    sandbox = sandbox_factory(token_requests=50)
    token_file = oauth_env(monkeypatch, sandbox, tmp_path)
    # A chain whose refresh token was spent elsewhere: the access token serves 50 requests,
    # then the refresh is refused.
    answer = password_grant(sandbox.base_url)
    sandbox.state.oauth.refresh[answer["refresh_token"]] = False
    tokens = Tokens(answer["access_token"], answer["refresh_token"], time.time() + 28800, 28800)
    record = record_from_tokens(tokens, app_for(sandbox.base_url), "http://127.0.0.1/cb", None)
    TokenFile(token_file).write(record)
    status = import_file(tmp_path, scans(tmp_path / "a.csv", 120))
    shown = capsys.readouterr()
    assert status == 3
    assert "invalid_grant" in shown.out and "run `eloqua-import login` again" in shown.out
    results = read_results(tmp_path / "results.csv")
    statuses = Counter(line["status"] for line in results.values())
    assert set(statuses) == {"created", "failed"} and sum(statuses.values()) == 120
    assert statuses["created"] == len(sandbox.state.activities) < 50
    assert all("not sent" in r["error"] for r in results.values() if r["status"] == "failed")
    assert answer["access_token"] not in shown.out + shown.err
    assert sandbox.state.oauth.grants["refused"] == 1


def start_run(tmp_path: Path, data: Path, results: str, env: dict[str, str]):
    command = [sys.executable, "-m", "importer", "run", str(data), "--quiet"]
    command += ["--mapping", str(tmp_path / "map.yaml"), "--results", str(tmp_path / results)]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # generous: this machine's timers wake late
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)


def created(sandbox, event: str) -> int:
    return sum(a["assetName"] == event for a in list(sandbox.state.activities))


def test_two_processes_share_one_refresh_chain(tmp_path, sandbox_factory, monkeypatch):
    sandbox = sandbox_factory(token_requests=50)
    seed = password_grant(sandbox.base_url)["refresh_token"]
    token_file = oauth_env(monkeypatch, sandbox, tmp_path, seed)
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    first = scans(tmp_path / "a.csv", 300)
    second = tmp_path / "b.csv"
    second.write_text(first.read_text().replace("Spring", "Fall"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    one = start_run(tmp_path, first, "a.results.csv", env)
    wait_until(lambda: created(sandbox, "Spring Expo") >= 100, one)
    # Slow the sandbox so the first run is still mid-file while the second one starts.
    sandbox.config.latency = 0.3  # 200 rows left: 7 s or more
    two = start_run(tmp_path, second, "b.results.csv", env)
    wait_until(lambda: created(sandbox, "Fall Expo") >= 1, two)
    assert one.poll() is None, "the first run ended before the second one started sending"
    sandbox.config.latency = 0.0
    outputs = [run.communicate(timeout=300) for run in (one, two)]
    assert [one.returncode, two.returncode] == [0, 0], outputs
    assert_created_once(sandbox, 600)
    grants = sandbox.state.oauth.grants
    assert grants["refused"] == 0 and grants["refresh_token"] >= 12
    assert json.loads(token_file.read_text())["generation"] == grants["refresh_token"]
    for out, err in outputs:
        assert seed not in out + err and "sbx-" not in out + err


def test_watch_renews_one_chain_across_files(tmp_path, sandbox_factory, monkeypatch):
    sandbox = sandbox_factory(token_requests=30)
    seed = password_grant(sandbox.base_url)["refresh_token"]
    oauth_env(monkeypatch, sandbox, tmp_path, seed)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = scans(tmp_path / "a.csv", 80).read_text()
    (inbox / "b.csv").write_text(text.replace("Spring", "Fall"))
    (tmp_path / "a.csv").rename(inbox / "a.csv")
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    command = ["watch", str(inbox), "--mapping", str(tmp_path / "map.yaml"), "--once"]
    assert main([*command, "--settle", "0", "--log-format", "json"]) == 0
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "a.csv",
        "a.csv.results.csv",
        "b.csv",
        "b.csv.results.csv",
    ]
    assert_created_once(sandbox, 160)
    assert sandbox.state.oauth.grants["refused"] == 0


def test_unreachable_login_service_stops_before_sending_and_keeps_the_seed(
    tmp_path, sandbox, monkeypatch, capsys
):
    seed = password_grant(sandbox.base_url)["refresh_token"]
    oauth_env(monkeypatch, sandbox, tmp_path, seed)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("ELOQUA_LOGIN_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
    assert import_file(tmp_path, scans(tmp_path / "a.csv", 5)) == 3
    assert "try again later" in capsys.readouterr().err
    assert sandbox.state.activities == [] and sandbox.state.oauth.refresh[seed] is True


# --- login ------------------------------------------------------------------------------------


def start_login(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "importer", "login", "--no-browser", "--port", "0"]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def authorize_address(process: subprocess.Popen) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if "/auth/oauth2/authorize?" in line:
            return line.strip()
    raise AssertionError("login printed no address")


async def follow(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def test_login_stores_a_chain_the_next_run_uses(tmp_path, sandbox, monkeypatch, capsys):
    token_file = oauth_env(monkeypatch, sandbox, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = start_login(tmp_path, env)
    url = authorize_address(process)
    assert "state=" in url and "client_id=sandbox-client" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    # A redirect carrying another state is refused and the login keeps waiting.
    callback = re.search(r"redirect_uri=([^&]+)", url)[1]  # type: ignore[index]
    forged = urllib.parse.unquote(callback) + "?code=x&state=forged"
    assert asyncio.run(follow(forged))[0] == 400
    status, page = asyncio.run(follow(url))  # the sandbox approves and redirects back
    assert status == 200 and "logged in" in page
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert str(token_file) in out and "sbx-" not in out + err
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert sandbox.state.oauth.grants["authorization_code"] == 1

    assert main(["check"]) == 0
    shown = capsys.readouterr().out
    assert "Auth:        OAuth2 refresh chain" in shown and "access token expires" in shown
    assert import_file(tmp_path, scans(tmp_path / "a.csv", 20)) == 0
    assert_created_once(sandbox, 20)


def test_login_without_the_app_variables_exits_2(monkeypatch, capsys):
    for name in ("ELOQUA_CLIENT_ID", "ELOQUA_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["login", "--no-browser"]) == 2
    assert "ELOQUA_CLIENT_ID" in capsys.readouterr().err


# --- configuration ----------------------------------------------------------------------------


def test_check_shows_basic_auth(sandbox, capsys):
    assert main(["check"]) == 0
    assert "Auth:        Basic (Sandbox\\api.user)" in capsys.readouterr().out


def test_client_id_without_a_token_or_password_says_run_login(
    tmp_path, sandbox, monkeypatch, capsys
):
    oauth_env(monkeypatch, sandbox, tmp_path)
    assert main(["check"]) == 2
    assert "eloqua-import login" in capsys.readouterr().err


def test_client_secret_with_a_control_character_exits_2_naming_it(
    tmp_path, sandbox, monkeypatch, capsys
):
    oauth_env(monkeypatch, sandbox, tmp_path, seed="abc")
    monkeypatch.setenv("ELOQUA_CLIENT_SECRET", "sand\x1bbox-secret")
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "ELOQUA_CLIENT_SECRET" in err and "sand" not in err


def test_client_id_without_secret_exits_2(tmp_path, sandbox, monkeypatch, capsys):
    oauth_env(monkeypatch, sandbox, tmp_path, seed="abc")
    monkeypatch.delenv("ELOQUA_CLIENT_SECRET")
    assert main(["check"]) == 2
    assert "ELOQUA_CLIENT_SECRET is not set" in capsys.readouterr().err


def test_secrets_stay_out_of_repr(tmp_path):
    app = OAuthApp("id", "very-secret", "https://login.eloqua.com")
    auth = OAuth2Auth(app, password=("Acme\\me", "hunter2"))
    assert "very-secret" not in repr(app) and "hunter2" not in repr(auth) + auth.describe()
