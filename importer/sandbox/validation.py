"""Eloqua-style validation of the bodies the sandbox accepts.

Every check collects its problem instead of stopping at the first one, so a 400 lists all of
them at once, as Eloqua does. Errors have Eloqua's shape::

    {"type": "ObjectValidationError", "property": "contactId",
     "requirement": {"type": "IdRequirement"}, "value": "0"}
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

# Eloqua documents these requirement types; the two External* ones are ours, named after the
# missing setup ("Asset Type not found" / "Activity Type not found" in Eloqua's status codes).
NOT_NULL = "NotNullRequirement"
ID = "IdRequirement"
DATE = "DateRequirement"
TEXT = "TextRequirement"
LIST = "ListRequirement"
EMAIL = "EmailAddressRequirement"
UNIQUE = "UniquenessRequirement"
ASSET_TYPE = "ExternalAssetTypeRequirement"
ACTIVITY_TYPE = "ExternalActivityTypeRequirement"

# Epoch seconds between 1900-01-01 and 9999-12-31: catches milliseconds sent by mistake.
_MIN_EPOCH = -2_208_988_800
_MAX_EPOCH = 253_402_300_799
_EPOCH_TEXT = re.compile(r"-?\d{1,15}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Errors = list[dict[str, Any]]


class BodyError(ValueError):
    """The request body is not a JSON object; ``errors`` is the 400 body to send."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.errors: Errors = [
            {"type": "ParsingError", "message": "There was a parsing error.", "detail": detail}
        ]


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a UTF-8 JSON object body or raise BodyError."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(str(exc)) from exc
    if not isinstance(body, dict):
        raise BodyError(f"expected a JSON object, got {type(body).__name__}")
    return body


def object_error(prop: str, requirement: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    """One ObjectValidationError in Eloqua's shape (value rendered as text, like Eloqua)."""
    error: dict[str, Any] = {
        "type": "ObjectValidationError",
        "property": prop,
        "requirement": {"type": requirement, **extra},
    }
    if value is not None:
        error["value"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return error


def parse_id(value: Any) -> int | None:
    """An Eloqua id: an integer > 0, or a string of digits. ``2001.0`` is not an id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def parse_epoch(value: Any) -> int | None:
    """Unix epoch seconds as a string (or an integer), within years 1900..9999."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and _MIN_EPOCH <= value <= _MAX_EPOCH:
        return value
    return None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Checker:
    """Collects errors while reading properties from one body."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.errors: Errors = []

    def text(self, prop: str, *, required: bool) -> str | None:
        value = self.body.get(prop)
        if _blank(value):
            if required:
                self.errors.append(object_error(prop, NOT_NULL, value))
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.errors.append(object_error(prop, TEXT, value))
            return None
        return str(value)

    def known_id(self, prop: str, known: Collection[int], *, required: bool) -> int | None:
        value = self.body.get(prop)
        if _blank(value):
            if required:
                self.errors.append(object_error(prop, NOT_NULL, value))
            return None
        number = parse_id(value)
        if number is None or number not in known:
            self.errors.append(object_error(prop, ID, value))
            return None
        return number

    def one_of(self, prop: str, value: str | None, allowed: Collection[str], kind: str) -> bool:
        if value is None:
            return False
        if value not in allowed:
            self.errors.append(object_error(prop, kind, value, values=sorted(allowed)))
            return False
        return True


def _field_values(check: _Checker) -> list[dict[str, str]] | None:
    items = check.body.get("fieldValues")
    if items is None:
        return None
    if not isinstance(items, list):
        check.errors.append(object_error("fieldValues", LIST, items))
        return None
    result = []
    for index, item in enumerate(items):
        where = f"fieldValues[{index}]"
        if not isinstance(item, dict):
            check.errors.append(object_error(where, NOT_NULL, item))
            continue
        field_id = parse_id(item.get("id"))
        if field_id is None:
            check.errors.append(object_error(f"{where}.id", ID, item.get("id")))
        value = item.get("value")
        if value is None or isinstance(value, bool | dict | list):
            check.errors.append(object_error(f"{where}.value", NOT_NULL, value))
        elif field_id is not None:
            result.append({"type": "FieldValue", "id": str(field_id), "value": str(value)})
    return result


def validate_activity(
    body: Mapping[str, Any],
    asset_types: Mapping[str, Collection[str]],
    contact_ids: Collection[int],
    campaign_ids: Collection[int],
) -> tuple[dict[str, Any], Errors]:
    """Check an external activity body; return (the activity's properties, errors).

    The properties are only meaningful when errors is empty. Unknown properties are ignored,
    as Eloqua ignores them.
    """
    check = _Checker(body)
    asset_type = check.text("assetType", required=True)
    activity_type = check.text("activityType", required=True)
    if check.one_of("assetType", asset_type, asset_types, ASSET_TYPE) and asset_type:
        check.one_of("activityType", activity_type, asset_types[asset_type], ACTIVITY_TYPE)
    asset_name = check.text("assetName", required=True)
    name = check.text("name", required=False)
    date_value = body.get("activityDate")
    epoch = parse_epoch(date_value)
    if _blank(date_value):
        check.errors.append(object_error("activityDate", NOT_NULL, date_value))
    elif epoch is None:
        check.errors.append(object_error("activityDate", DATE, date_value))
    contact_id = check.known_id("contactId", contact_ids, required=True)
    campaign_id = check.known_id("campaignId", campaign_ids, required=False)
    field_values = _field_values(check)

    activity: dict[str, Any] = {
        "type": "ExternalActivities",
        "depth": "complete",
        "name": name if name is not None else asset_name,
        "activityDate": str(epoch),
        "activityType": activity_type,
        "assetName": asset_name,
        "assetType": asset_type,
        "contactId": contact_id,
    }
    if campaign_id is not None:
        activity["campaignId"] = campaign_id
    if field_values is not None:
        activity["fieldValues"] = field_values
    return activity, check.errors


def validate_contact(body: Mapping[str, Any], known_emails: Collection[str]) -> Errors:
    """Check a new contact body; ``known_emails`` are casefolded existing addresses."""
    check = _Checker(body)
    email = check.text("emailAddress", required=True)
    check.text("firstName", required=False)
    check.text("lastName", required=False)
    if email is not None:
        if not _EMAIL.fullmatch(email.strip()):
            check.errors.append(object_error("emailAddress", EMAIL, email))
        elif email.strip().casefold() in known_emails:
            check.errors.append(object_error("emailAddress", UNIQUE, email))
    return check.errors
