"""An Eloqua-compatible local server (``eloqua-import sandbox``, ``--sandbox``, tests).

Stands apart from the importer: the server (``server``, ``seed``, ``validation``) imports
nothing from it. ``connection`` is the one bridge: the importer's Connection for a running
sandbox. The importer imports this package only to start a sandbox; the server's names load
on first use, so ``import importer`` does not pay for aiohttp.web.
"""

from typing import TYPE_CHECKING, Any

from .connection import sandbox_connection

if TYPE_CHECKING:
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
    "sandbox_connection",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
