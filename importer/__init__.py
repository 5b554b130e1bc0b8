"""Bulk-create Oracle Eloqua External Activities from spreadsheets, DataFrames and records.

    import importer
    result = importer.import_file("attendees.csv", mapping="mappings/attendees.yaml")
    result = importer.import_records(df, mapping={"activity": {...}}, dry_run=True)

See ``importer.api`` (and the README's "Use it from Python") for the options; problems found
before anything is sent raise the exceptions below (all ImporterError subclasses).
"""

from importer._version import __version__
from importer.api import (
    ImportOptions,
    RecordOutcome,
    Result,
    import_file,
    import_file_async,
    import_records,
    import_records_async,
)
from importer.config import Connection, Credentials, connection_from_env
from importer.errors import (
    AbortedError,
    AuthError,
    ConfigError,
    ExitStatus,
    ImporterError,
    InputError,
    Interrupted,
    MappingError,
    SetupError,
)
from importer.sandbox.connection import sandbox_connection
from importer.status import Status

__all__ = [
    "AbortedError",
    "AuthError",
    "ConfigError",
    "Connection",
    "Credentials",
    "ExitStatus",
    "ImportOptions",
    "ImporterError",
    "InputError",
    "Interrupted",
    "MappingError",
    "RecordOutcome",
    "Result",
    "SetupError",
    "Status",
    "__version__",
    "connection_from_env",
    "import_file",
    "import_file_async",
    "import_records",
    "import_records_async",
    "sandbox_connection",
]
