"""Bulk-create Oracle Eloqua External Activities from spreadsheets, DataFrames and records.

    import importer
    result = importer.import_file("attendees.csv", mapping="mappings/attendees.yaml")
    result = importer.import_records(df, mapping={"activity": {...}}, dry_run=True)

See ``importer.api`` (and the README's "Use it from Python") for the options; problems found
before anything is sent raise the exceptions below (all ImporterError subclasses).

The names below load on first use (PEP 562): ``python -m importer run`` and ``import
importer.cli`` pay only for the modules the command uses, not for the whole library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each name of __all__ is defined: imported from there on first use.
_EXPORTS = {
    "importer._version": ("__version__",),
    "importer.api": (
        "ImportOptions",
        "RecordOutcome",
        "Result",
        "import_file",
        "import_file_async",
        "import_records",
        "import_records_async",
    ),
    "importer.config": ("Connection", "Credentials", "connection_from_env"),
    "importer.errors": (
        "AbortedError",
        "AuthError",
        "ConfigError",
        "ExitStatus",
        "ImporterError",
        "InputError",
        "Interrupted",
        "MappingError",
        "SetupError",
    ),
    "importer.sandbox.connection": ("sandbox_connection",),
    "importer.status": ("Status",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
