"""The command line: parse arguments, call the pipeline, turn exceptions into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# What `run` uses, and no more: each other command imports its own modules in its function
# (tests/test_cli_run.py checks that a run loads none of them), so a run starts quickly.
from importer.api import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    MAX_CONCURRENCY,
    import_file_async,
)
from importer.errors import AuthError, ConfigError, ExitStatus, ImporterError
from importer.report import default_results_path

if TYPE_CHECKING:
    import aiohttp
    from tqdm import tqdm

    from importer.config import Connection

PROG = "eloqua-import"

RUN_EXAMPLES = """\
examples:
  # try it on the built-in sandbox (no Eloqua account needed)
  eloqua-import run samples/attendees.csv --mapping mappings/attendees.yaml --sandbox

  # check every row first, send nothing
  eloqua-import run attendees.csv --mapping mappings/attendees.yaml --dry-run

  # the real thing (credentials come from the environment, never the command line)
  export ELOQUA_COMPANY=Acme ELOQUA_USERNAME=api.user
  read -rs ELOQUA_PASSWORD && export ELOQUA_PASSWORD
  eloqua-import run attendees.xlsx --mapping mappings/webinar.yaml --results out.csv

  # the same in Windows PowerShell
  $env:ELOQUA_COMPANY = 'Acme'; $env:ELOQUA_USERNAME = 'api.user'
  $env:ELOQUA_PASSWORD = Read-Host -MaskInput 'Eloqua password'
  eloqua-import run attendees.xlsx --mapping mappings/webinar.yaml --results out.csv
"""

SANDBOX_EXAMPLES = """\
examples:
  eloqua-import sandbox --port 8080
  eloqua-import sandbox --rate-500 0.1 --rate-429 0.05 --drop-rate 0.03 --seed 1

Then point the importer at it:
  export ELOQUA_BASE_URL=http://127.0.0.1:8080 ELOQUA_COMPANY=Sandbox
  export ELOQUA_USERNAME=api.user ELOQUA_PASSWORD=sandbox

OAuth2 against it (app sandbox-client / sandbox-secret; tokens renewing every 50 requests):
  eloqua-import sandbox --port 8080 --token-requests 50
  export ELOQUA_LOGIN_URL=http://127.0.0.1:8080 ELOQUA_BASE_URL=http://127.0.0.1:8080
  export ELOQUA_CLIENT_ID=sandbox-client ELOQUA_CLIENT_SECRET=sandbox-secret
  export ELOQUA_TOKEN_FILE=/tmp/sandbox-token.json   # keep the real token file apart
  eloqua-import login --port 0
"""

LOGIN_EXAMPLES = """\
examples:
  export ELOQUA_CLIENT_ID=...        # Eloqua: Settings > AppCloud Developer > your app
  read -rs ELOQUA_CLIENT_SECRET && export ELOQUA_CLIENT_SECRET
  eloqua-import login                # then log in in the browser that opens

  eloqua-import login --no-browser   # on a server: open the printed address elsewhere

The app's OAuth callback URL in Eloqua must be http://127.0.0.1:8765/callback (or the --port
you use). The tokens go to the token file (ELOQUA_TOKEN_FILE, default: oauth-token.json in
the per-user state folder, beside the ledger); run and watch renew them from then on.
"""


EXAMPLES = """\
examples:
  # try it on the built-in sandbox (no Eloqua account needed)
  eloqua-import run samples/attendees.csv --mapping mappings/attendees.yaml --sandbox

  # your own export: write a mapping, check every row, then import
  eloqua-import check
  eloqua-import init attendees.csv --asset-type Tradeshow --activity-type "Visited Booth"
  eloqua-import run attendees.csv --mapping attendees.yaml --dry-run
  eloqua-import run attendees.csv --mapping attendees.yaml

Run 'eloqua-import COMMAND --help' for a command's options and examples.
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``command``, one that knows that command alone (all
    ``main`` needs when the arguments start with it, at a sixth of the cost)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Create Oracle Eloqua External Activities from CSV and Excel files.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add in _COMMANDS.items():
        if command in (None, name):
            add(commands)
    return parser


def _command_named(argv: Sequence[str] | None) -> str | None:
    """The command the arguments start with; None for anything else (--help, a typo), which
    the whole parser answers."""
    words = sys.argv[1:] if argv is None else argv
    return words[0] if words and words[0] in _COMMANDS else None


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="import one CSV or XLSX file",
        description="Import one CSV or XLSX file: one External Activity per row.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", type=Path, metavar="INPUT", help="the .csv or .xlsx file")
    run.add_argument("--mapping", type=Path, required=True, help="the YAML mapping file")
    run.add_argument(
        "--results",
        type=Path,
        help="results CSV (default: <input name>.results.csv in the current folder); an"
        " earlier file there is kept, renamed with its time",
    )
    run.add_argument(
        "--errors",
        type=Path,
        help="rows not created, ready to fix and import again"
        " (default: <input name>.errors.csv, written only when needed)",
    )
    run.add_argument("--sheet", help="Excel sheet name or number (overrides the mapping)")
    run.add_argument(
        "--header-row", type=_positive_int, metavar="N", help="row holding the column names"
    )
    run.add_argument("--encoding", help="CSV text encoding, e.g. utf-8, cp1252 (default: detect)")
    run.add_argument("--delimiter", help="CSV delimiter, e.g. ';' (default: detect)")
    run.add_argument(
        "--dry-run", action="store_true", help="read, map and check every row; send nothing"
    )
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="send to a built-in Eloqua-compatible sandbox instead of Eloqua",
    )
    run.add_argument(
        "--retry-uncertain",
        action="store_true",
        help="send again rows an earlier run left 'uncertain' (check in Eloqua first)",
    )
    run.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="DANGEROUS: send rows the ledger says were already created; Eloqua cannot"
        " delete the duplicates this makes",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_sending_options(run)


def _add_sending_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that send: run and watch."""
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="requests in flight, at most 64 (default 8; fewer while Eloqua throttles)",
    )
    parser.add_argument(
        "--ledger",
        type=_ledger_location,
        metavar="PATH|URL",
        help="idempotency ledger: what was already created; a file, or postgresql://USER@HOST"
        "/DB for one ledger several machines share (default: $ELOQUA_IMPORT_LEDGER, else a"
        " per-user state file, see the README; with run --sandbox a temporary one)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="the longest one request may take, its whole answer included (default 120); a"
        " request that times out after sending is reported 'uncertain', not resent",
    )
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


INIT_EXAMPLES = """\
examples:
  # a Zoom attendee report: writes zoom-attendees.yaml in the current folder
  eloqua-import init zoom-attendees.csv --asset-type Webinar --activity-type Attended \\
      --asset-name "Spring Product Launch" --timezone America/New_York

  # then check every row without sending, and import
  eloqua-import run zoom-attendees.csv --mapping zoom-attendees.yaml --dry-run
  eloqua-import run zoom-attendees.csv --mapping zoom-attendees.yaml

What the file cannot tell (asset type, activity type, time zone, sometimes the event name) is
written as a <FILL IN ...> placeholder, with the choices Eloqua has when credentials (or
--sandbox) are given; 'run' refuses a mapping until every placeholder is replaced.
"""


def _add_init(commands: argparse._SubParsersAction) -> None:
    init = commands.add_parser(
        "init",
        help="write a starter mapping from a spreadsheet",
        description="Look at a CSV or Excel export and write a starter mapping for it: where"
        " the column names are (below any report preamble), which column holds the email or"
        " contact id, the dates and their format, the event and campaign, placeholder cells"
        " and rows to leave out. Every line of the file is commented.",
        epilog=INIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument(
        "input", type=Path, metavar="INPUT", help="the .csv, .xlsx, .xls or .ods file"
    )
    init.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="MAPPING.yaml",
        help="where to write the mapping (default: <input name>.yaml in the current folder);"
        " an existing file is never overwritten without --force",
    )
    init.add_argument("--asset-type", metavar="T", help="External Asset Type, e.g. Webinar")
    init.add_argument("--activity-type", metavar="A", help="activity type, e.g. Attended")
    init.add_argument("--asset-name", metavar="N", help="the event or webinar name")
    init.add_argument(
        "--timezone", metavar="Z", help="zone the times were written in, e.g. Europe/Paris"
    )
    init.add_argument("--sheet", help="Excel sheet name or number (default: the longest table)")
    init.add_argument(
        "--header-row",
        type=_positive_int,
        metavar="N",
        help="row holding the column names (default: found)",
    )
    init.add_argument(
        "--sandbox",
        action="store_true",
        help="list the built-in sandbox's asset and activity types (instead of Eloqua's)",
    )
    init.add_argument("--force", action="store_true", help="overwrite the output file")
    init.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


CHECK_EXAMPLES = """\
examples:
  export ELOQUA_COMPANY=Acme ELOQUA_USERNAME=api.user
  read -rs ELOQUA_PASSWORD && export ELOQUA_PASSWORD
  eloqua-import check

  eloqua-import check --sandbox      # what the built-in sandbox has set up
  eloqua-import check --sandbox --contacts   # ... with every one of its contacts
"""


def _add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check the credentials and list the asset and activity types",
        description="Check the credentials (from the environment) and print the auth in use"
        " (Basic, bearer token, OAuth2 password grant or refresh chain) and when its access"
        " token expires, the site, the user, the base URL, and the external asset types with"
        " their activity types. The first command to run against a new Eloqua instance.",
        epilog=CHECK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--sandbox", action="store_true", help="check the built-in sandbox")
    check.add_argument(
        "--contacts",
        action="store_true",
        help="with --sandbox: list every contact it holds (id, email, name)",
    )
    check.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


def _add_login(commands: argparse._SubParsersAction) -> None:
    from importer.auth import DEFAULT_LOGIN_PORT

    login = commands.add_parser(
        "login",
        help="log in to Eloqua with OAuth2 (once); tokens then renew themselves",
        description="Log in to Eloqua through the browser (OAuth2 authorization code grant)"
        " and store the tokens in the token file, so run and watch can renew them for"
        " months without a password. Needs ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET.",
        epilog=LOGIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument(
        "--port",
        type=int,
        default=DEFAULT_LOGIN_PORT,
        help=f"port on 127.0.0.1 for Eloqua's redirect (default {DEFAULT_LOGIN_PORT}; 0: any"
        " free port, for apps whose callback URL allows it)",
    )
    login.add_argument("--no-browser", action="store_true", help="only print the address to open")
    login.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="seconds to wait for the login in the browser (default 300)",
    )
    login.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


def _add_watch(commands: argparse._SubParsersAction) -> None:
    examples = """\
examples:
  # cron, every 5 minutes (an overlapping run never takes a file twice)
  */5 * * * *  eloqua-import watch /srv/drops/expo --mapping /srv/drops/expo.yaml --once

  # long-running (e.g. a systemd service); stops cleanly on SIGTERM
  eloqua-import watch /srv/drops/expo --mapping /srv/drops/expo.yaml --log-format json

Files go INBOX -> INBOX/processing/ -> INBOX/done/ (every row created, already created or
duplicate) or INBOX/failed/ (anything else), each with <name>.results.csv beside it.
Exit status with --once: 0 all went to done/, 1 some went to failed/, 2 usage or mapping
problem, 3 stopped (Eloqua unreachable, credentials refused, outage), 130 interrupted.
"""

    def seconds(text: str) -> float:  # 0 allowed: files dropped by a rename are complete
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
        return value

    watch = commands.add_parser(
        "watch",
        help="import every file dropped into a folder",
        description="Import each .csv/.xlsx/.xlsm/.xls/.ods file dropped into INBOX once it has"
        " stopped changing, exactly once, then move it to done/ or failed/ with its results. Names"
        " starting with '.' or '~$' are ignored: upload as .name.csv, then rename.",
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("inbox", type=Path, metavar="INBOX", help="the folder files are dropped in")
    watch.add_argument("--mapping", type=Path, required=True, help="the YAML mapping file")
    watch.add_argument(
        "--once", action="store_true", help="process what is there now, then exit (for cron)"
    )
    watch.add_argument(
        "--interval",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds between looks at the inbox (default 60)",
    )
    watch.add_argument(
        "--settle",
        type=seconds,
        default=5.0,
        metavar="S",
        help="a file must keep its size and time for S seconds before it is taken (default 5)",
    )
    watch.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="events on stderr as readable text (default) or one JSON object per line",
    )
    watch.add_argument(
        "--status-file",
        type=Path,
        metavar="PATH",
        help="keep this JSON file up to date for a monitor: last pass, files done/failed, rows"
        " by status, last error, token expiry (replaced atomically)",
    )
    _add_sending_options(watch)


LEDGER_EXAMPLES = """\
examples:
  # the ledger was lost: rebuild it from the last run's results, then rerun safely
  eloqua-import ledger adopt attendees.results.csv --mapping mappings/attendees.yaml
  eloqua-import run attendees.csv --mapping mappings/attendees.yaml

  # move the per-user ledger file into PostgreSQL (password from PGPASSWORD or ~/.pgpass)
  eloqua-import ledger copy ~/.local/state/eloqua-import/ledger.sqlite3 \
      postgresql://importer@db.example.com/eloqua_import
"""


def _add_ledger(commands: argparse._SubParsersAction) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="repair or move the idempotency ledger (adopt a results file, copy)",
        description="Maintain the idempotency ledger: the record of what was already created.",
        epilog=LEDGER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = ledger.add_subparsers(dest="action", metavar="ACTION", required=True)
    adopt = actions.add_parser(
        "adopt",
        help="record the rows a results file shows created",
        description="Record in the ledger every row a results file shows created or"
        " already_created, with its activity id, so that a rerun does not send it again. For"
        " a ledger that was lost or never had them (another machine or user). Reads from"
        " Eloqua (credentials from the environment) to name the site and resolve lookups;"
        " sends nothing.",
        epilog=LEDGER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    adopt.add_argument(
        "results", type=Path, metavar="RESULTS.csv", help="a results file written by run/watch"
    )
    adopt.add_argument("--mapping", type=Path, required=True, help="the YAML mapping the run used")
    adopt.add_argument(
        "--ledger",
        type=_ledger_location,
        metavar="PATH|URL",
        help="the ledger to record into: a file or a postgresql:// URL (default:"
        " $ELOQUA_IMPORT_LEDGER, else the per-user state file, see the README)",
    )
    adopt.add_argument("--sandbox", action="store_true", help="adopt for the built-in sandbox")
    adopt.add_argument("--traceback", action="store_true", help="show tracebacks of errors")
    copy = actions.add_parser(
        "copy",
        help="copy a ledger between a file and PostgreSQL",
        description="Copy every entry of the ledger SRC into DST (created if missing): a"
        " SQLite file into PostgreSQL or back. Nothing in DST is overwritten (a pending entry"
        " only takes SRC's answer); running it again adds nothing. A DST holding entries SRC"
        " does not know is refused unless --merge. Stop imports using SRC first.",
        epilog=LEDGER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    copy.add_argument("source", type=_ledger_location, metavar="SRC", help="file or postgresql://")
    copy.add_argument("target", type=_ledger_location, metavar="DST", help="file or postgresql://")
    copy.add_argument(
        "--merge",
        action="store_true",
        help="copy into a DST that has entries of its own (an entry created in either stays"
        " created)",
    )
    copy.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


def _add_sandbox(commands: argparse._SubParsersAction) -> None:
    from importer.sandbox import seed  # plain constants: cheap, and the help shows them

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the Eloqua-compatible sandbox",
        description="Serve an Eloqua-compatible sandbox on this machine, for trying and testing"
        " imports. Credentials: company Sandbox, user api.user, password sandbox (or the"
        " bearer token sandbox-token; OAuth2 app sandbox-client, secret sandbox-secret).",
        epilog=SANDBOX_EXAMPLES + "\n" + seed.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    sandbox.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    for code in ("500", "429", "503"):
        sandbox.add_argument(
            f"--rate-{code}",
            type=_fraction,
            default=0.0,
            metavar="R",
            help=f"fraction (0-1) of activity creations answered {code}",
        )
    sandbox.add_argument(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        metavar="R",
        help="fraction of creations stored but answered by a dropped connection",
    )
    sandbox.add_argument(
        "--retry-after", type=int, metavar="S", help="send Retry-After: S with 429/503"
    )
    sandbox.add_argument("--seed", type=int, help="random seed for the faults")
    sandbox.add_argument(
        "--token-ttl",
        type=_positive_float,
        default=28800.0,
        metavar="S",
        help="seconds an OAuth2 access token lives (default 28800, as in Eloqua)",
    )
    sandbox.add_argument(
        "--token-requests",
        type=_positive_int,
        metavar="N",
        help="an OAuth2 access token expires after N API requests (for tests; keep N well"
        " above the importer's --concurrency, or a renewed token is spent before a request"
        " refused with the old one is sent again, and the run stops)",
    )
    sandbox.add_argument(
        "--capacity",
        type=_positive_int,
        metavar="N",
        help="answer 429 to an activity POST that arrives while more than N requests are in"
        " flight, as a server with room for N would (to try throttling)",
    )
    sandbox.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)


UI_EXAMPLES = """\
examples:
  eloqua-import ui --sandbox          # try the page on the built-in sandbox
  eloqua-import ui                    # the real Eloqua (credentials from the environment)
  eloqua-import ui --mappings ~/eloqua-mappings --port 8765 --no-browser
"""


def _add_ui(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser(
        "ui",
        help="open the import web page in your browser",
        description="Serve a web page on this computer to pick a spreadsheet, fit the mapping,"
        " check and import, and download the results. Only this computer can open it (a"
        " secret token is in the printed address); imports keep running if the tab closes.",
        epilog=UI_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ui.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    ui.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other computers can reach (they still need the token)",
    )
    ui.add_argument("--no-browser", action="store_true", help="print the address, open nothing")
    ui.add_argument(
        "--mappings",
        type=Path,
        default=Path("mappings"),
        help="mapping files folder (default: mappings/ in the current folder)",
    )
    ui.add_argument("--sandbox", action="store_true", help="import into a built-in sandbox")
    ui.add_argument(
        "--ledger",
        type=_ledger_location,
        metavar="PATH|URL",
        help="idempotency ledger, a file or a postgresql:// URL (default: as for run)",
    )
    ui.add_argument("--traceback", action="store_true", help="show tracebacks of errors")


#: Each command and the function adding it to the parser, in the order --help lists them.
_COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "run": _add_run,
    "init": _add_init,
    "check": _add_check,
    "login": _add_login,
    "watch": _add_watch,
    "ledger": _add_ledger,
    "sandbox": _add_sandbox,
    "ui": _add_ui,
}


def _ui(args: argparse.Namespace) -> int:
    from importer.config import is_loopback
    from importer.ui.server import UiOptions, serve

    if not is_loopback(args.host):
        if not args.allow_remote:
            raise ConfigError(
                f"--host {args.host} would let other computers reach the page; the import"
                " page is meant for this computer only. Add --allow-remote if you really want"
                " that (they still need the secret address it prints)."
            )
        print(
            f"{PROG}: warning: the page listens on {args.host}: anyone on the network with the"
            " printed address can import with your Eloqua credentials. Use it only on a"
            " network you trust.",
            file=sys.stderr,
        )
    options = UiOptions(
        host=args.host,
        port=args.port,
        mappings=args.mappings,
        sandbox=args.sandbox,
        ledger=args.ledger,
        open_browser=not args.no_browser,
    )
    serve(options, announce=lambda text: print(text, flush=True))
    return int(ExitStatus.OK)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; return the exit code (see errors.ExitStatus)."""
    stdout = stdout or sys.stdout
    try:
        args = build_parser(_command_named(argv)).parse_args(argv)
    except SystemExit:  # --help, or a usage error
        try:
            sys.stdout.flush()  # argparse prints --help there and ignores a closed pipe
        except BrokenPipeError:
            return _closed_pipe(sys.stdout)
        raise
    try:
        status = _command(args, stdout)
        stdout.flush()  # a reader that went away shows here, not as a warning at exit
        return status
    except BrokenPipeError:
        # `eloqua-import check | head -1`: the reader had enough. Stop quietly, as ls and git.
        return _closed_pipe(stdout)
    except ImporterError as exc:
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:
        if args.traceback:
            raise
        print(
            f"{PROG}: unexpected error: {type(exc).__name__}: {exc}\n"
            "Run the same command with --traceback for details, and please report it.",
            file=sys.stderr,
        )
        return int(ExitStatus.ABORTED)


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency everywhere but Windows and
    PyPy): at zero latency it saves about a tenth of the client's CPU per row. None: asyncio's
    own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _command(args: argparse.Namespace, stdout: TextIO) -> int:
    if args.command == "run":
        with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
            return runner.run(_run(args, stdout))
    if args.command == "check":
        return asyncio.run(_check(args, stdout))
    if args.command == "init":
        return asyncio.run(_init(args, stdout))
    if args.command == "watch":
        return _watch(args)
    if args.command == "ledger":
        return asyncio.run(_ledger(args, stdout))
    if args.command == "login":
        return asyncio.run(_login(args, stdout))
    if args.command == "ui":
        return _ui(args)
    return _sandbox(args)


def _closed_pipe(stdout: TextIO) -> int:
    """Point stdout at the null device so the flush at exit cannot fail again (as the Python
    docs on SIGPIPE advise); the exit code is what a shell shows for a tool that SIGPIPE ended."""
    try:
        fileno = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return int(ExitStatus.CLOSED_PIPE)  # not a real file (tests): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
    return int(ExitStatus.CLOSED_PIPE)


async def _run(args: argparse.Namespace, stdout: TextIO) -> int:
    # A dry run must not overwrite the results of a real run: it gets its own names.
    prefix = "dry-run." if args.dry_run else ""
    progress = ProgressBar(enabled=not args.quiet and sys.stderr.isatty())
    try:
        result = await import_file_async(
            args.input,
            mapping=args.mapping,
            results=args.results or default_results_path(args.input, prefix + "results"),
            errors=args.errors or default_results_path(args.input, prefix + "errors"),
            sheet=args.sheet,
            header_row=args.header_row,
            encoding=args.encoding,
            delimiter=args.delimiter,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
            sandbox=args.sandbox,
            ledger=args.ledger,
            retry_uncertain=args.retry_uncertain,
            allow_duplicates=args.allow_duplicates,
            timeout=args.timeout,
            collect=False,  # the results file has them; a big file must not fill memory
            on_progress=progress if progress.enabled else None,
            on_notice=_notice,
            handle_signals=True,
        )
    finally:
        progress.close()
    result.summary.reimport_options += _reimport_options(args)
    result.summary.rerun_options += _rerun_options(args)
    print(result.summary.render(), file=stdout)
    return int(result.exit_status)


class ProgressBar:
    """The run's progress bar on stderr, fed by the library's ``on_progress(done, total)``."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: tqdm | None = None  # created at the first row: no bar before an error

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None:
            from tqdm import tqdm  # here: a run without a terminal (cron, --quiet) needs none

            self._bar = tqdm(total=total, unit=" rows", file=sys.stderr, dynamic_ncols=True)
        if total != self._bar.total:
            # The estimate counts blank lines too: the last call ends the bar at 100%.
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _notice(text: str) -> None:
    # On a line of its own: the progress bar may be mid-line.
    print(f"\n{text}", file=sys.stderr)


def _reimport_options(args: argparse.Namespace) -> list[str]:
    """The options of this run the printed re-import command must repeat.

    Not repeated: --results/--errors (they would replace this run's files), --sheet and
    --encoding (the errors file is a UTF-8 CSV), and the deliberate risks --retry-uncertain and
    --allow-duplicates (to be chosen again, knowingly).
    """
    words = []
    if args.sandbox:
        words.append("--sandbox")  # else the leftovers of a trial would go to production
    if args.ledger is not None:
        words += ["--ledger", str(args.ledger)]
    if args.delimiter:
        words += ["--delimiter", args.delimiter]  # the errors file keeps the input's
    if args.concurrency != DEFAULT_CONCURRENCY:
        words += ["--concurrency", str(args.concurrency)]
    if args.timeout != DEFAULT_TIMEOUT:
        words += ["--timeout", f"{args.timeout:g}"]
    return words


def _rerun_options(args: argparse.Namespace) -> list[str]:
    """The options of this run, for the command that checks the same input again."""
    words = []
    for flag, value in (
        ("--results", args.results),
        ("--errors", args.errors),
        ("--sheet", args.sheet),
        ("--header-row", args.header_row),
        ("--encoding", args.encoding),
    ):
        if value is not None:
            words += [flag, str(value)]
    words += _reimport_options(args)
    words += ["--retry-uncertain"] * args.retry_uncertain
    words += ["--allow-duplicates"] * args.allow_duplicates
    return words


async def _ledger(args: argparse.Namespace, stdout: TextIO) -> int:
    from importer.adopt import adopt_results
    from importer.config import connection_from_env
    from importer.ledger import default_ledger
    from importer.sandbox.connection import sandbox_connection

    if args.action == "copy":
        from importer.ledger_copy import copy_ledger

        copied = await asyncio.to_thread(copy_ledger, args.source, args.target, merge=args.merge)
        print(copied.render(), file=stdout)
        return int(ExitStatus.OK)

    ledger_path = args.ledger or default_ledger()
    if args.sandbox:
        from importer.sandbox.server import SandboxServer

        async with SandboxServer() as server:
            connection = sandbox_connection(server.base_url)
            report = await adopt_results(args.results, args.mapping, ledger_path, connection)
    else:
        report = await adopt_results(args.results, args.mapping, ledger_path, connection_from_env())
    print(report.render(), file=stdout)
    return int(ExitStatus.ROWS_NOT_CREATED if report.unadoptable else ExitStatus.OK)


async def _check(args: argparse.Namespace, stdout: TextIO) -> int:
    from importer.config import connection_from_env
    from importer.sandbox.connection import sandbox_connection

    if args.contacts and not args.sandbox:
        raise ConfigError(
            "--contacts lists the built-in sandbox's contacts: add --sandbox (Eloqua's own"
            " contacts are not listed: there may be millions)"
        )
    if args.sandbox:
        from importer.sandbox.server import SandboxServer

        async with SandboxServer() as server:
            report = await _check_report(sandbox_connection(server.base_url))
        from importer.sandbox import seed

        report += "\n" + seed.describe(asset_types=False, all_contacts=args.contacts)
    else:
        report = await _check_report(connection_from_env())
    print(report, file=stdout)
    return int(ExitStatus.OK)


async def _init(args: argparse.Namespace, stdout: TextIO) -> int:
    from importer.infer import InitOptions, render_yaml, suggest_mapping

    # Relative by default, so the printed commands read as typed: "--mapping zoom.yaml".
    output = args.output or Path(f"{args.input.stem}.yaml")
    if output.resolve() == args.input.resolve():
        raise ConfigError(f"{output} is the input file; choose another -o path")
    if output.exists() and not args.force:
        raise ConfigError(
            f"{output} already exists; choose another name with -o, or add --force to replace it"
        )
    options = InitOptions(
        asset_type=args.asset_type,
        activity_type=args.activity_type,
        asset_name=args.asset_name,
        timezone=args.timezone,
        sheet=args.sheet,
        header_row=args.header_row,
        catalog=await _init_catalog(args.sandbox),
    )
    suggestion = suggest_mapping(args.input, options)
    # The mapping's own first lines show the very command printed as "Next:".
    command = _next_command(args.input, output, args.sandbox)
    try:
        output.write_text(render_yaml(suggestion, output.name, command=command), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(_init_summary(suggestion, output, command), file=stdout)
    return int(ExitStatus.OK)


async def _init_catalog(sandbox: bool) -> dict[str, list[str]] | None:
    """Eloqua's asset types (to check the flags and list the choices), when it can be asked."""
    from importer.config import connection_from_env, has_credentials
    from importer.eloqua import open_session
    from importer.preflight import connect
    from importer.sandbox.connection import sandbox_connection

    if not sandbox and not has_credentials():
        return None
    async with open_session(1) as session:
        if sandbox:
            from importer.sandbox.server import SandboxServer

            async with SandboxServer() as server:
                _, _, catalog = await connect(session, sandbox_connection(server.base_url))
        else:
            _, _, catalog = await connect(session, connection_from_env())
    return catalog.types


def _next_command(data: Path, output: Path, sandbox: bool) -> str:
    """The dry run to try after init: the input as given, the mapping just written."""
    flag = " --sandbox" if sandbox else ""
    return (
        f"eloqua-import run {_shell_quote(str(data))} --mapping"
        f" {_shell_quote(str(output))} --dry-run{flag}"
    )


def _init_summary(suggestion: Any, output: Path, command: str) -> str:
    lines = [f"Wrote {output}"]
    where = f"row {suggestion.header_row}"
    if suggestion.sheet:
        where += f" of the sheet {suggestion.sheet!r}"
    lines.append(f"  column names on {where}")
    for item in suggestion.fields:
        value = item.value
        if isinstance(value, dict):
            shown = f"column {value.get('column')!r}"
            if value.get("lookup"):
                shown = f"{value['lookup']} looked up by {shown}"
            if value.get("format"):
                shown += f", format {value['format']!r}"
            if value.get("timezone"):
                shown += f", time zone {value['timezone']!r}"
        else:
            shown = repr(value)
        lines.append(f"  {item.name + ':':<14}{shown}")
    for skip in suggestion.skip_rules:
        state = "skip rows where" if skip.active else "(suggested, off) skip rows where"
        lines.append(f"  {state} {_describe_rule(skip.rule)}")
    if suggestion.placeholders:
        lines.append(
            f"Still to fill in before importing: {', '.join(suggestion.placeholders)}"
            f" (search {output.name} for FILL IN)."
        )
    for warning in suggestion.warnings:
        lines.append(f"Warning: {warning}")
    for note in suggestion.notes:
        lines.append(f"Check: {note}")
    lines.append(f"Next: {command}")
    return "\n".join(lines)


def _describe_rule(rule: dict[str, Any]) -> str:
    if "equals" in rule:
        return f"{rule['column']} is {rule['equals']!r}"
    if "in" in rule:
        return f"{rule['column']} is one of {', '.join(map(repr, rule['in']))}"
    if "not_in" in rule:
        return f"{rule['column']} is not {' or '.join(map(repr, rule['not_in']))}"
    return f"{rule['column']} is blank"


def _shell_quote(text: str) -> str:
    import shlex

    return text if sys.platform == "win32" and " " not in text else shlex.quote(text)


async def check_report(session: aiohttp.ClientSession, connection: Connection) -> str:
    """What ``eloqua-import check`` prints: who we are, where, and what is set up."""
    import aiohttp

    from importer.eloqua import fetch_identity
    from importer.preflight import connect

    client, _, catalog = await connect(session, connection)
    lines = []
    try:
        identity = await fetch_identity(session, connection.login_url, client.auth)
    except (aiohttp.ClientError, TimeoutError, AuthError):
        identity = {}
    site, user = identity.get("site") or {}, identity.get("user") or {}
    lines.append("Credentials: accepted")
    lines.append(f"Auth:        {client.auth.status()}")
    if not identity:
        lines.append(f"Site:        (unknown: {connection.login_url}/id did not answer)")
    if site:
        lines.append(f"Site:        {site.get('name', '?')} (id {site.get('id', '?')})")
    if user:
        shown = user.get("displayName") or user.get("username") or "?"
        lines.append(f"User:        {shown} ({user.get('username', '?')})")
    lines.append(f"Base URL:    {client.base_url}")
    lines.append("External asset types and their activity types:")
    lines.append(catalog.describe())
    return "\n".join(lines)


async def _check_report(connection: Connection) -> str:
    from importer.eloqua import open_session

    async with open_session(1) as session:
        return await check_report(session, connection)


async def _login(args: argparse.Namespace, stdout: TextIO) -> int:
    from importer.config import check_values, oauth_app_from_env, token_file_from_env
    from importer.login import LoginOptions, login

    check_values(os.environ)
    app = oauth_app_from_env(os.environ)
    if app is None:
        raise ConfigError(
            "login needs the OAuth2 app: set ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET (Eloqua:"
            " Settings > AppCloud Developer > your app)"
        )

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    options = LoginOptions(
        port=args.port,
        open_browser=not args.no_browser,
        timeout=args.timeout,
        seed=os.environ.get("ELOQUA_REFRESH_TOKEN", "").strip(),
    )
    await login(app, token_file_from_env(), options, say)
    return int(ExitStatus.OK)


def _watch(args: argparse.Namespace) -> int:
    from importer.config import connection_from_env
    from importer.eloqua import Timeouts
    from importer.watch import EventLog, WatchOptions, watch

    log = EventLog(args.log_format)
    options = WatchOptions(
        inbox=args.inbox,
        mapping_path=args.mapping,
        once=args.once,
        interval=args.interval,
        settle=args.settle,
        ledger_path=args.ledger,
        concurrency=args.concurrency,
        timeouts=Timeouts(read=args.timeout),
        handle_signals=True,
        status_file=args.status_file,
    )
    try:
        return int(asyncio.run(watch(options, connection_from_env(), log)))
    except ImporterError as exc:
        if args.log_format != "json":
            raise
        log("error", str(exc), level="error", error=str(exc), exit_status=int(exc.exit_status))
        return int(exc.exit_status)


def _sandbox(args: argparse.Namespace) -> int:
    from importer.sandbox.server import SandboxConfig, serve

    config = SandboxConfig(
        latency=args.latency,
        rate_500=args.rate_500,
        rate_429=args.rate_429,
        rate_503=args.rate_503,
        rate_drop=args.drop_rate,
        retry_after=args.retry_after,
        capacity=args.capacity,
        seed=args.seed,
        token_ttl=args.token_ttl,
        token_requests=args.token_requests,
    )
    serve(args.host, args.port, config)
    return int(ExitStatus.OK)


def _ledger_location(text: str) -> Any:
    from importer.ledger import ledger_location

    try:
        return ledger_location(text)
    except ConfigError as exc:  # argparse would otherwise echo the value, password and all
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _concurrency(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_CONCURRENCY}: more parallel requests only make Eloqua throttle"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value
