"""What an activity is: its identity key, field digests, whole-payload fingerprint, and the
in-file duplicate check.

An activity is identified by what it is (:func:`identify`): the contact, asset type, asset
name, activity type and date. The ledger keys its entries by that (plus the site), the
pipeline finds in-file duplicates by it (:class:`FirstSeen`), and ``ledger adopt`` rebuilds it
from a results file. The other fields are kept as short digests so a rerun can say what
differs. Invariant: these functions' output is stored in ledgers; changing how any of them
canonicalises or hashes would make earlier runs' ledgers stop recognising their activities.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import IO, Any


@dataclass(frozen=True, slots=True)
class Identity:
    """What the ledger knows an activity by (see :func:`identify`), with its payload.

    The digests of the payload's other fields and its whole-payload fingerprint are computed
    only when the ledger needs them (a claim; legacy entries), not for every row read.
    """

    key: bytes  # site aside: contact, asset type, asset name, activity type, date
    payload: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def details(self) -> str:
        """JSON {field: digest} of the fields outside the identity, to say which differ."""
        return "" if self.payload is None else _details(self.payload)

    def legacy(self) -> bytes | None:
        """The schema 0/1 key: the fingerprint of the whole payload."""
        return None if self.payload is None else fingerprint(self.payload)


#: The fields that say what an activity is. Anything else (name, campaignId, fieldValues) may
#: change between runs without making it another activity.
IDENTITY_FIELDS = ("contactId", "assetType", "assetName", "activityType", "activityDate")


def identify(payload: dict[str, Any]) -> Identity:
    """What the ledger and the in-file duplicate check know an activity by.

    The key covers IDENTITY_FIELDS only (the site is the ledger's other key column). Asset and
    activity types compare without case or repeated spaces (Eloqua's names are, and the
    preflight fixes the case to Eloqua's spelling); the asset name compares exactly, trimmed; a
    contact id compares as text ("42" is 42). A value still to be looked up (an email) counts
    by its normalised key, so rows with one email are one activity before the lookup too.
    """
    get = payload.get  # IDENTITY_FIELDS, in order, spelled out: this runs once per row
    contact, date = get("contactId"), get("activityDate")
    text = "\x1f".join(  # a separator no field holds: one tuple, one text
        (
            # The common cases inline (an id, a date as text): what _identity_text gives them.
            str(contact) if contact.__class__ is int else _identity_text(contact),
            _folded_name(get("assetType")),
            str(get("assetName")).strip(),
            _folded_name(get("activityType")),
            date.strip() if date.__class__ is str else _identity_text(date),
        )
    )
    return Identity(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest(), payload)


# A file holds a handful of asset and activity type names: each is folded once, not per row.
_FOLDED: dict[Any, str] = {}
_FOLDED_SIZE = 4096


def _folded_name(value: Any) -> str:
    """A type name without case or repeated spaces."""
    if value.__class__ is not str:  # e.g. None: str(None) folds to "none", as it always did
        return " ".join(str(value).casefold().split())
    found = _FOLDED.get(value)
    if found is None:
        found = " ".join(value.casefold().split())
        if len(_FOLDED) >= _FOLDED_SIZE:
            _FOLDED.clear()
        _FOLDED[value] = found
    return found


def _identity_text(value: Any) -> str:
    if value.__class__ is str:  # the common case first: a date, a contact id as text
        return value.strip()
    if value is None:
        return "\x00"  # absent (an invalid row never gets here; tests may)
    if getattr(value, "cache_key", None) is not None:
        return _lookup_key(value)
    return str(value).strip()


def _details(payload: dict[str, Any]) -> str:
    names = []
    digests = []
    for name, value in payload.items():
        if name not in _IDENTITY_SET:
            names.append(name)
            digests.append(_digest(_canonical_field(name, value)))
    shape = tuple(names)
    template = _TEMPLATES.get(shape)
    if template is None:
        template = _template(shape)
    if template:
        return template.format(*digests)
    return _CANONICAL.encode(dict(zip(names, digests, strict=True)))


_IDENTITY_SET = frozenset(IDENTITY_FIELDS)
#: The details' JSON for each shape of payload (its other fields' names, in order), as a
#: format of the digests: a mapping makes one or two shapes, and the encoder costs
#: microseconds a row. "": a shape the encoder writes (a name JSON must escape).
_TEMPLATES: dict[tuple[str, ...], str] = {}
_TEMPLATES_SIZE = 256


def _template(shape: tuple[str, ...]) -> str:
    """What _CANONICAL writes for {name: digest} (sorted, no spaces), as a format."""
    template = ""
    if all(name.__class__ is str and encode_basestring(name) == f'"{name}"' for name in shape):
        fields = sorted((name, position) for position, name in enumerate(shape))
        items = ",".join(
            f'"{name.replace("{", "{{").replace("}", "}}")}":"{{{position}}}"'
            for name, position in fields
        )
        template = "{{" + items + "}}"
    if len(_TEMPLATES) >= _TEMPLATES_SIZE:
        _TEMPLATES.clear()
    _TEMPLATES[shape] = template
    return template


def _canonical_field(name: str, value: Any) -> str:
    if value.__class__ is str:
        return "s" + value  # the common case, without the JSON encoder
    if value.__class__ is int:
        return int.__repr__(value)  # what the encoder writes for an int (not a bool)
    if name == "fieldValues" and isinstance(value, list):
        # Their order is the mapping's, not the activity's.
        items = sorted([_canonical_item(item) for item in value])
        return "[" + ",".join([encode_basestring(item) for item in items]) + "]"
    return _CANONICAL.encode(value)


def _canonical_item(item: Any) -> str:
    """``_CANONICAL.encode(item)``; a field value as the mapping makes it (type, id and a text
    or int value) and other dicts of text keys and text or int values written here, in the
    encoder's sorted, separator-tight form."""
    if item.__class__ is not dict:
        return _CANONICAL.encode(item)
    if len(item) == 3:
        kind, key, value = item.get("type"), item.get("id"), item.get("value")
        if kind.__class__ is str and key.__class__ is str:
            if value.__class__ is str:
                value = encode_basestring(value)
            elif value.__class__ is int:
                value = int.__repr__(value)
            else:
                return _CANONICAL.encode(item)
            kind, key = encode_basestring(kind), encode_basestring(key)
            return f'{{"id":{key},"type":{kind},"value":{value}}}'
    if not all(key.__class__ is str for key in item):
        return _CANONICAL.encode(item)
    parts = []
    for key, value in sorted(item.items()):
        if value.__class__ is str:
            text = encode_basestring(value)
        elif value.__class__ is int:
            text = int.__repr__(value)
        else:
            return _CANONICAL.encode(item)
        parts.append(encode_basestring(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


#: Digests of recent canonical texts: a file repeats its campaigns, field values and names.
_DIGESTS: dict[str, str] = {}
_DIGESTS_SIZE = 4096
_DIGEST_LONGEST = 256  # longer texts are rarely repeated: not kept


def _digest(text: str) -> str:
    found = _DIGESTS.get(text)
    if found is None:
        found = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
        if len(text) <= _DIGEST_LONGEST:
            if len(_DIGESTS) >= _DIGESTS_SIZE:
                _DIGESTS.clear()
            _DIGESTS[text] = found
    return found


def differing(created: str | None, now: str) -> tuple[str, ...]:
    """The fields whose digests differ (nothing known: none)."""
    if not created or not now:
        return ()
    before, after = json.loads(created), json.loads(now)
    return tuple(sorted(name for name in {*before, *after} if before.get(name) != after.get(name)))


def fingerprint(payload: dict[str, Any]) -> bytes:
    """The schema 0/1 key: a digest of the whole canonical payload (see legacy_activities).

    A value still to be looked up (an email) counts by its normalised key, so two rows with the
    same email are the same activity before the lookup, too.
    """
    canonical = _CANONICAL.encode(payload)
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()


def _lookup_key(value: Any) -> str:
    cache_key = getattr(value, "cache_key", None)
    if cache_key is None:
        raise TypeError(f"cannot fingerprint {value!r}")
    return "lookup:" + ":".join(cache_key)


# One encoder for every row: json.dumps with options builds a new one per call. Changing
# these options would change every fingerprint, and so what earlier runs' ledgers recognise.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_lookup_key
)


class FirstSeen:
    """The row that first had each fingerprint (in-file duplicates), in bounded memory.

    A dict of every fingerprint costs about 120 bytes a row (120 MB per million rows). Here the
    most recent ``in_memory`` fingerprints stay in a dict; older ones move to a private
    temporary file on disk (removed on close), behind a fixed-size Bloom filter so that a new
    fingerprint rarely costs a disk lookup. The file is written as it is cheapest, unindexed:
    a fingerprint the filter may have seen is looked for by reading the file through. Most
    files repeat few rows that far apart; once ``SCANS_BEFORE_INDEX`` lookups went to the file,
    its entries move to a private SQLite database with a bounded page cache, indexed.
    """

    BLOOM_BITS = 1 << 27  # 16 MiB: under 1% false positives up to about 10 million rows
    #: Lookups answered by reading the spill file through before it is indexed (about 10 ms
    #: each per million rows spilled; indexing a million costs about 3 s).
    SCANS_BEFORE_INDEX = 8
    _KEY = 16  # bytes of a fingerprint in the spill file (identify's keys are this long)
    _READ = 1 << 20  # fingerprints read at a time when the file is read through

    def __init__(self, in_memory: int = 100_000, cache_kib: int = 16_384) -> None:
        self._recent: dict[bytes, int] = {}
        self._in_memory = in_memory
        self._cache_kib = cache_kib
        #: The spill file: per spill, its fingerprints then its rows (8-byte integers).
        self._file: IO[bytes] | None = None
        self._spills: list[tuple[int, int]] = []  # (offset in the file, fingerprints)
        self._scans = 0
        self._db: sqlite3.Connection | None = None
        self._bloom = bytearray()

    def first(self, fingerprint: bytes, row: int) -> int:
        """The row that first had ``fingerprint``: ``row`` itself when it is new."""
        first = self._recent.get(fingerprint)
        if first is not None:
            return first
        bloom = self._bloom
        if bloom:  # something was spilled
            # The Bloom filter's test, inline: it runs for every new row once the dict spilled.
            one, two, three = self._bits(fingerprint)
            if (
                bloom[one >> 3] & (1 << (one & 7))
                and bloom[two >> 3] & (1 << (two & 7))
                and bloom[three >> 3] & (1 << (three & 7))
            ):
                found = self._spilled(fingerprint)
                if found is not None:
                    return found
        self._recent[fingerprint] = row
        if len(self._recent) >= self._in_memory:
            self._spill()
        return row

    def _spilled(self, fingerprint: bytes) -> int | None:
        """The row of a spilled fingerprint, from the database or the spill file."""
        if self._db is None and self._scans >= self.SCANS_BEFORE_INDEX:
            self._index()
        if self._db is not None:
            found = self._db.execute(
                "SELECT row FROM seen WHERE fingerprint = ?", (_sized(fingerprint),)
            ).fetchone()
            return None if found is None else found[0]
        self._scans += 1
        return self._read_through(_sized(fingerprint))

    def _read_through(self, key: bytes) -> int | None:
        assert self._file is not None
        size = self._KEY
        for offset, count in self._spills:
            for start in range(0, count, self._READ):
                self._file.seek(offset + start * size)
                keys = self._file.read(min(self._READ, count - start) * size)
                position = keys.find(key)
                while position >= 0 and position % size:  # found across two fingerprints
                    position = keys.find(key, position + 1)
                if position >= 0:
                    self._file.seek(offset + count * size + (start + position // size) * 8)
                    return int.from_bytes(self._file.read(8), "little", signed=True)
        return None

    def _spill(self) -> None:
        if not self._bloom:
            self._bloom = bytearray(self.BLOOM_BITS // 8)
        if self._db is not None:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO seen VALUES (?, ?)",
                ((_sized(fingerprint), row) for fingerprint, row in self._recent.items()),
            )
            self._db.execute("COMMIT")
        else:
            self._append(self._recent)
        bloom = self._bloom
        mask = self.BLOOM_BITS - 1
        for fingerprint in self._recent:
            whole = int.from_bytes(fingerprint[0:12])  # as _bits, inline (100,000 a spill)
            one, two, three = (whole >> 64) & mask, (whole >> 32) & mask, whole & mask
            bloom[one >> 3] |= 1 << (one & 7)
            bloom[two >> 3] |= 1 << (two & 7)
            bloom[three >> 3] |= 1 << (three & 7)
        self._recent = {}

    def _append(self, entries: dict[bytes, int]) -> None:
        """Entries to the end of the spill file: two writes, no per-entry work in Python."""
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        keys = b"".join(entries)
        if len(keys) != len(entries) * self._KEY:  # not all of identify's length (tests)
            keys = b"".join(_sized(fingerprint) for fingerprint in entries)
        rows = array.array("q", entries.values())
        if sys.byteorder != "little":
            rows.byteswap()
        offset = self._file.seek(0, os.SEEK_END)
        self._file.write(keys)
        self._file.write(rows.tobytes())
        self._spills.append((offset, len(entries)))

    def _index(self) -> None:
        """The spill file's entries into a private SQLite database, indexed; the file goes."""
        db = sqlite3.connect("", isolation_level=None)  # "": a private temp file
        db.execute(f"PRAGMA cache_size = -{self._cache_kib}")
        # A private file that is gone with the process: no rollback journal, no syncing.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE seen (fingerprint BLOB PRIMARY KEY, row INTEGER) WITHOUT ROWID")
        assert self._file is not None
        size = self._KEY
        for offset, count in self._spills:
            self._file.seek(offset)
            keys = self._file.read(count * size)
            rows = array.array("q", self._file.read(count * 8))
            if sys.byteorder != "little":
                rows.byteswap()
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO seen VALUES (?, ?)",
                ((keys[n * size : (n + 1) * size], rows[n]) for n in range(count)),
            )
            db.execute("COMMIT")
        self._db = db
        self._file.close()
        self._file = None
        self._spills = []

    def _bits(self, fingerprint: bytes) -> tuple[int, int, int]:
        # A fingerprint is a hash already: three 32-bit slices of it are three independent
        # positions (read as one number: one call, not three; the filter lives in memory only).
        mask = self.BLOOM_BITS - 1
        whole = int.from_bytes(fingerprint[0:12])
        return (whole >> 64) & mask, (whole >> 32) & mask, whole & mask

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _sized(fingerprint: bytes) -> bytes:
    """A fingerprint as the spill file holds it: identify's 16-byte keys as they are."""
    if len(fingerprint) == FirstSeen._KEY:
        return fingerprint
    return hashlib.blake2b(fingerprint, digest_size=FirstSeen._KEY).digest()
