"""An Eloqua-compatible local server (``eloqua-import sandbox``, ``--sandbox``, tests).

Stands apart from the importer: it imports nothing from it and the importer never imports it
except to start it.
"""

from .server import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_COMPANY,
    SANDBOX_PASSWORD,
    SANDBOX_TOKEN,
    SANDBOX_USERNAME,
    SandboxConfig,
    SandboxServer,
    SandboxState,
    create_app,
    serve,
)

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_COMPANY",
    "SANDBOX_PASSWORD",
    "SANDBOX_TOKEN",
    "SANDBOX_USERNAME",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "serve",
]
