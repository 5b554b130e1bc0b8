"""The two reference clients the importer is measured against; run as child processes.

    python benchmarks/clients.py bare  URL CSV --rows N --concurrency C
    python benchmarks/clients.py naive URL CSV --rows N

Both first build every payload with the importer's own mapping (so the bodies are byte for
byte what the importer sends), then post them; only the posting is timed and its CPU counted.
They print one JSON line: {"rows", "created", "wall", "cpu"}.

- ``bare``: the practical limit of this machine: aiohttp, one keep-alive pool of ``C``
  connections, ``C`` workers posting prebuilt bytes. No ledger, no results file, no retries.
- ``naive``: what people write by hand: a loop posting one row at a time, each with its own
  connection (``urllib.request``, as ``requests.post`` without a session does).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp  # here, not in the timed posting (importing it takes about 0.15 s of CPU)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from importer.loader import open_table  # noqa: E402
from importer.mapping import load_mapping  # noqa: E402

ACTIVITY_PATH = "/api/REST/2.0/data/activity"
AUTHORIZATION = "Basic " + base64.b64encode(b"Sandbox\\api.user:sandbox").decode()
HEADERS = {
    "Authorization": AUTHORIZATION,
    "Accept": "application/json",
    "Content-Type": "application/json; charset=utf-8",
}


def prebuilt_bodies(csv_path: Path, mapping_path: Path, rows: int) -> list[bytes]:
    mapping = load_mapping(mapping_path)
    bodies = []
    with open_table(csv_path) as table:
        mapping.bind(table.header, file=str(csv_path))
        for row in table.rows:
            if len(bodies) == rows:
                break
            payload = mapping.payload(row)
            bodies.append(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    return bodies


async def post_concurrently(url: str, bodies: list[bytes], concurrency: int) -> int:
    created = 0
    pending = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def worker() -> None:
            nonlocal created
            for body in pending:  # one shared iterator: each body is taken once
                async with session.post(url + ACTIVITY_PATH, data=body) as answer:
                    await answer.read()
                    created += answer.status == 201

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return created


def post_one_at_a_time(url: str, bodies: list[bytes]) -> int:
    created = 0
    for body in bodies:
        request = urllib.request.Request(url + ACTIVITY_PATH, data=body, headers=HEADERS)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                answer.read()
                created += answer.status == 201
        except urllib.error.HTTPError:
            pass
    return created


def _settle_allocator() -> None:
    """Free one large block, as a process that has run a while (the importer, at startup) has.

    glibc's malloc hands memory back to the system whenever more than 128 KB is free at the top
    of its heap, until a large block freed raises that bar. Before that, posting the same rows
    costs some 15% more CPU (page faults as the heap shrinks and grows with the requests): an
    accident of what this process happened to import, not the posting's cost.
    """
    bytearray(4 << 20)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("bare", "naive"))
    parser.add_argument("url")
    parser.add_argument("csv", type=Path)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--mapping", type=Path, default=ROOT / "mappings" / "attendees.yaml")
    args = parser.parse_args()
    bodies = prebuilt_bodies(args.csv, args.mapping, args.rows)
    _settle_allocator()
    cpu, started = _cpu(), time.monotonic()
    if args.kind == "bare":
        created = asyncio.run(post_concurrently(args.url, bodies, args.concurrency))
    else:
        created = post_one_at_a_time(args.url, bodies)
    wall, cpu = time.monotonic() - started, _cpu() - cpu
    print(json.dumps({"rows": len(bodies), "created": created, "wall": wall, "cpu": cpu}))


if __name__ == "__main__":
    main()
