"""The exception family and the exit codes.

Library code raises these plain exceptions; only ``cli.py`` turns them into messages and exit
codes. Every message is written for the person running the import: it names the file, row,
column or value involved and says how to fix it.

The exception tree (exit code in brackets)::

    ImporterError               a problem the user can fix, before or during a run [2]
    ├── InputError              the input cannot be read as a table [2]
    ├── MappingError            the mapping is invalid or does not fit the columns [2]
    │   ├── ColumnsMissing      (mapping.py) columns the mapping names are not in the file
    │   └── SetupError          the mapping names something Eloqua does not have [2]
    ├── ConfigError             missing or unsafe configuration (credentials, options) [2]
    ├── AuthError               Eloqua refused the credentials [3]
    ├── AbortedError            the run stopped part-way; the results say what remains [3]
    │   ├── LedgerError         (ledger.py) the ledger cannot be opened, read or written
    │   └── ReportError         (report.py) the results or errors file cannot be written
    └── Interrupted             Ctrl-C / SIGTERM before any row was sent [130]

    RowError (ValueError)       one row cannot become a payload: reported ``invalid``
    └── RowSkipped              a ``skip_if`` rule left the row out: reported ``skipped``

    Unauthorized (Exception)    Eloqua answered 401 mid-run; the sender turns it into a stop

Also raised inside a stage and handled there: ``DateError`` (dates.py, becomes a RowError) and
``LookupFailed`` (lookup.py, becomes a ``rejected`` or ``failed`` row).
"""

from __future__ import annotations

from enum import IntEnum

from importer.status import Status


class ExitStatus(IntEnum):
    """Process exit codes, as documented in the README."""

    OK = 0  # every row created / already_created / duplicate / skipped / valid
    ROWS_NOT_CREATED = 1  # finished, but some rows invalid / rejected / failed / uncertain
    USAGE = 2  # usage, mapping or input error: nothing was sent
    ABORTED = 3  # stopped mid-run (bad credentials, persistent outage)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM after a clean stop
    CLOSED_PIPE = 141  # stdout's reader went away (`| head`); 128 + SIGPIPE, as shells show it


class ImporterError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_status: ExitStatus = ExitStatus.USAGE


class InputError(ImporterError):
    """The input file cannot be read as a table (missing, unreadable, wrong sheet...)."""


class MappingError(ImporterError):
    """The mapping file is invalid, or does not fit the input file's columns."""


class SetupError(MappingError):
    """The mapping names something Eloqua does not have (an asset type, a campaign): the
    mapping or Eloqua must change, not the file."""


class ConfigError(ImporterError):
    """Missing or unsafe configuration (credentials, base URL, options)."""


class AuthError(ImporterError):
    """Eloqua refused the credentials. Raised before or during a run; nothing more is sent."""

    exit_status = ExitStatus.ABORTED


class AbortedError(ImporterError):
    """The run stopped part-way (e.g. Eloqua answered 401); the results file says what remains."""

    exit_status = ExitStatus.ABORTED


class RowError(ValueError):
    """One row cannot become a payload. ``str()`` is the user-facing reason.

    Carries the column, the offending value and a stable ``code`` naming the kind of problem
    (frictionless-style): rows whose messages differ only by value share column and code, so
    the summary can group them. ``status`` is the row's status in the results: ``invalid``,
    or ``skipped`` for RowSkipped.
    """

    status = Status.INVALID

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        value: object = None,
        code: str = "invalid-row",
    ) -> None:
        super().__init__(message)
        self.column = column
        self.value = value
        self.code = code


class RowSkipped(RowError):
    """A ``skip_if`` rule left the row out on purpose: reported ``skipped``, not an error.

    Raised with the code ``skip-if: <the reason>`` (rule and value), so the summary gives each
    rule and value its own line."""

    status = Status.SKIPPED


class Interrupted(ImporterError):
    """Ctrl-C or SIGTERM before any row was sent: nothing to report but that."""

    exit_status = ExitStatus.INTERRUPTED


class Unauthorized(Exception):
    """Eloqua answered 401: the whole run must stop."""
