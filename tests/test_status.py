"""The one status vocabulary: plain strings in the results, and the exit code's rule."""

from __future__ import annotations

import importer
from importer.errors import ExitStatus, RowError, RowSkipped
from importer.status import Status


def test_statuses_read_as_the_plain_words_the_results_file_has_always_held() -> None:
    assert [str(status) for status in Status] == [
        "created",
        "already_created",
        "duplicate",
        "skipped",
        "valid",
        "invalid",
        "rejected",
        "failed",
        "uncertain",
    ]
    assert Status.CREATED == "created"
    assert f"{Status.ALREADY_CREATED:<16}|" == f"{'already_created':<16}|"  # summary columns
    assert {Status.FAILED: 1}["failed"] == 1  # counts keyed by status answer to the plain word


def test_success_and_error_statuses_follow_the_exit_code_rule() -> None:
    ok = {status for status in Status if status.is_success}
    assert ok == {"created", "already_created", "duplicate", "skipped", "valid"}
    assert {status for status in Status if status.is_error} == set(Status) - ok
    assert all(status.is_success != status.is_error for status in Status)
    assert (RowError("x").status, RowSkipped("x").status) == (Status.INVALID, Status.SKIPPED)
    assert ExitStatus.OK == 0 and importer.Status is Status
