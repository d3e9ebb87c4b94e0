"""A run whose shared call ledger fails (the journal's database is gone) sends nothing more.

The adapters count every request in the journal's ledger before sending it (the rate ceilings hold
for the fleet). When the ledger cannot answer, the request is not sent, the run reports the journal
as unavailable (not an upstream failure: no backoff is recorded against the target), and the next
run, with the database back, converges with the campaign's invariants.
"""

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.core.errors import JournalUnavailableError
from rotator.core.ledger import Reservation
from rotator.journal.memory import MemoryJournal
from rotator.testing import Fakes
from tests.cli_harness import UA
from tests.engine.harness import EngineCase


#: Requests the first run of one target sends (the login, the reads before the create, the create,
#: the self-check, the PATCH and the re-read); checked below.
FIRST_RUN = 8


class FailingLedger:
    """The case journal's ledger, unreachable from its ``fail_at``-th take on (``None``: never)."""

    def __init__(self, store: MemoryJournal) -> None:
        """Count in ``store``'s ledger."""
        self.store = store
        self.takes = 0
        self.fail_at: int | None = None

    def take(self, bucket: str, per_minute: int) -> float:
        """Count the call, unless the database is gone by now."""
        return self.reserve(bucket, per_minute, 1).wait

    def reserve(self, bucket: str, per_minute: int, calls: int) -> Reservation:
        """Count the calls, unless the database is gone by now."""
        self.takes += 1
        if self.fail_at is not None and self.takes >= self.fail_at:
            raise JournalUnavailableError("state.url", "the journal's database at db.example.com:5432: gone")
        return self.store.reserve(bucket, per_minute, calls)

    def claim(self, job: str, every: timedelta) -> bool:
        """The store's claim."""
        return self.store.claim(job, every)


def _requests(fakes: Fakes) -> int:
    return len(fakes.gitlab.calls(user_agent=UA)) + len(fakes.infisical.calls(user_agent=UA))


def test_every_request_of_a_run_is_counted_in_the_shared_ledger(fakes: Fakes, tmp_path: Path) -> None:
    """One take per request: what the cases below rely on to fail before a chosen request."""
    case = EngineCase(fakes, tmp_path, targets=1)
    ledger = case.call_ledger = FailingLedger(case.store)
    assert case.run("run-once").code == 0
    assert ledger.takes == _requests(fakes) == FIRST_RUN


@pytest.mark.parametrize("fail_at", range(1, FIRST_RUN + 1))
def test_a_run_whose_ledger_fails_sends_nothing_more_and_blames_the_journal(
    fakes: Fakes, tmp_path: Path, fail_at: int
) -> None:
    """The request whose take failed and every later one are not sent; no upstream failure is recorded."""
    case = EngineCase(fakes, tmp_path, targets=1)
    ledger = case.call_ledger = FailingLedger(case.store)
    ledger.fail_at = fail_at
    result = case.run("run-once")
    assert result.code == 1, result.stdout
    assert "state.url: the journal's database at db.example.com:5432: gone" in result.stdout
    assert _requests(fakes) == fail_at - 1
    assert all(state.failures == 0 and state.backoff_until is None for state in case.store.targets())
    ledger.fail_at = None
    case.converge(cli=False)
