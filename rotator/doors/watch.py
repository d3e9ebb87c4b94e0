"""The daemon's expiry watch: every watched token's expiry as gauges, and one digest per scope per day.

Tokens nobody rotates are how teams get surprised. Once per ``interval`` (default daily, with the
daemon's ``jitter``) the watch takes the inventory through the provider its caller gives it (every
active token in the targets' scopes and the ``watch:`` scopes, read under the adapters' rate
limits), replaces this replica's watch gauges with it
(:meth:`rotator.adapters.metrics.Metrics.inventory_taken`), and, for each scope holding unmanaged
tokens inside ``warn_before``, sends one ``unmanaged_expiring`` alert naming how many and the
soonest few: a digest, not one message per token.

Both rules hold across restarts and replicas because both are the journal's claims
(:meth:`rotator.core.ports.CallLedger.claim`): the turn to take the inventory (job ``watch``, once
per fleet per ``interval``) and each scope's digest (job ``digest:SCOPE``, once a day, and only
claimed when there is something to say). The other replicas' watch jobs find the turn taken and do
nothing, so only the replica that ran the watch exports its gauges; the shipped alert rules
aggregate over the replicas, and a replica drops its gauges :data:`KEPT_FOR` intervals after its
last turn, so a token revoked since cannot linger on a replica whose turn went elsewhere.

A run that fails (the provider raised, the journal could not be asked) is one ``inventory.failed``
line and waits for the next turn; a scope that could not be listed is one
``inventory.scope_failed`` line per run. Nothing here ever carries a token value: GitLab does not
list them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from rotator.adapters.metrics import Metrics
from rotator.core.durations import human_duration, in_days
from rotator.core.errors import RotatorError
from rotator.core.inventory import Inventory, Listed, ScopeReport, expiring_unmanaged
from rotator.core.ledger import claim_window
from rotator.core.ports import Alert, CallLedger, Observer
from rotator.core.schedule import expiry_instant


log = structlog.get_logger("rotator")
#: The fleet-wide turn to take the inventory, in the journal's claims.
WATCH_JOB = "watch"
#: A scope's digest turn in the journal's claims: this, then the scope (``digest:group:acme``).
DIGEST_JOB = "digest:"
#: The alert reason of a digest (one of :data:`rotator.engine.alerts.ALERT_REASONS`).
REASON = "unmanaged_expiring"
#: A digest's ``step``: no call failed, the inventory found it.
STEP = "inventory"
#: At most one digest per scope in this long.
DIGEST_EVERY = timedelta(days=1)
#: A digest names this many tokens, soonest first, and counts the rest.
NAMED = 5
#: A replica's watch gauges are dropped this many intervals after its last turn.
KEPT_FOR = 2


@dataclass(frozen=True, slots=True)
class Watching:
    """What the daemon watches with: the inventory's provider and its timings, built by the caller."""

    take: Callable[[], Inventory]
    interval: timedelta = timedelta(days=1)
    warn_before: timedelta = timedelta(days=14)


class ExpiryWatch:
    """One replica's expiry watch job (the daemon schedules :meth:`run`)."""

    def __init__(
        self,
        watching: Watching,
        *,
        ledger: CallLedger,
        metrics: Metrics,
        observer: Observer,
        jitter: timedelta,
    ) -> None:
        """Watch with ``watching``: claims in ``ledger``, gauges to ``metrics``, digests to ``observer``."""
        self.watching, self.ledger, self.metrics, self.observer = watching, ledger, metrics, observer
        self.jitter = jitter

    def run(self) -> bool:
        """Take the inventory if this replica gets the fleet's turn, then publish it; True if it did.

        Never raises: the daemon goes on whatever the inventory or the journal did.
        """
        watching = self.watching
        try:
            if not self.ledger.claim(WATCH_JOB, claim_window(watching.interval, self.jitter)):
                return False
            inventory = watching.take()
        except Exception as error:  # noqa: BLE001 - the next turn tries again; the daemon goes on
            log.error("inventory.failed", reason=_reason(error))
            return False
        self.metrics.inventory_taken(inventory, KEPT_FOR * watching.interval)
        for failed in inventory.failed:
            log.warning("inventory.scope_failed", scope=failed.scope, error=failed.error)
        for report in inventory.scopes:
            self._digest(report, inventory.at)
        tokens = inventory.tokens()
        log.info(
            "inventory.taken",
            scopes=len(inventory.scopes),
            failed=len(inventory.failed),
            tokens=len(tokens),
            unmanaged=sum(1 for t in tokens if t.unmanaged),
        )
        return True

    def _digest(self, report: ScopeReport, now: datetime) -> None:
        """Send ``report``'s digest if it has unmanaged tokens inside ``warn_before`` and the day's turn."""
        soon = expiring_unmanaged(report, now, self.watching.warn_before)
        if not soon:
            return
        try:
            if not self.ledger.claim(DIGEST_JOB + report.scope, claim_window(DIGEST_EVERY, self.jitter)):
                return  # sent within the day, by this replica or another
        except Exception as error:  # noqa: BLE001 - the next turn tries again
            log.error("inventory.failed", reason=_reason(error), scope=report.scope)
            return
        message = digest(soon, now, self.watching.warn_before)
        log.warning("inventory.digest", scope=report.scope, reason=REASON, tokens=len(soon))
        alert = Alert(report.scope, REASON, message, now, STEP, soon[0].info.expires_at)
        try:
            self.observer.alert(alert)
        except Exception as error:  # noqa: BLE001 - observers are told, never relied on
            log.warning("observer.failed", error=type(error).__name__)


def digest(soon: list[Listed], now: datetime, warn_before: timedelta) -> str:
    """One line for a scope's unmanaged tokens inside ``warn_before`` (soonest first): how many, the first.

    ``3 unmanaged tokens expire within 14d: token 12 "deploy" (project acme/app) expires 2026-01-05
    (in 4 days); ...; and 1 more``. Names and holders are GitLab's; no value is ever listed.
    """
    count = len(soon)
    head = f"{count} unmanaged token{'s' if count != 1 else ''} expire within {human_duration(warn_before)}"
    named = [_named(t, now) for t in soon[:NAMED]]
    rest = [f"and {count - NAMED} more"] if count > NAMED else []
    return f"{head}: {'; '.join(named + rest)}"


def _named(token: Listed, now: datetime) -> str:
    info = token.info
    assert info.expires_at is not None  # noqa: S101 - expiring_unmanaged lists only tokens with an expiry
    left = expiry_instant(info.expires_at) - now
    when = f"expires {info.expires_at} ({in_days(left)})" if left.days >= 0 else f"expired {info.expires_at}"
    return f'token {info.id} "{info.name}" ({token.holder}) {when}'


def _reason(error: Exception) -> str:
    """Why a run failed, in one value-free line: rotator's own errors say it; anything else by type."""
    return str(error) if isinstance(error, RotatorError) else type(error).__name__
