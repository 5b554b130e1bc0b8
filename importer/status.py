"""The row statuses: one vocabulary for every stage.

Every data row ends with exactly one of these in the results (see the README's results table).
``Status`` is a ``StrEnum``: ``Status.CREATED == "created"``, so results files, JSON logs and
counts keyed by the plain strings are unchanged. The members are listed in the order the
summary shows them.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A row's status in the results, with its meaning for the exit code."""

    CREATED = "created"  # Eloqua created it
    ALREADY_CREATED = "already_created"  # created by an earlier run (the ledger)
    DUPLICATE = "duplicate"  # same activity as an earlier row of this file
    SKIPPED = "skipped"  # left out by a skip_if rule
    VALID = "valid"  # dry run: would be sent
    INVALID = "invalid"  # failed local validation; never sent
    REJECTED = "rejected"  # Eloqua answered 4xx; not retried
    FAILED = "failed"  # never created; safe to resend
    UNCERTAIN = "uncertain"  # may have reached Eloqua; not resent unless asked

    @property
    def is_success(self) -> bool:
        """True for statuses that keep the exit code 0."""
        return self in SUCCESS

    @property
    def is_error(self) -> bool:
        """True for statuses that make the exit code 1 and go to the errors file."""
        return self not in SUCCESS


#: Statuses that keep the exit code 0 (PRODUCT.md, "Exit codes").
SUCCESS = frozenset(
    {Status.CREATED, Status.ALREADY_CREATED, Status.DUPLICATE, Status.SKIPPED, Status.VALID}
)
#: Statuses that make the exit code 1; these rows go to the errors file.
ERRORS = frozenset(Status) - SUCCESS
