"""The journal writes of one target's run, fenced by its lease, and the bookkeeping of its failures.

:class:`Recorder` writes each change under the lease (with the crash hook the step tests use) and
records a failure with its backoff and alert (:meth:`Recorder.failed`), returning the
:class:`TargetFailedError` the run raises.
"""

from dataclasses import replace

import structlog

from rotator.core.errors import (
    TargetFailedError,  # re-exported: it was defined in this package
    UpstreamError,
)
from rotator.core.machine import Action
from rotator.core.model import Change, Lease, TargetKey, TargetState
from rotator.core.schedule import backoff_until
from rotator.core.spec import RotationSpec
from rotator.engine.alerts import alert, tell
from rotator.engine.lease import LeaseKeeper


log = structlog.get_logger("rotator")
#: The step a rotation's action is named by, in alerts, the webhook, metrics and error lines alike.
STEP_OF = {
    Action.CREATE: "create",
    Action.SELF_CHECK: "self-check",
    Action.PUSH: "push",
    Action.REREAD: "verify",
    Action.REVOKE_NEW: "revoke",
    Action.RECHECK_NAME: "recheck",
}


class Recorder:
    """Fenced journal writes for one target, with the crash hook the step tests use."""

    def __init__(self, keeper: LeaseKeeper, target: RotationSpec) -> None:
        """Write under the lease ``keeper`` keeps, through its context (whose ports check the lease)."""
        self.keeper, self.ctx, self.target = keeper, keeper.ctx, target
        #: Where this target's run is, for alerts and the failures metric: the call being made, in
        #: the words the upstream error lines use (:data:`STEP_OF`, "revoke", "resolve", ...).
        self.step = "prepare"

    @property
    def lease(self) -> Lease:
        """The lease this run writes under."""
        return self.keeper.lease

    @property
    def key(self) -> TargetKey:
        """The target's journal key."""
        return self.lease.key

    def write(self, change: Change, point: str | None = None, *, renew: bool = False) -> None:
        """Record ``change``; then, if this is the test's crash point, stop dead.

        Nothing once the lease is lost: a renewal failed, so the target may be another worker's.
        ``renew``: the write comes right before a mutation, and carries its renewal
        (:meth:`LeaseKeeper.write_renewing`, in place of :meth:`ensure_lease` after it).
        """
        if renew:
            self.keeper.write_renewing(change)
        else:
            self.keeper.check()
            self.ctx.journal.write(self.lease, change)
        tell(self.ctx, lambda observer: observer.recorded(self.target.name, change))
        if point is not None:
            self.checkpoint(point)

    def ensure_lease(self) -> None:
        """Before a mutation: prove (with a renewal) that this worker still holds the target.

        A renewal the run made since its last upstream request stands as the proof
        (:meth:`LeaseKeeper.prove`): the one a write carried just before, with nothing sent since.
        """
        self.keeper.prove()

    def upstream_requests(self) -> int:
        """How many upstream requests this run has sent so far (a read's answer is as fresh as this)."""
        return self.keeper.requests

    def checkpoint(self, point: str) -> None:
        """A crash point with nothing to record (between a check and the call it licenses)."""
        if point == self.ctx.crash_after:
            log.warning("test.crash", target=self.target.name, after=point)
            self.ctx.crash()

    def state(self) -> TargetState:
        """The target's current bookkeeping."""
        return self.ctx.journal.target(self.key) or TargetState(self.key, self.target.name)

    def failed(self, reason: str, message: str, *, backoff: bool = True) -> TargetFailedError:
        """Record a failure (and its backoff), alert, and return the error to raise."""
        now = self.ctx.clock()
        state = self.state()
        failures = state.failures + 1
        until = backoff_until(now, failures, self.ctx.settings.backoff_base, self.ctx.settings.backoff_cap)
        self.write(
            Change(
                target=replace(
                    state,
                    failures=failures if backoff else state.failures,
                    backoff_until=until if backoff else state.backoff_until,
                    last_error=message,
                )
            )
        )
        alert(self.ctx, self.target, self.key, reason, message, step=self.step)
        return TargetFailedError(reason, message)


def upstream_message(error: UpstreamError, step: str) -> str:
    """An upstream error as one line naming the step."""
    return str(error.located(step=step)) if error.step is None else str(error)
