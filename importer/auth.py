"""Credentials -> the Authorization header of each request, renewing OAuth2 tokens as needed.

Three kinds: HTTP Basic, a static bearer token (``ELOQUA_ACCESS_TOKEN``), and OAuth2 tokens
that renew themselves, either by the resource owner password grant or along a refresh chain
(seeded by ``ELOQUA_REFRESH_TOKEN`` or by ``eloqua-import login``).

Invariants:
- Secrets (passwords, client secret, tokens) never appear in repr(), messages or logs.
- One renewal at a time: in a process an asyncio lock, across processes a lock file. Requests
  that got a 401 with the token just replaced use the new token instead of renewing again, so
  N concurrent 401s cause one refresh.
- A refresh token is single-use. The chain lives in the token file, rewritten atomically
  (temp file, fsync, rename, fsync of the folder) right after every refresh and before the new
  access token is used; a process that finds the file already renewed by another adopts its
  tokens instead of refreshing with a spent refresh token (which would break the chain).
- A refused renewal is final for the process: every later request is refused without being
  sent, so the run stops with the advice to log in again and nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TOKEN_PATH = "/auth/oauth2/token"
AUTHORIZE_PATH = "/auth/oauth2/authorize"
#: The listener ``eloqua-import login`` opens; register this as the app's OAuth callback URL.
DEFAULT_LOGIN_PORT = 8765
DEFAULT_REDIRECT_URI = f"http://127.0.0.1:{DEFAULT_LOGIN_PORT}/callback"
#: Renew when less than this remains of an access token's life...
RENEW_AHEAD = 300.0
#: ... or less than this fraction of it (short-lived tokens, e.g. the sandbox's in tests).
RENEW_AHEAD_FRACTION = 0.1
#: How long to wait for another process that is renewing the tokens.
LOCK_TIMEOUT = 120.0
TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=60)
LOGIN_ADVICE = "run `eloqua-import login` again (or set a new ELOQUA_REFRESH_TOKEN)"


class AuthRefused(Exception):
    """Eloqua refused to issue a token. Final: the credentials or the chain must be renewed
    by a person. The message says what to do and carries no secret."""


class TokenUnavailable(Exception):
    """The token endpoint could not be reached or failed (network, 5xx): try again later."""


class Auth:
    """The Authorization header for each request. Subclasses renew it when they can."""

    kind = "Basic"

    async def header(self, session: aiohttp.ClientSession) -> str:
        """The header value for the next request. Raises AuthRefused, TokenUnavailable."""
        raise NotImplementedError

    def header_now(self) -> str | None:
        """The header value for the next request when it is at hand (no token to fetch or
        renew first), else None: then ``await header()``. Saves an await per request."""
        return None

    async def renew(self, session: aiohttp.ClientSession, used: str) -> bool:
        """After a 401 for a request sent with ``used``: True when a new header is ready."""
        return False

    def describe(self) -> str:
        """Who we authenticate as, safe to print."""
        raise NotImplementedError

    def advice(self) -> str:
        """What to do when Eloqua no longer accepts these credentials."""
        raise NotImplementedError

    def status(self) -> str:
        """For ``check``: the kind of auth in use and when its token expires."""
        return self.describe()


class StaticAuth(Auth):
    """Basic credentials or a fixed bearer token: nothing to renew."""

    def __init__(self, value: str, kind: str, who: str, advice: str) -> None:
        self._value = value
        self.kind = kind
        self._who = who
        self._advice = advice

    def __repr__(self) -> str:
        return f"StaticAuth(kind={self.kind!r}, who={self._who!r})"

    async def header(self, session: aiohttp.ClientSession) -> str:
        return self._value

    def header_now(self) -> str | None:
        return self._value

    def describe(self) -> str:
        return self._who

    def advice(self) -> str:
        return self._advice

    def status(self) -> str:
        if self.kind == "bearer token":
            return (
                f"bearer token ({self._who}); Eloqua does not say when it expires (8 hours"
                " after it was issued); with ELOQUA_CLIENT_ID it would renew itself"
            )
        return f"Basic ({self._who})"


def basic_auth(company: str, username: str, password: str) -> StaticAuth:
    user = f"{company}\\{username}:{password}"
    value = "Basic " + base64.b64encode(user.encode("utf-8")).decode("ascii")
    return StaticAuth(
        value,
        "Basic",
        f"{company}\\{username}",
        "check ELOQUA_COMPANY, ELOQUA_USERNAME and ELOQUA_PASSWORD",
    )


def bearer_auth(token: str) -> StaticAuth:
    return StaticAuth(
        f"Bearer {token}",
        "bearer token",
        "an OAuth2 access token (ELOQUA_ACCESS_TOKEN)",
        "ELOQUA_ACCESS_TOKEN has expired or was revoked: set a new one, or set ELOQUA_CLIENT_ID"
        " and ELOQUA_CLIENT_SECRET so tokens renew themselves",
    )


# --- tokens and the token endpoint ------------------------------------------------------------


@dataclass(frozen=True)
class OAuthApp:
    """The OAuth2 app registered in Eloqua (Settings > AppCloud Developer)."""

    client_id: str
    client_secret: str = field(repr=False)
    login_url: str = "https://login.eloqua.com"

    def client_auth(self) -> str:
        """The Authorization header the token endpoint wants: HTTP Basic, id:secret."""
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # epoch seconds (the token file is shared by processes: wall clock)
    lifetime: float
    generation: int = 0  # bumped on every write of the token file

    def expiring(self, now: float) -> bool:
        """Within the renew-ahead margin of its expiry (5 minutes, or 10% of a short life)."""
        margin = min(RENEW_AHEAD, RENEW_AHEAD_FRACTION * self.lifetime)
        return self.expires_at - now < margin


async def request_tokens(
    session: aiohttp.ClientSession, app: OAuthApp, body: dict[str, str], now: float
) -> Tokens:
    """POST one grant to the token endpoint with HTTP Basic client auth.

    Raises AuthRefused for a 4xx answer (bad grant or client), TokenUnavailable otherwise.
    """
    url = app.login_url.rstrip("/") + TOKEN_PATH
    grant = body.get("grant_type", "?")
    try:
        async with session.post(
            url,
            json=body,
            headers={"Authorization": app.client_auth()},
            timeout=TOKEN_TIMEOUT,
            allow_redirects=False,  # the client secret and the grant never follow a redirect
        ) as response:
            status = response.status
            text = await response.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenUnavailable(
            f"could not reach {url} to renew the OAuth2 token ({type(exc).__name__})"
        ) from None
    answer = _json(text)
    if 400 <= status < 500 and status not in (408, 429):  # busy is not a refusal
        raise AuthRefused(f"Eloqua refused the OAuth2 {grant} grant ({_oauth_error(answer)})")
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise TokenUnavailable(f"{url} answered {status} to the OAuth2 {grant} grant")
    try:
        lifetime = float(answer.get("expires_in") or 28800)
    except (TypeError, ValueError):
        lifetime = 28800.0
    return Tokens(
        access_token=str(answer["access_token"]),
        refresh_token=str(answer.get("refresh_token") or ""),
        expires_at=now + lifetime,
        lifetime=lifetime,
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _oauth_error(answer: Any) -> str:
    """The error code of an OAuth2 error answer; never its whole body (it may echo input)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer["error"][:60]
    return "no reason given"


def fingerprint(secret: str) -> str:
    """Recognises a secret seen before without storing it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- the token file ---------------------------------------------------------------------------


class TokenFile:
    """The OAuth2 chain on disk: JSON, mode 0600, replaced atomically, one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def read(self) -> dict[str, Any] | None:
        """The stored record, or None when there is none (or it cannot be understood)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuthRefused(
                f"cannot read the OAuth2 token file {self.path} ({exc.strerror}); check its"
                " permissions or set ELOQUA_TOKEN_FILE"
            ) from None
        record = _json(text)
        if not isinstance(record, dict) or not record.get("refresh_token"):
            return None
        return record

    def write(self, record: dict[str, Any]) -> None:
        """Replace the file: a crash leaves the old chain or the new, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )  # mkstemp creates it 0600: the tokens are never readable by others, even briefly
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(record, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_folder(self.path.parent)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the lock file: one process renews at a time. Waits without blocking the loop."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise TokenUnavailable(
                        f"another process has held {self.lock_path} for {LOCK_TIMEOUT:.0f} s"
                    )
                await asyncio.sleep(0.02)
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no locking here: one process per token file
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    with contextlib.suppress(ImportError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder this way)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tokens_from_record(record: dict[str, Any]) -> Tokens:
    return Tokens(
        access_token=str(record.get("access_token") or ""),
        refresh_token=str(record.get("refresh_token") or ""),
        expires_at=float(record.get("expires_at") or 0),
        lifetime=float(record.get("lifetime") or 28800),
        generation=int(record.get("generation") or 0),
    )


def record_from_tokens(
    tokens: Tokens, app: OAuthApp, redirect_uri: str, seed: str | None
) -> dict[str, Any]:
    return {
        "version": 1,
        "login_url": app.login_url,
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
        "lifetime": tokens.lifetime,
        "generation": tokens.generation,
        # The ELOQUA_REFRESH_TOKEN already taken into account (a hash): a new value set there
        # starts a new chain; the old value, still set, must not replace the rotated one.
        "seed_sha256": seed,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- OAuth2 that renews itself ----------------------------------------------------------------


class OAuth2Auth(Auth):
    """Bearer tokens from an OAuth2 app, renewed ahead of expiry and once after a 401.

    With ``password`` (``Company\\User``, password): the password grant, tokens kept in memory.
    Without: the refresh chain in ``token_file``, seeded by ``seed`` (ELOQUA_REFRESH_TOKEN) when
    that is new to the file.
    """

    def __init__(
        self,
        app: OAuthApp,
        *,
        token_file: TokenFile | None = None,
        seed: str | None = None,
        password: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if password is None and token_file is None:
            raise ValueError("a refresh chain needs a token file")
        self.app = app
        self.token_file = token_file
        self._seed = seed or None
        self._password = password
        self.kind = "OAuth2 password grant" if password else "OAuth2 refresh chain"
        self.clock = clock
        self._tokens: Tokens | None = None
        self._refused = ""
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.grants = 0  # token requests made by this process (tests count them)

    def __repr__(self) -> str:
        return f"OAuth2Auth(kind={self.kind!r}, token_file={self.token_file!r})"

    @property
    def expires_at(self) -> float | None:
        return self._tokens.expires_at if self._tokens else None

    async def header(self, session: aiohttp.ClientSession) -> str:
        tokens = self._tokens
        if self._refused:
            raise AuthRefused(self._refused)
        if tokens is None or tokens.expiring(self.clock()):
            await self._renew(session, tokens.access_token if tokens else "")
            tokens = self._tokens
        assert tokens is not None
        return f"Bearer {tokens.access_token}"

    def header_now(self) -> str | None:
        # The same checks as header(), in the same order: a refused renewal or a token near
        # its expiry goes the slow way (header() raises or renews).
        tokens = self._tokens
        if self._refused or tokens is None or tokens.expiring(self.clock()):
            return None
        return f"Bearer {tokens.access_token}"

    async def renew(self, session: aiohttp.ClientSession, used: str) -> bool:
        await self._renew(session, used.removeprefix("Bearer "))
        return True

    def describe(self) -> str:
        if self._password:
            return f"{self._password[0]} (OAuth2 app {self.app.client_id})"
        return f"the OAuth2 refresh chain in {self.token_file.path if self.token_file else '?'}"

    def advice(self) -> str:
        if self._refused:
            return self._refused
        if self._password:
            return (
                "check ELOQUA_CLIENT_ID, ELOQUA_CLIENT_SECRET, ELOQUA_COMPANY, ELOQUA_USERNAME"
                " and ELOQUA_PASSWORD"
            )
        return LOGIN_ADVICE

    def status(self) -> str:
        where = (
            f"{self._password[0]}, tokens kept in memory"
            if self._password
            else f"token file {self.token_file.path if self.token_file else '?'}"
        )
        line = f"{self.kind} ({where})"
        if self._tokens is not None:
            expiry = describe_expiry(self._tokens.expires_at, self.clock())
            line += f"; access token expires {expiry}"
        return line

    def _lock(self) -> asyncio.Lock:
        # One lock per event loop: a library caller may run several asyncio.run() in turn.
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {loop: (lock := asyncio.Lock())}
        return lock

    async def _renew(self, session: aiohttp.ClientSession, stale: str) -> None:
        """Replace the access token ``stale`` (empty: none yet), once however many ask."""
        async with self._lock():
            if self._refused:
                raise AuthRefused(self._refused)
            current = self._tokens
            renewed = current is not None and current.access_token != stale
            if renewed and current is not None and not current.expiring(self.clock()):
                return  # renewed while this request waited for the lock: use the new one
            try:
                if self.token_file is None:
                    self._tokens = await self._grant(session, "")
                else:
                    await self._renew_chain_locked(session, stale)
            except AuthRefused as exc:
                self._refused = f"{exc}: {self.advice()}"
                raise AuthRefused(self._refused) from None

    async def _renew_chain_locked(self, session: aiohttp.ClientSession, stale: str) -> None:
        assert self.token_file is not None
        try:
            async with self.token_file.locked():
                await self._renew_chain(session, stale)
        except OSError as exc:
            # Renewed tokens that cannot be kept break the chain for the next run: stop now
            # (nothing more is sent) rather than carry on with tokens only this process knows.
            raise AuthRefused(
                f"cannot write the OAuth2 token file {self.token_file.path}"
                f" ({exc.strerror or type(exc).__name__}); fix that (disk space, permissions)"
            ) from None

    async def _renew_chain(self, session: aiohttp.ClientSession, stale: str) -> None:
        """Under the file lock: adopt another process's renewal, or refresh and store."""
        assert self.token_file is not None
        record = self.token_file.read()
        if record is not None:
            self._check_owner(record)
        seed_hash = fingerprint(self._seed) if self._seed else None
        seen = record.get("seed_sha256") if record else None
        stored = tokens_from_record(record) if record else None
        if record is None and self._tokens is not None:
            # The token file was deleted under this process: go on from the tokens in memory
            # (the seed, if any, was taken into account when they were had).
            stored, seen = self._tokens, seed_hash
        if self._seed and seed_hash != seen:
            refresh = self._seed  # a new ELOQUA_REFRESH_TOKEN starts the chain afresh
        elif stored is not None:
            if stored.access_token not in ("", stale) and not stored.expiring(self.clock()):
                self._tokens = stored  # another process (or an earlier run) renewed it already
                return
            refresh = stored.refresh_token
        else:
            raise AuthRefused(f"there is no OAuth2 token in {self.token_file.path} yet")
        redirect_uri = str((record or {}).get("redirect_uri") or DEFAULT_REDIRECT_URI)
        tokens = await self._grant(session, refresh, redirect_uri)
        tokens = dataclasses.replace(
            tokens,
            refresh_token=tokens.refresh_token or refresh,
            generation=(stored.generation if stored else 0) + 1,
        )
        # Written before the new token is used: the old refresh token is spent now.
        self.token_file.write(record_from_tokens(tokens, self.app, redirect_uri, seed_hash or seen))
        self._tokens = tokens

    def _check_owner(self, record: dict[str, Any]) -> None:
        assert self.token_file is not None
        if record.get("client_id") not in (None, self.app.client_id) or record.get(
            "login_url"
        ) not in (None, self.app.login_url):
            raise AuthRefused(
                f"the OAuth2 token file {self.token_file.path} holds tokens of another app or"
                f" login URL ({record.get('login_url')}); set ELOQUA_TOKEN_FILE to a file of"
                " this app's own"
            )

    async def _grant(
        self, session: aiohttp.ClientSession, refresh: str, redirect_uri: str = ""
    ) -> Tokens:
        self.grants += 1
        if self._password is not None:
            user, password = self._password
            body = {"grant_type": "password", "scope": "full", "username": user}
            body["password"] = password
        else:
            body = {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "scope": "full",
                "redirect_uri": redirect_uri or DEFAULT_REDIRECT_URI,
            }
        return await request_tokens(session, self.app, body, self.clock())


def describe_expiry(expires_at: float, now: float) -> str:
    """'2026-11-27 13:19 UTC (in 7 h 59 min)' or '... (expired 3 min ago)'."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_at))
    left = expires_at - now
    minutes = int(abs(left) // 60)
    span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return f"{when} (in {span})" if left >= 0 else f"{when} (expired {span} ago)"


def default_token_path(state_dir: Path) -> Path:
    return state_dir / "oauth-token.json"
