"""A target's lease while a run acts on it: renewed, and checked before every upstream request.

Another worker may take a target once its lease lapses, so a worker that cannot keep its lease
must stop acting at once. :class:`LeaseKeeper` renews the lease every ``Settings.lease_renew``:

- in a background thread, on real time, so a long upstream call or wait does not let it lapse;
- in the run's own thread, right before an upstream request, whenever a renewal is due by the
  run's monotonic clock (``Context.monotonic``), so a run whose time is injected (or whose
  background thread is starved) renews as its time passes. Only the run's own renewals reset
  that clock's count: a monotonic clock may be the thread's own (``ROTATOR_TEST_SLEEP_SCALE``
  counts each thread's shortened sleeps at full length), so a reading taken in the background
  thread cannot be compared with one taken in the run's.

Before a mutation the run proves the target is still its own with a renewal
(:meth:`LeaseKeeper.prove`), which a write right before the mutation may carry
(:meth:`LeaseKeeper.write_renewing`). A renewal the run's thread made stands as that proof until
the run's next upstream request (and while no renewal is due): between the two only the run's own
CPU and journal calls pass, as between a write carrying the renewal and the mutation after it.

The first renewal that fails (the journal raises: the lease was taken over, the database cannot be
reached; or it answers for another holder or fence) marks the lease lost for good. From then on
every upstream request of the run raises :class:`LeaseLostError` before it is sent (the ports of
:attr:`LeaseKeeper.ctx` check first), and so does every journal write
(:class:`rotator.engine.recorder.Recorder` checks first, renewing when due, as before a request:
a write is fenced by the journal, but a journal back after a blip would take it). A request
already in flight finishes; what it returns is not recorded, and the next run resumes from what
the journal holds.
"""

import threading

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import NoReturn, Self

import structlog

from rotator.core.errors import JournalUnavailableError, LeaseLostError
from rotator.core.model import (
    Change,
    Connection,
    Lease,
    NewToken,
    Owner,
    Place,
    TargetRecords,
    TokenInfo,
    TokenRequest,
)
from rotator.core.ports import GitLabPort, InfisicalPort
from rotator.core.secret import Secret
from rotator.engine.context import Context
from rotator.engine.readthrough import ReadThrough


log = structlog.get_logger("rotator")


class LeaseKeeper:
    """Keeps one lease for one run; :attr:`ctx` is the run's context with guarded ports."""

    def __init__(self, ctx: Context, lease: Lease, records: TargetRecords | None = None) -> None:
        """Keep ``lease`` (just acquired) with ``ctx``'s journal, clocks and lease settings.

        ``records``: the key's records as read once the lease was taken
        (:meth:`rotator.core.ports.Journal.acquire_reading`), served by :attr:`view` without a read.
        """
        self._lease = lease
        self._lock = threading.Lock()
        self._renewed = ctx.monotonic()  # when the last good renewal (or the acquisition) was sent
        #: Upstream requests the run has sent (counted before each is sent); and whether the run's
        #: thread has renewed since the last one (:meth:`prove`).
        self._requests = 0
        self._proven = False
        self._why = ""
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"lease-{lease.key.project_id}")
        #: The target's own records as this run last read them (:mod:`rotator.engine.readthrough`):
        #: only this run writes them while it holds the lease, and the view is dropped once it is lost.
        self.view = ReadThrough(ctx.journal, lease.key, records)
        #: The run's context: every GitLab and Infisical request first passes :meth:`check`, and
        #: its journal is :attr:`view`.
        self.ctx = replace(
            ctx,
            gitlab=_GuardedGitLab(ctx.gitlab, self._before_request),
            infisical=_GuardedInfisical(ctx.infisical, self._before_request),
            journal=self.view.as_journal(),
        )

    @property
    def lease(self) -> Lease:
        """The lease as last renewed (holder and fence never change)."""
        return self._lease

    def __enter__(self) -> Self:
        """Start renewing in the background."""
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop renewing (the caller releases the lease) and forget the records kept under it."""
        self._stop.set()
        self._thread.join()
        self.view.drop()

    def check(self) -> None:
        """Before an upstream request or a journal write: LeaseLostError if lost; renew first if due."""
        with self._lock:
            self._refuse_if_lost()
            if self._due():
                self._renew()

    def _before_request(self) -> None:
        """:meth:`check`, then count the request: a renewal made before it proves nothing after it."""
        with self._lock:
            self._refuse_if_lost()
            if self._due():
                self._renew()
            self._requests += 1
            self._proven = False

    @property
    def requests(self) -> int:
        """How many upstream requests the run has sent (or tried to) under this lease."""
        with self._lock:
            return self._requests

    def _due(self) -> bool:
        """Whether a renewal is due by the run's monotonic clock (the lock held)."""
        return self.ctx.monotonic() - self._renewed >= self.ctx.settings.lease_renew.total_seconds()

    def renew(self) -> None:
        """Renew now (before a mutation: proof the target is still ours); LeaseLostError if it is not."""
        with self._lock:
            self._refuse_if_lost()
            self._renew()

    def prove(self) -> None:
        """Before a mutation: renew, unless the run's thread renewed since its last upstream request.

        That renewal (most often the one the write just before carried) is the proof, as it is
        for the create after PLANNED: since then only this run's CPU and journal calls have
        passed, and a renewal due by the run's clock is still made first. LeaseLostError if the
        lease is lost.
        """
        with self._lock:
            self._refuse_if_lost()
            if not self._proven or self._due():
                self._renew()

    def write_renewing(self, change: Change) -> None:
        """Record ``change`` and renew in the same atomic journal call (before a mutation).

        The proof :meth:`renew` gives before a mutation, folded into the fenced write that comes
        right before it: the write's lease check (holder and fence, on the store's newest row) is
        the renewal's, made in the same statement or transaction, so the journal answers both or
        neither; the expiry kept is the one the journal answered (its own clock's). Any failure
        (a refusal; an answer lost, the journal unreachable, so whether it landed is unknown)
        marks the lease lost and raises LeaseLostError, as a failed renewal does: nothing more is
        sent. Safe only where the mutation follows the write with no upstream call in between
        (the create after PLANNED, the push after PUSHING); elsewhere :meth:`prove` renews, unless
        this renewal stands (no upstream request since: the revoke right after VERIFIED).
        """
        with self._lock:
            self._refuse_if_lost()
            if self._due():
                # As before any write: a renewal overdue is made (and may fail) before the write
                # is sent, so a journal back after a blip never takes a write from a lost lease.
                self._renew()
            sent = self.ctx.monotonic()
            lease = self._lease
            try:
                _, renewed = self.view.write_renewing(
                    lease, change, self.ctx.clock(), self.ctx.settings.lease_ttl
                )
            except Exception as error:  # noqa: BLE001 - as a renewal: any failure means the lease may be gone
                self._lose(_why(error), type(error).__name__)
            if (renewed.key, renewed.holder, renewed.fence) != (lease.key, lease.holder, lease.fence):
                self._lose(f"the journal renewed it as fence {renewed.fence}, not {lease.fence}", "fence")
            self._lease, self._renewed, self._proven = renewed, sent, True

    def _renew_in_background(self) -> None:
        with self._lock:
            self._refuse_if_lost()
            self._renew(run_thread=False)

    def _refuse_if_lost(self) -> None:
        if self.lost.is_set():
            raise self._lost_error()

    def _lost_error(self) -> LeaseLostError:
        return LeaseLostError(
            f"lease on {self._lease.key} lost ({self._why}); nothing more is sent or recorded"
        )

    def _renew(self, *, run_thread: bool = True) -> None:
        """One renewal (the lock held); a failure marks the lease lost and raises LeaseLostError."""
        sent = self.ctx.monotonic() if run_thread else self._renewed
        lease = self._lease
        try:
            renewed = self.ctx.journal.renew(lease, self.ctx.clock(), self.ctx.settings.lease_ttl)
        except Exception as error:  # noqa: BLE001 - any failure to renew means the lease may be gone
            self._lose(_why(error), type(error).__name__)
        if (renewed.key, renewed.holder, renewed.fence) != (lease.key, lease.holder, lease.fence):
            self._lose(f"the journal renewed it as fence {renewed.fence}, not {lease.fence}", "fence")
        self._lease, self._renewed = renewed, sent
        self._proven = self._proven or run_thread

    def _lose(self, why: str, error: str) -> NoReturn:
        self._why = why
        self.lost.set()
        # Another writer may exist from now on: nothing read under the lease is served again (and
        # nothing could be acted on anyway: every write and request of this run now raises).
        self.view.drop()
        log.error("lease.lost", key=str(self._lease.key), error=error)
        raise self._lost_error() from None

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.lease_renew.total_seconds()):
            try:
                self._renew_in_background()
            except LeaseLostError:
                return


class _GuardedGitLab:
    """A GitLab port whose every request first checks the lease."""

    def __init__(self, port: GitLabPort, check: Callable[[], None]) -> None:
        self._port, self._check = port, check

    def project_id(self, project: int | str) -> int:
        self._check()
        return self._port.project_id(project)

    def manager_access_level(self, owner: Owner | int) -> int | None:
        self._check()
        return self._port.manager_access_level(owner)

    def group_id(self, group: int | str) -> int:
        self._check()
        return self._port.group_id(group)

    def manager_self(self) -> TokenInfo:
        self._check()
        return self._port.manager_self()

    def list_tokens(self, owner: Owner | int) -> list[TokenInfo]:
        self._check()
        return self._port.list_tokens(owner)

    def group_projects(self, group: int, *, include_subgroups: bool) -> list[Place]:
        self._check()
        return self._port.group_projects(group, include_subgroups=include_subgroups)

    def descendant_groups(self, group: int) -> list[Place]:
        self._check()
        return self._port.descendant_groups(group)

    def group_service_accounts(self, group: int) -> list[int]:
        self._check()
        return self._port.group_service_accounts(group)

    def get_token(self, owner: Owner | int, token_id: int) -> TokenInfo | None:
        self._check()
        return self._port.get_token(owner, token_id)

    def create_token(self, owner: Owner | int, request: TokenRequest) -> NewToken:
        self._check()
        return self._port.create_token(owner, request)

    def token_self(self, value: Secret) -> TokenInfo:
        self._check()
        return self._port.token_self(value)

    def delete_token(self, owner: Owner | int, token_id: int) -> None:
        self._check()
        self._port.delete_token(owner, token_id)


class _GuardedInfisical:
    """An Infisical port whose every request first checks the lease."""

    def __init__(self, port: InfisicalPort, check: Callable[[], None]) -> None:
        self._port, self._check = port, check

    def get_connection(self, connection_id: str) -> Connection:
        self._check()
        return self._port.get_connection(connection_id)

    def push_token(self, connection: Connection, value: Secret) -> str:
        self._check()
        return self._port.push_token(connection, value)

    def access_token_expiry(self) -> datetime | None:
        return self._port.access_token_expiry()  # what the client knows: no request


def _why(error: Exception) -> str:
    """Why a renewal failed, in words (never an unknown exception's text: it may hold anything)."""
    if isinstance(error, LeaseLostError):
        return "another worker holds it now"
    if isinstance(error, JournalUnavailableError):
        return f"the journal cannot be reached: {error}"
    return f"renewal failed: {type(error).__name__}"
