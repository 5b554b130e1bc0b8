"""The importer's connection to a running sandbox: its fixed credentials at its address.

The one module of the sandbox package that imports the importer (the server itself does not).
"""

from __future__ import annotations

from importer.config import Connection, Credentials


def sandbox_connection(base_url: str) -> Connection:
    """Credentials for the built-in sandbox at ``base_url``."""
    from importer.sandbox import server

    credentials = Credentials(
        server.SANDBOX_COMPANY, server.SANDBOX_USERNAME, server.SANDBOX_PASSWORD
    )
    return Connection(credentials=credentials, base_url=base_url, login_url=base_url)
