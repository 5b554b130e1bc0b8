"""Environment -> connection settings. Secrets are kept out of repr() and every message.

Which auth is used (see ``importer.auth``): with ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET,
OAuth2 tokens that renew themselves (the password grant when ELOQUA_COMPANY, ELOQUA_USERNAME and
ELOQUA_PASSWORD are set too, else the refresh chain in the token file); else a static
ELOQUA_ACCESS_TOKEN; else Basic.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from importer.auth import (
    Auth,
    AuthRefused,
    OAuth2Auth,
    OAuthApp,
    TokenFile,
    basic_auth,
    bearer_auth,
    default_token_path,
)
from importer.errors import ConfigError

DEFAULT_LOGIN_URL = "https://login.eloqua.com"


@dataclass(frozen=True)
class Credentials:
    """Basic (Company\\Username:password) or bearer-token credentials."""

    company: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        # A line break (a token pasted with its line end) would otherwise surface as an
        # "unexpected error" from the HTTP library; the message never shows the value.
        for variable, value in (
            ("ELOQUA_ACCESS_TOKEN", self.token),
            ("ELOQUA_COMPANY", self.company),
            ("ELOQUA_USERNAME", self.username),
            ("ELOQUA_PASSWORD", self.password),
        ):
            refuse_control_characters(variable, value)

    def authorization(self) -> str:
        """The Authorization header value. Never log it."""
        if self.token:
            return f"Bearer {self.token}"
        user = f"{self.company}\\{self.username}:{self.password}"
        return "Basic " + base64.b64encode(user.encode("utf-8")).decode("ascii")

    def describe(self) -> str:
        """Who we authenticate as, safe to print."""
        if self.token:
            return "an OAuth2 access token (ELOQUA_ACCESS_TOKEN)"
        return f"{self.company}\\{self.username}"

    def authenticator(self) -> Auth:
        """The static kinds: Basic, or the bearer token."""
        if self.token:
            return bearer_auth(self.token)
        return basic_auth(self.company, self.username, self.password)


@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk to Eloqua. ``base_url`` may be None: discover it via /id.

    ``auth`` (OAuth2 that renews itself) is shared by every run of the process, so a watcher
    renews its tokens once for all the files; when None, ``credentials`` say how to sign in.
    """

    credentials: Credentials
    base_url: str | None
    login_url: str = DEFAULT_LOGIN_URL
    auth: Auth | None = field(default=None, repr=False, compare=False)

    def authenticator(self) -> Auth:
        return self.auth if self.auth is not None else self.credentials.authenticator()


def connection_from_env(env: Mapping[str, str] | None = None) -> Connection:
    """Read ELOQUA_* variables. Raises ConfigError saying which variables to set."""
    env = os.environ if env is None else env
    check_values(env)
    token = env.get("ELOQUA_ACCESS_TOKEN", "").strip()
    company = env.get("ELOQUA_COMPANY", "").strip()
    username = env.get("ELOQUA_USERNAME", "").strip()
    password = env.get("ELOQUA_PASSWORD", "")
    app = oauth_app_from_env(env)
    if not token and app is None:
        missing = [
            name
            for name, value in (
                ("ELOQUA_COMPANY", company),
                ("ELOQUA_USERNAME", username),
                ("ELOQUA_PASSWORD", password),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                "no Eloqua credentials: set " + ", ".join(missing) + " (Basic auth as"
                " Company\\Username), or ELOQUA_ACCESS_TOKEN for an OAuth2 token, or"
                " ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET for OAuth2 that renews itself."
                " To try the tool without Eloqua, add --sandbox."
            )
    base_url = env.get("ELOQUA_BASE_URL", "").strip() or None
    if base_url:
        base_url = check_url(base_url, "ELOQUA_BASE_URL")
    login_url = login_url_from_env(env)
    renewing = None
    if app is not None:
        renewing = oauth2_from_env(env, app, company, username, password)
    return Connection(
        credentials=Credentials(company, username, password, token),
        base_url=base_url,
        login_url=login_url,
        auth=renewing,
    )


def login_url_from_env(env: Mapping[str, str]) -> str:
    url = env.get("ELOQUA_LOGIN_URL", "").strip() or DEFAULT_LOGIN_URL
    return check_url(url, "ELOQUA_LOGIN_URL")


def oauth_app_from_env(env: Mapping[str, str]) -> OAuthApp | None:
    """The OAuth2 app, when ELOQUA_CLIENT_ID / ELOQUA_CLIENT_SECRET are set (both or neither)."""
    client_id = env.get("ELOQUA_CLIENT_ID", "").strip()
    secret = env.get("ELOQUA_CLIENT_SECRET", "").strip()
    if not client_id and not secret:
        if env.get("ELOQUA_REFRESH_TOKEN", "").strip():
            raise ConfigError(
                "ELOQUA_REFRESH_TOKEN is set but ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET are"
                " not: a refresh token is renewed with the app it was issued to; set both"
            )
        return None
    if not client_id or not secret:
        missing = "ELOQUA_CLIENT_SECRET" if client_id else "ELOQUA_CLIENT_ID"
        raise ConfigError(
            f"{missing} is not set: OAuth2 needs both ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET"
            " (Eloqua: Settings > AppCloud Developer > your app)"
        )
    return OAuthApp(client_id, secret, login_url_from_env(env))


def token_file_from_env(env: Mapping[str, str] | None = None) -> TokenFile:
    """ELOQUA_TOKEN_FILE, else oauth-token.json in the per-user state folder (by the ledger)."""
    from importer.ledger import default_ledger_path

    env = os.environ if env is None else env
    path = env.get("ELOQUA_TOKEN_FILE", "").strip()
    if path:
        return TokenFile(Path(path).expanduser())
    return TokenFile(default_token_path(default_ledger_path().parent))


def oauth2_from_env(
    env: Mapping[str, str], app: OAuthApp, company: str, username: str, password: str
) -> OAuth2Auth:
    """The password grant with the Basic variables, else the refresh chain (file or seed)."""
    if company and username and password:
        return OAuth2Auth(app, password=(f"{company}\\{username}", password))
    seed = env.get("ELOQUA_REFRESH_TOKEN", "").strip()
    token_file = token_file_from_env(env)
    try:
        stored = token_file.read()
    except AuthRefused as exc:
        raise ConfigError(str(exc)) from None
    if not seed and stored is None:
        raise ConfigError(
            f"ELOQUA_CLIENT_ID is set but there is no OAuth2 token yet ({token_file.path}):"
            " run `eloqua-import login` once, or set ELOQUA_REFRESH_TOKEN, or set"
            " ELOQUA_COMPANY, ELOQUA_USERNAME and ELOQUA_PASSWORD for the password grant"
        )
    return OAuth2Auth(app, token_file=token_file, seed=seed)


#: The OAuth2 variables (the Basic ones and the token are checked by Credentials), trimmed.
OAUTH_VARIABLES = (
    "ELOQUA_CLIENT_ID",
    "ELOQUA_CLIENT_SECRET",
    "ELOQUA_REFRESH_TOKEN",
    "ELOQUA_TOKEN_FILE",
)


def check_values(env: Mapping[str, str]) -> None:
    for name in OAUTH_VARIABLES:
        refuse_control_characters(name, env.get(name, "").strip())


def refuse_control_characters(variable: str, value: str) -> None:
    """Exit 2 naming the variable, never showing the value (it may be a secret)."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ConfigError(
            f"{variable} contains a line break or another control character (was it"
            " pasted with a line end, or read from a file?): set it again without it."
            " Nothing was sent."
        )


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether any ELOQUA_* credential is set (without them, a dry run of a mapping that looks
    nothing up works offline)."""
    env = os.environ if env is None else env
    names = (
        "ELOQUA_ACCESS_TOKEN",
        "ELOQUA_COMPANY",
        "ELOQUA_USERNAME",
        "ELOQUA_PASSWORD",
        "ELOQUA_CLIENT_ID",
    )
    return any(env.get(name, "").strip() for name in names)


def check_url(url: str, what: str) -> str:
    """Return ``url`` without a trailing slash; refuse plain http except to loopback.

    A URL the HTTP library would misread or refuse mid-run is a configuration error here:
    control characters or spaces (urlsplit silently drops tabs and line breaks), a port that
    is no port, a query or fragment (the API paths are appended to it), or a user name and
    password inside it (never shown: it is a secret).
    """
    url = url.strip()
    example = "a URL like https://secure.p03.eloqua.com"
    if any(unicodedata.category(char) == "Cc" for char in url):
        raise ConfigError(
            f"{what} contains a line break or another control character: set it again as {example}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is no number or too big)
    except ValueError as exc:
        if "@" in url:  # the message would show the password
            raise ConfigError(f"{what} is not a URL; it must be {example}") from None
        raise ConfigError(f"{what} is not a URL ({exc}): it must be {example}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{what} must not hold a user name or password (Eloqua's are set with"
            f" ELOQUA_COMPANY, ELOQUA_USERNAME and ELOQUA_PASSWORD): set it as {example}"
        )
    if any(char.isspace() for char in url):
        raise ConfigError(f"{what} contains a space: set it as {example}, not {url!r}")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigError(
            f"{what} must not hold a query or fragment ('?...', '#...'): set it as {example},"
            f" not {url!r}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be {example}, not {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{what} uses plain http to {parts.hostname}: credentials would travel unencrypted."
            " Use https:// (plain http is allowed only to this machine: localhost, 127.x, ::1)."
        )
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
