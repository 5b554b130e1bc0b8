"""The details digests stored in ledgers never change: the fast paths of Identity.details()
write exactly what the JSON encoder always wrote (earlier ledgers must still say what differs).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from importer import identity
from importer.fields import Lookup
from importer.identity import IDENTITY_FIELDS, identify

# The implementation before the fast paths, verbatim: the reference for every payload below.
_REFERENCE = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=identity._lookup_key
)


def reference_details(payload: dict[str, Any]) -> str:
    def canonical(name: str, value: Any) -> str:
        if type(value) is str:
            return "s" + value
        if name == "fieldValues" and isinstance(value, list):
            value = sorted(_REFERENCE.encode(item) for item in value)
        return _REFERENCE.encode(value)

    def digest(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()

    return _REFERENCE.encode(
        {
            name: digest(canonical(name, value))
            for name, value in payload.items()
            if name not in IDENTITY_FIELDS
        }
    )


BASE = {
    "name": "Spring Expo 2026 - Booth B00",
    "assetName": "Spring Expo 2026",
    "assetType": "Tradeshow",
    "activityType": "Visited Booth",
    "activityDate": "1778500800",
    "contactId": 2001,
    "campaignId": 37,
    "fieldValues": [
        {"type": "FieldValue", "id": "12", "value": "B00"},
        {"type": "FieldValue", "id": "13", "value": 7},
    ],
}

TEXTS = [
    "",
    "B00",
    "Hall 2",
    'a "quote"',
    "back\\slash",
    "tab\tnew\nline",
    "\x00\x1f",
    "Ünïcødé ✓",
    "😀",
]
VALUES: list[Any] = [*TEXTS, 0, 37, -5, 2**70, True, False, None, 1.5, float("inf"), [1, "x"]]
VALUES += [{"b": 1, "a": "x"}, Lookup("campaign", "Spring Launch")]


def random_payload(rng: random.Random) -> dict[str, Any]:
    payload: dict[str, Any] = {name: BASE[name] for name in IDENTITY_FIELDS}
    names = ["name", "campaignId", "fieldValues", "zeta", 'odd "name"', "ñame", "a\nb"]
    names.append("{br}ace{0}")  # a format's braces, in a name
    rng.shuffle(names)
    for name in names[: rng.randint(0, len(names))]:
        if name == "fieldValues" and rng.random() < 0.8:
            items: list[Any] = []
            for _ in range(rng.randint(0, 4)):
                item = {
                    "type": "FieldValue",
                    "id": rng.choice(["12", "13", 14]),
                    "value": rng.choice(VALUES),
                }
                if rng.random() < 0.2:
                    item = dict(reversed(list(item.items())))  # another key order
                if rng.random() < 0.1:
                    item = {**item, "extra key": rng.choice(VALUES)}
                items.append(item if rng.random() < 0.95 else rng.choice(VALUES))
            payload[name] = items
        else:
            payload[name] = rng.choice(VALUES)
    return payload


def test_details_are_byte_identical_to_the_encoders_for_varied_payloads():
    rng = random.Random(15)
    for _ in range(3000):
        payload = random_payload(rng)
        assert identify(payload).details() == reference_details(payload), payload
        # Twice: the second answer comes from the digest cache.
        assert identify(payload).details() == reference_details(payload), payload


def test_details_of_a_known_payload_are_those_earlier_ledgers_hold():
    # Computed by the encoder-only implementation, as stored in existing ledgers.
    assert identify(BASE).details() == (
        '{"campaignId":"db6b38a2832f4275","fieldValues":"29180dd9b69e64f8",'
        '"name":"ab98089a1312713e"}'
    )
    swapped = {**BASE, "fieldValues": list(reversed(BASE["fieldValues"]))}
    assert identify(swapped).details() == identify(BASE).details()


def test_details_with_lookups_unicode_and_non_text_values_match_the_encoder():
    payload = {
        **BASE,
        "campaignId": Lookup("campaign", "Spring"),
        "name": 'Ünïcode "q" \\ \n',
        "extra": [1.5, None, True],
        "flag": True,
        "count": 1,
        "ratio": 1.0,
    }
    assert identify(payload).details() == reference_details(payload)
    # 1, 1.0 and True are different values: a cache must never mix them up.
    for value in (1, 1.0, True, "1", [1], None):
        changed = {**BASE, "campaignId": value}
        assert identify(changed).details() == reference_details(changed)


def test_long_values_are_digested_without_being_kept():
    long = "x" * 10_000
    payload = {**BASE, "name": long}
    assert identify(payload).details() == reference_details(payload)
    assert "s" + long not in identity._DIGESTS
