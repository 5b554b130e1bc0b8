"""The web page's server (``eloqua-import ui``): aiohttp routes over the library, nothing more.

The page (``static/``) calls JSON routes; each one is a few lines over ``importer.infer``
(header row, suggested mapping, date formats), ``importer.loader.peek_rows`` (the preview),
``importer.mapping`` (reading YAML) and the library API (``jobs.JobBoard``: Check = a dry run,
Import = a run). Credentials stay in this process: the page only learns the site's name.

Invariants: see ``security`` (token, Host, CSRF); an upload is streamed to a private folder
(0700) under a name this server chose, refused past ``upload_limit``; a mapping is saved only
as a plain file name inside the mappings folder, never over an existing one unless asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import tempfile
import uuid
import webbrowser
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from aiohttp import BodyPartReader, web

from importer.config import Connection, connection_from_env
from importer.dates import DateError, load_timezone, to_epoch_seconds
from importer.eloqua import open_session
from importer.errors import ImporterError
from importer.infer import InitOptions, locate_table, render_yaml, suggest_mapping
from importer.ledger import LedgerLocation, default_ledger_path
from importer.loader import peek_rows
from importer.mapping import cell_text, read_mapping_document
from importer.preflight import connect
from importer.ui import security
from importer.ui.jobs import Busy, JobBoard, Upload

DEFAULT_UPLOAD_LIMIT = 200 * 1024 * 1024
PREVIEW_ROWS = 50  # rows shown under the header
PEEK_LIMIT = 1000  # rows read to find the header
SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".ods")
_MAPPING_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,100}\.ya?ml$")
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
CHUNK = 256 * 1024


@dataclass
class UiOptions:
    host: str = "127.0.0.1"
    port: int = 0
    mappings: Path = Path("mappings")
    sandbox: bool = False
    sandbox_config: Any = None  # importer.sandbox.server.SandboxConfig, for tests
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    state: Path | None = None  # where imports' results go; default beside the ledger
    ledger: LedgerLocation | None = None  # default: the CLI's (a private one with --sandbox)
    open_browser: bool = True


class UiServer:
    """The page's server for the duration of an ``async with``; ``url`` holds the token."""

    def __init__(self, options: UiOptions) -> None:
        self.options = options
        self.token = security.new_token()
        self.url = ""
        self.port = 0
        self.sandbox: Any = None  # the SandboxServer with --sandbox
        self.connection: Connection | None = None
        self.connection_info: dict[str, Any] = {}
        self.catalog: dict[str, list[str]] | None = None
        self.uploads: dict[str, Upload] = {}
        self.board: JobBoard | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._hosts: frozenset[str] | None = frozenset()

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> UiServer:
        options = self.options
        self._scratch = tempfile.TemporaryDirectory(prefix="eloqua-import-ui-")
        scratch = Path(self._scratch.name)
        scratch.chmod(0o700)
        ledger = options.ledger
        if options.sandbox:
            await self._start_sandbox()
            # Sandbox activities must never enter the real ledger (it would then skip them).
            ledger = ledger or scratch / "sandbox-ledger.sqlite3"
        else:
            self._connection_from_env()
        state = options.state or default_ledger_path().parent / "ui-imports"
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        assert self.connection is not None or self.connection_info
        self.board = JobBoard(state, self.connection, ledger, options.sandbox)  # type: ignore[arg-type]
        app = web.Application(
            middlewares=[security.guard(self.token, lambda: self._hosts)],
            client_max_size=1024 * 1024,  # JSON bodies; uploads are streamed past it
        )
        _routes(app, self)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, options.host, options.port).start()
        self.port = self._runner.addresses[0][1]
        self._hosts = security.allowed_hosts(options.host, self.port)
        shown = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/?token={self.token}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.board is not None:
            await self.board.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.sandbox is not None:
            await self.sandbox.__aexit__(None, None, None)
        if self._scratch is not None:
            self._scratch.cleanup()

    async def _start_sandbox(self) -> None:
        from importer.api import sandbox_connection
        from importer.sandbox.server import SandboxServer

        self.sandbox = await SandboxServer(self.options.sandbox_config).__aenter__()
        self.connection = sandbox_connection(self.sandbox.base_url)
        self.catalog = {k: list(v) for k, v in self.sandbox.state.asset_types.items()}
        self.connection_info = {"ok": True, "sandbox": True, "label": "Sandbox"}

    def _connection_from_env(self) -> None:
        try:
            self.connection = connection_from_env()
        except ImporterError as exc:
            self.connection_info = {"ok": False, "sandbox": False, "message": str(exc)}

    async def describe_connection(self) -> dict[str, Any]:
        """Which Eloqua, checked once (credentials, asset types); the page shows it."""
        if self.connection_info or self.connection is None:
            return self.connection_info
        credentials = self.connection.credentials
        try:
            async with open_session(1) as session:
                client, _, catalog = await connect(session, self.connection)
        except ImporterError as exc:
            return {"ok": False, "sandbox": False, "message": str(exc)}
        self.catalog = catalog.types
        self.connection_info = {
            "ok": True,
            "sandbox": False,
            "label": f"{credentials.describe()} at {client.base_url}",
        }
        return self.connection_info

    def upload_dir(self) -> Path:
        assert self._scratch is not None
        folder = Path(self._scratch.name) / "uploads"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder


# --- routes ---------------------------------------------------------------------------------


def _routes(app: web.Application, ui: UiServer) -> None:
    async def index(request: web.Request) -> web.Response:
        html = _static("index.html").replace("{{TOKEN}}", ui.token)
        html = html.replace("{{LIMIT}}", _megabytes(ui.options.upload_limit))
        return web.Response(text=html, content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in types:
            raise web.HTTPNotFound()
        return web.Response(text=_static(name), content_type=types[name])

    async def connection(request: web.Request) -> web.Response:
        info = await ui.describe_connection()
        return web.json_response({**info, "catalog": ui.catalog, "limit": ui.options.upload_limit})

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/connection", connection)
    app.router.add_post("/api/upload", _bound(_upload, ui))
    app.router.add_post("/api/preview", _bound(_preview, ui))
    app.router.add_get("/api/mappings", _bound(_mapping_list, ui))
    app.router.add_post("/api/mapping", _bound(_mapping_open, ui))
    app.router.add_post("/api/suggest", _bound(_suggest, ui))
    app.router.add_post("/api/parse", _parse)
    app.router.add_post("/api/render", _render)
    app.router.add_post("/api/dates", _bound(_dates, ui))
    app.router.add_post("/api/save", _bound(_save, ui))
    app.router.add_post("/api/check", _bound(_start, ui, "check"))
    app.router.add_post("/api/import", _bound(_start, ui, "import"))
    app.router.add_post("/api/jobs/{id}/stop", _bound(_stop, ui))
    app.router.add_get("/api/jobs", _bound(_jobs, ui))
    app.router.add_get("/api/jobs/{id}", _bound(_job, ui))
    app.router.add_get("/api/jobs/{id}/events", _bound(_events, ui))
    app.router.add_get("/api/jobs/{id}/{file:results|errors}.csv", _bound(_download, ui))


def _bound(function: Any, *args: Any) -> Any:
    """A route handler calling ``function(request, *args)``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await function(request, *args)

    return handler


def _static(name: str) -> str:
    return resources.files("importer.ui").joinpath("static", name).read_text(encoding="utf-8")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _problem(message: str, status: int = 400, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def _upload_of(body: dict[str, Any], ui: UiServer) -> Upload:
    upload = ui.uploads.get(str(body.get("upload", "")))
    if upload is None:
        raise web.HTTPNotFound(text="that file is no longer here: choose it again")
    return upload


def _sheet(body: dict[str, Any]) -> str | int | None:
    sheet = body.get("sheet")
    return sheet if isinstance(sheet, str) and sheet else None


def _header_row(body: dict[str, Any]) -> int | None:
    row = body.get("header_row")
    return row if isinstance(row, int) and not isinstance(row, bool) and row >= 1 else None


async def _upload(request: web.Request, ui: UiServer) -> web.Response:
    """Stream the file part to disk under a new name; refuse past the size limit."""
    try:
        part = await _file_part(request)
    except ValueError:  # no boundary, or none found: a 400, not a 500 and a traceback
        part = None
    if part is None:
        return _problem("no file in the upload: send it as a form (multipart/form-data)")
    name = Path(part.filename or "upload").name  # only ever shown
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        return _problem(f"{name}: choose a CSV, XLSX, XLS or ODS file (not {suffix or 'no type'})")
    upload_id = uuid.uuid4().hex
    path = ui.upload_dir() / f"{upload_id}{suffix}"
    digest, size = hashlib.sha256(), 0
    with path.open("xb") as out:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > ui.options.upload_limit:
                out.close()
                path.unlink()
                limit = _megabytes(ui.options.upload_limit)
                return _problem(f"{name} is larger than the limit of {limit}", status=413)
            digest.update(chunk)
            out.write(chunk)
    path.chmod(0o600)
    ui.uploads[upload_id] = Upload(upload_id, name, path, size, digest.hexdigest())
    return await _preview_of(ui.uploads[upload_id], None, None)


async def _file_part(request: web.Request) -> BodyPartReader | None:
    """The form's ``file`` part, or None; ValueError for a body that is no form at all."""
    if request.content_type != "multipart/form-data":
        return None
    reader = await request.multipart()
    part = await reader.next()
    while part is not None and getattr(part, "name", None) != "file":
        part = await reader.next()
    return part if isinstance(part, BodyPartReader) else None


async def _preview(request: web.Request, ui: UiServer) -> web.Response:
    body = await _json(request)
    return await _preview_of(_upload_of(body, ui), _sheet(body), _header_row(body))


async def _preview_of(
    upload: Upload, sheet: str | int | None, header_row: int | None
) -> web.Response:
    try:
        return await asyncio.to_thread(_read_preview, upload, sheet, header_row)
    except ImporterError as exc:
        return _problem(str(exc).replace(str(upload.path), upload.name), upload=upload.id)


def _read_preview(upload: Upload, sheet: str | int | None, header_row: int | None) -> web.Response:
    """The first rows from the header down; the sheet and header row as ``init`` finds them."""
    found, detected, why = locate_table(upload.path, sheet=sheet)
    peek = peek_rows(upload.path, sheet=found, limit=PEEK_LIMIT)
    chosen = header_row or detected
    shown = peek.rows[chosen - 1 : chosen + PREVIEW_ROWS] if peek.rows else []
    return web.json_response(
        {
            "upload": upload.id,
            "name": upload.name,
            "size": upload.size,
            "sheets": peek.sheets,
            "sheet": peek.sheet,
            "detected_header_row": detected,
            "header_why": why,
            "header_row": chosen,
            "rows": [[number, [_cell(c) for c in cells]] for number, cells in shown],
        }
    )


def _cell(value: Any) -> str:
    return "" if value is None else cell_text(value)


async def _mapping_list(request: web.Request, ui: UiServer) -> web.Response:
    return web.json_response({"folder": str(ui.options.mappings), "names": _mapping_names(ui)})


def _mapping_names(ui: UiServer) -> list[str]:
    folder = ui.options.mappings
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and _MAPPING_NAME.match(p.name))


async def _mapping_open(request: web.Request, ui: UiServer) -> web.Response:
    body = await _json(request)
    name = str(body.get("name", ""))
    if name not in _mapping_names(ui):  # a name from the list, never a path
        return _problem(f"no mapping called {name!r} in {ui.options.mappings}", status=404)
    text = (ui.options.mappings / name).read_text(encoding="utf-8-sig")
    return _document_answer(text, name)


def _document_answer(text: str, where: str) -> web.Response:
    try:
        document = read_mapping_document(text, where)
    except ImporterError as exc:
        return web.json_response({"yaml": text, "document": None, "problem": str(exc)})
    return web.json_response({"yaml": text, "document": document, "problem": ""})


async def _suggest(request: web.Request, ui: UiServer) -> web.Response:
    body = await _json(request)
    upload = _upload_of(body, ui)
    options = InitOptions(sheet=_sheet(body), header_row=_header_row(body), catalog=ui.catalog)
    try:
        suggestion = await asyncio.to_thread(suggest_mapping, upload.path, options)
    except ImporterError as exc:
        return _problem(str(exc).replace(str(upload.path), upload.name))
    suggestion.input_name = upload.name
    stem = Path(upload.name).stem or "mapping"
    text = render_yaml(suggestion, f"{_safe_stem(stem)}.yaml")
    answer = {
        "yaml": text,
        "document": suggestion.document(),
        "problem": "",
        "placeholders": suggestion.placeholders,
        "why": {item.name: item.why for item in suggestion.fields},
        "choices": {item.name: item.choices for item in suggestion.fields if item.choices},
        "name": f"{_safe_stem(stem)}.yaml",
    }
    return web.json_response(answer)


def _safe_stem(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "mapping"


async def _parse(request: web.Request) -> web.Response:
    """The YAML a person typed -> the form's data (or the reason it cannot be read)."""
    body = await _json(request)
    return _document_answer(str(body.get("yaml", "")), "the mapping")


async def _render(request: web.Request) -> web.Response:
    """The form's data -> YAML, in the mapping's usual order."""
    body = await _json(request)
    document = body.get("document")
    if not isinstance(document, dict):
        return _problem("expected the mapping as an object")
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return web.json_response({"yaml": text})


async def _dates(request: web.Request, ui: UiServer) -> web.Response:
    """The first values of a column read with a format in a zone: local time and UTC."""
    body = await _json(request)
    upload = _upload_of(body, ui)
    column, fmt = str(body.get("column", "")), str(body.get("format", ""))
    try:
        zone = load_timezone(str(body.get("timezone") or "UTC"))
    except ValueError as exc:
        return web.json_response({"values": [], "problem": str(exc)})
    header_row = _header_row(body) or 1
    peek = await asyncio.to_thread(peek_rows, upload.path, sheet=_sheet(body), limit=header_row + 5)
    if len(peek.rows) < header_row:
        return web.json_response({"values": [], "problem": "no rows under the header"})
    header = [_cell(c) for c in peek.rows[header_row - 1][1]]
    if column not in header:
        return web.json_response({"values": [], "problem": f"no column {column!r}"})
    index = header.index(column)
    values = []
    for _, cells in peek.rows[header_row:]:
        value = cells[index] if index < len(cells) else None
        values.append(_date_preview(value, fmt, zone))
    return web.json_response({"values": values, "problem": ""})


def _date_preview(value: Any, fmt: str, zone: Any) -> dict[str, str]:
    import datetime as dt

    shown = _cell(value)
    try:
        seconds = to_epoch_seconds(value, formats=(fmt,) if fmt else (), tz=zone)
    except DateError as exc:
        return {"value": shown, "local": "", "utc": "", "problem": str(exc)}
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return {
        "value": shown,
        "local": moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        "utc": moment.strftime("%Y-%m-%d %H:%M UTC"),
        "problem": "",
    }


async def _save(request: web.Request, ui: UiServer) -> web.Response:
    """Write the mapping into the mappings folder; an existing file only when asked."""
    body = await _json(request)
    name, text = str(body.get("name", "")).strip(), str(body.get("yaml", ""))
    if not _MAPPING_NAME.match(name):
        return _problem(
            "name the mapping like attendees.yaml: letters, digits, spaces, . _ - and .yaml"
        )
    try:
        read_mapping_document(text, name)
    except ImporterError as exc:
        return _problem(str(exc))
    folder = ui.options.mappings
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists() and body.get("overwrite") is not True:
        return _problem(f"{target} exists already; replace it?", status=409, exists=True)
    partial = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return web.json_response({"saved": str(target), "name": name})


async def _start(request: web.Request, ui: UiServer, kind: str) -> web.Response:
    body = await _json(request)
    upload = _upload_of(body, ui)
    try:
        document = read_mapping_document(str(body.get("yaml", "")), "the mapping")
    except ImporterError as exc:
        return _problem(str(exc))
    if not isinstance(document, dict):
        return _problem("the mapping is empty: choose one or use the suggested one")
    if ui.connection is None:
        return _problem(ui.connection_info.get("message") or "no connection to Eloqua")
    name = str(body.get("mapping_name") or "MAPPING.yaml")
    if name in _mapping_names(ui):  # the command line names it where run finds it
        name = str(ui.options.mappings / name)
    assert ui.board is not None
    try:
        job = ui.board.start(kind, upload, document, name, _sheet(body), _header_row(body))
    except Busy as exc:
        return _problem(str(exc), status=409)
    return web.json_response(job.snapshot())


def _job_of(request: web.Request, ui: UiServer) -> Any:
    assert ui.board is not None
    job = ui.board.jobs.get(request.match_info["id"])
    if job is None:
        raise web.HTTPNotFound(text="no such import running in this window of the server")
    return job


async def _stop(request: web.Request, ui: UiServer) -> web.Response:
    job = _job_of(request, ui)
    assert ui.board is not None
    ui.board.stop(job)
    return web.json_response(job.snapshot())


async def _jobs(request: web.Request, ui: UiServer) -> web.Response:
    assert ui.board is not None
    return web.json_response({"jobs": ui.board.recent()})


async def _job(request: web.Request, ui: UiServer) -> web.Response:
    job = _job_of(request, ui)
    return web.json_response({**job.snapshot(), "rows": job.rows})


async def _events(request: web.Request, ui: UiServer) -> web.StreamResponse:
    """Server-sent events: the job's snapshot and its new rows, until it ends."""
    job = _job_of(request, ui)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", **security.SECURITY_HEADERS}
    )
    await response.prepare(request)
    sent = 0
    async for _ in _changes(job):
        rows = job.rows[sent:]
        sent += len(rows)
        data = {**job.snapshot(), "rows": rows}
        try:
            await response.write(f"data: {_dumps(data)}\n\n".encode())
        except ConnectionError:
            break  # the tab closed: the job runs on, a new tab follows it from the start
        if job.state in ("finished", "failed"):
            break
    return response


async def _changes(job: Any) -> AsyncIterator[None]:
    """Yield at once, then on each change (at most ~4 times a second), until the job ends."""
    while True:
        job.changed.clear()
        yield
        if job.state in ("finished", "failed"):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.changed.wait(), timeout=15)
        await asyncio.sleep(0.25)


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, default=str)


async def _download(request: web.Request, ui: UiServer) -> web.StreamResponse:
    assert ui.board is not None
    job_id, which = request.match_info["id"], request.match_info["file"]
    folder = ui.board.folder_of(job_id) if _ID.match(job_id) else None
    if folder is None or not (folder / f"{which}.csv").is_file():
        raise web.HTTPNotFound(text=f"no {which} file for that import")
    stem = Path(ui.board.jobs[job_id].upload.name).stem if job_id in ui.board.jobs else "import"
    return web.FileResponse(
        folder / f"{which}.csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_safe_stem(stem)}.{which}.csv"',
            "Content-Type": "text/csv; charset=utf-8",
        },
    )


# --- the command ----------------------------------------------------------------------------


def serve(options: UiOptions, announce: Any = print) -> None:
    """Run until Ctrl-C (``eloqua-import ui``); imports in flight stop gracefully."""

    async def run() -> None:
        async with UiServer(options) as ui:
            announce(f"The import page is at {ui.url}")
            announce("Keep this window open while imports run; Ctrl-C stops the page.")
            # "mappings/" is relative to where the command was started: say which folder.
            announce(f"Mapping files are read from and saved to {options.mappings.resolve()}")
            if options.open_browser:
                with contextlib.suppress(Exception):  # no browser (a server): the URL is printed
                    webbrowser.open(ui.url)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


__all__ = ["DEFAULT_UPLOAD_LIMIT", "UiOptions", "UiServer", "serve"]
