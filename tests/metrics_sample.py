"""rotator's own Metrics with every series it can export holding a sample, for tests that read the names."""

from datetime import UTC, datetime, timedelta

from rotator.adapters.metrics import Metrics, TargetGauges
from rotator.core.inventory import Inventory, Listed, ScopeReport, TokenKind
from rotator.core.model import TokenInfo


def every_series() -> Metrics:
    """A registry where each metric family has at least one labelled sample (one target, ``t``)."""
    metrics = Metrics()
    metrics.start_targets(["t"])
    metrics.failures.labels("t", "push", "failed")
    metrics.duration.observe(1.0)
    metrics.requests.labels("gitlab", "other", "200")
    now = datetime.now(UTC)
    metrics.watch_targets(lambda: [TargetGauges("t", now, now, now, drift=True, failing=True)])
    metrics.watch_credentials(lambda: {"gitlab_manager_token": now})
    metrics.watch_journal(lambda: "read_only")
    token = TokenInfo(7, "hand-made", active=True, revoked=False, expires_at=now.date())
    listed = Listed("project:p", TokenKind.PROJECT, "project p", token, managed=None)
    metrics.inventory_taken(Inventory(now, (ScopeReport("project:p", (listed,)),)), timedelta(days=1))
    return metrics
