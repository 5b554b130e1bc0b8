"""Environment -> connection settings. Secrets are kept out of repr() and every message."""

from __future__ import annotations

import base64
import ipaddress
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
            if any(unicodedata.category(char) == "Cc" for char in value):
                raise ConfigError(
                    f"{variable} contains a line break or another control character (was it"
                    " pasted with a line end, or read from a file?): set it again without it."
                    " Nothing was sent."
                )

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

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]


@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk to Eloqua. ``base_url`` may be None: discover it via /id."""

    credentials: Credentials
    base_url: str | None
    login_url: str = DEFAULT_LOGIN_URL


def connection_from_env(env: Mapping[str, str] | None = None) -> Connection:
    """Read ELOQUA_* variables. Raises ConfigError saying which variables to set."""
    env = os.environ if env is None else env
    token = env.get("ELOQUA_ACCESS_TOKEN", "").strip()
    company = env.get("ELOQUA_COMPANY", "").strip()
    username = env.get("ELOQUA_USERNAME", "").strip()
    password = env.get("ELOQUA_PASSWORD", "")
    if not token:
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
                " Company\\Username), or ELOQUA_ACCESS_TOKEN for an OAuth2 token."
                " To try the tool without Eloqua, add --sandbox."
            )
    base_url = env.get("ELOQUA_BASE_URL", "").strip() or None
    login_url = env.get("ELOQUA_LOGIN_URL", "").strip() or DEFAULT_LOGIN_URL
    if base_url:
        base_url = check_url(base_url, "ELOQUA_BASE_URL")
    login_url = check_url(login_url, "ELOQUA_LOGIN_URL")
    return Connection(
        credentials=Credentials(company, username, password, token),
        base_url=base_url,
        login_url=login_url,
    )


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether any ELOQUA_* credential is set (a dry run without them works offline)."""
    env = os.environ if env is None else env
    names = ("ELOQUA_ACCESS_TOKEN", "ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD")
    return any(env.get(name, "").strip() for name in names)


def check_url(url: str, what: str) -> str:
    """Return ``url`` without a trailing slash; refuse plain http except to loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must be a URL like https://secure.p03.eloqua.com, not {url!r}")
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
