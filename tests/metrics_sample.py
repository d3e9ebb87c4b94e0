"""rotator's own Metrics with every series it can export holding a sample, for tests that read the names."""

from datetime import UTC, datetime

from rotator.adapters.metrics import Metrics, TargetGauges


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
    return metrics
