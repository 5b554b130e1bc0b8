"""The package's version, from its installed metadata (also sent in the User-Agent)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("eloqua-import")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
