"""Before the first row is sent: reach Eloqua, check the credentials, and check that what the
mapping names (asset types, activity types, a constant campaign) exists there.

Finding out now costs a few reads; finding out from thousands of rejected rows costs an hour
and a results file full of the same error. A base URL that redirects is refused here (exit 2):
redirects are never followed, so every create would come back redirected.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from importer.config import Connection
from importer.eloqua import (
    ASSET_TYPES_PATH,
    ApiResponse,
    EloquaClient,
    LocalAnswer,
    discover_site,
    fetch_identity,
    shown_location,
)
from importer.errors import AbortedError, AuthError, ConfigError, RowError, SetupError
from importer.fields import Lookup
from importer.ledger import ledger_site
from importer.mapping import Mapping
from importer.status import Status

#: Seconds to wait for /id when it only names the company behind a token.
IDENTITY_TIMEOUT = 10.0


@dataclass
class Catalog:
    """The external asset types set up in Eloqua, with their activity types.

    ``types`` is None when Eloqua would not list them (the checks are then left to Eloqua).
    """

    types: dict[str, list[str]] | None = None
    _folded: dict[str, str] = field(default_factory=dict)
    # Per asset type, its activity types by folded name: built once, not once per row.
    _allowed: dict[str, dict[str, str]] = field(default_factory=dict)
    # (asset type, activity type) as given -> as Eloqua spells them, for pairs that passed.
    _checked: dict[tuple[Any, Any], tuple[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._folded = {name.casefold(): name for name in self.types or {}}
        self._allowed = {
            asset: {name.casefold(): name for name in activities}
            for asset, activities in (self.types or {}).items()
        }

    def check(self, payload: dict[str, Any]) -> None:
        """Row-level check of column-driven types; fixes the case to Eloqua's spelling.

        Raises RowError naming the valid choices.
        """
        if self.types is None:
            return
        given = payload["assetType"], payload["activityType"]
        if given[0].__class__ is not str or given[1].__class__ is not str:
            self._check(payload)
            return
        known = self._checked.get(given)  # a file repeats a handful of pairs
        if known is not None:
            payload["assetType"], payload["activityType"] = known
            return
        self._check(payload)
        if len(self._checked) < 1024:
            self._checked[given] = payload["assetType"], payload["activityType"]

    def _check(self, payload: dict[str, Any]) -> None:
        assert self.types is not None
        asset = self._folded.get(str(payload["assetType"]).casefold())
        if asset is None:
            raise RowError(
                f"assetType {payload['assetType']!r} is not set up in Eloqua; the external asset"
                f" types are: {', '.join(self.types)}",
                value=payload["assetType"],
                code="unknown-asset-type",
            )
        payload["assetType"] = asset
        if not self.types[asset]:
            return  # Eloqua listed no activity types for it: leave the check to Eloqua
        activity = self._allowed[asset].get(str(payload["activityType"]).casefold())
        if activity is None:
            raise RowError(
                f"activityType {payload['activityType']!r} is not set up for the asset type"
                f" {asset!r}; its activity types are: {', '.join(self.types[asset])}",
                value=payload["activityType"],
                code="unknown-activity-type",
            )
        payload["activityType"] = activity

    def describe(self) -> str:
        if self.types is None:
            return "  (Eloqua did not list the external asset types)"
        if not self.types:
            return "  (none: set them up in Eloqua under Settings > Assets > External Assets)"
        return "\n".join(
            f"  {asset}: {', '.join(activities) or '(no activity types)'}"
            for asset, activities in self.types.items()
        )


async def connect(
    session: aiohttp.ClientSession, connection: Connection
) -> tuple[EloquaClient, str, Catalog]:
    """Resolve the base URL, check the credentials, read the asset types; name the instance.

    The name keys the ledger: the pod's host and the company (many companies share a pod).
    """
    credentials = connection.credentials
    auth = connection.authenticator()
    try:
        if connection.base_url:
            base_url, company = connection.base_url, credentials.company
        else:
            base_url, company = await discover_site(session, connection.login_url, auth)
        client = EloquaClient(session, base_url, auth)
        answer = await client.list_all(ASSET_TYPES_PATH)
    except (aiohttp.ClientError, TimeoutError) as exc:
        where = connection.base_url or connection.login_url
        raise AbortedError(
            f"could not reach Eloqua at {where} ({type(exc).__name__}: {exc}); check the URL"
            " and your network, then run the same command again. Nothing was sent."
        ) from None
    if answer.status == 401:
        raise AuthError(
            f"Eloqua did not accept the credentials for {auth.describe()} at"
            f" {base_url}: {auth.advice()}. Nothing was sent."
        )
    if answer.redirect:
        raise _redirecting_base(base_url, connection, answer)
    if isinstance(answer, LocalAnswer):  # no token could be had (the login service is down)
        raise AbortedError(f"{answer.body}; try again later. Nothing was sent.")
    if not company:  # a token with an explicit base URL: ask /id which company it is
        company = await _company_of_token(session, connection)
    if not company:
        # The ledger must know the company, or it could not recognise rows already created.
        raise ConfigError(
            f"with ELOQUA_ACCESS_TOKEN and ELOQUA_BASE_URL the importer asks"
            f" {connection.login_url}/id which company the token belongs to, and it did not"
            " answer; set ELOQUA_COMPANY to your Eloqua company name. Nothing was sent."
        )
    return client, ledger_site(base_url, company), _catalog(answer.status, answer.body)


def _redirecting_base(base_url: str, connection: Connection, answer: ApiResponse) -> ConfigError:
    origin = "ELOQUA_BASE_URL" if connection.base_url else f"{connection.login_url}/id"
    return ConfigError(
        f"the Eloqua base URL {base_url} (from {origin}) answered {answer.status}, a redirect to"
        f" {shown_location(answer)}. Redirects are never followed (a redirected create could be"
        " lost or sent to another server): set ELOQUA_BASE_URL to the address your Eloqua"
        " answers on, e.g. https://secure.p03.eloqua.com. Nothing was sent."
    )


async def _company_of_token(session: aiohttp.ClientSession, connection: Connection) -> str:
    try:
        async with asyncio.timeout(IDENTITY_TIMEOUT):
            identity = await fetch_identity(
                session, connection.login_url, connection.authenticator()
            )
    except (aiohttp.ClientError, TimeoutError, AuthError):
        return ""
    site = identity.get("site")
    return str(site.get("name") or "") if isinstance(site, dict) else ""


def _catalog(status: int, body: Any) -> Catalog:
    if status != 200 or not isinstance(body, dict):
        return Catalog(None)
    types: dict[str, list[str]] = {}
    for element in body.get("elements") or []:
        if isinstance(element, dict) and element.get("name"):
            activities = element.get("activityTypes") or []
            types[str(element["name"])] = [
                str(a.get("name") if isinstance(a, dict) else a)
                for a in activities
                if (a.get("name") if isinstance(a, dict) else a)
            ]
    # An empty list tells nothing usable (an instance without types accepts no activity at
    # all): leave the checks to Eloqua's answers rather than refuse every row.
    return Catalog(types or None)


def check_constants(mapping: Mapping, catalog: Catalog) -> None:
    """Constant asset/activity types that are not set up: exit 2 before anything is sent."""
    if catalog.types is None:
        return
    asset_spec = mapping.fields["assetType"]
    activity_spec = mapping.fields["activityType"]
    if asset_spec.kind != "value":
        return
    asset = str(asset_spec.source)
    known = {name.casefold(): name for name in catalog.types}
    if asset.casefold() not in known:
        raise SetupError(
            f"{mapping.path}: assetType {asset!r} is not set up in Eloqua{_closest(asset, known)}."
            f" The external asset types there:\n{catalog.describe()}\nFix the mapping, or set the"
            " asset type up in Eloqua (Settings > Assets > External Assets). Nothing was sent."
        )
    activities = catalog.types[known[asset.casefold()]]
    if activities and activity_spec.kind == "value" and activity_spec.value_map is None:
        activity = str(activity_spec.source)
        if activity.casefold() not in {a.casefold() for a in activities}:
            raise SetupError(
                f"{mapping.path}: activityType {activity!r} is not set up for the asset type"
                f" {known[asset.casefold()]!r}; its activity types are:"
                f" {', '.join(activities) or '(none)'}. Nothing was sent."
            )


async def check_campaign(mapping: Mapping, resolve: Any) -> None:
    """A constant campaign looked up by name must exist before anything is sent."""
    spec = mapping.fields.get("campaignId")
    if spec is None or spec.lookup != "campaign" or spec.kind != "value":
        return
    from importer.lookup import LookupFailed

    try:
        await resolve(Lookup("campaign", str(spec.source).strip()))
    except LookupFailed as exc:
        if exc.status == Status.FAILED:  # Eloqua did not answer: not the mapping's fault
            raise AbortedError(f"{exc}. Nothing was sent.") from None
        raise SetupError(f"{mapping.path}: campaignId: {exc}. Nothing was sent.") from None


def _closest(name: str, known: dict[str, str]) -> str:
    close = difflib.get_close_matches(name.casefold(), list(known), n=1)
    return f" (did you mean {known[close[0]]!r}?)" if close else ""
