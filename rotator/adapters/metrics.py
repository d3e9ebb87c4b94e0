"""The daemon's Prometheus metrics: counters fed by the engine, gauges read from the journal.

Counters (``rotator_rotations_total``, ``rotator_rotation_failures_total``, the duration histogram,
``rotator_upstream_requests_total`` and ``rotator_triggers_coalesced_total``) count what this
process saw since it started; Prometheus' ``increase()`` copes with restarts. Gauges (expiry, next
rotation, last success, drift, failing, pending revokes) are read from the journal at scrape time
instead, so they are true after a restart and also reflect what a CronJob or another replica did.
``rotator_build_info{version}`` is always 1: it says which release answers the scrape.
``rotator_journal_up`` is 1 while this process can read and write its journal, and
``rotator_journal_unavailable{reason}`` says why not (one of :data:`JOURNAL_REASONS`), both asked at
scrape time within a deadline (:mod:`rotator.doors.journal_health`).

The expiry watch's gauges (``rotator_watched_token_expiry_timestamp_seconds{scope,token_id,owner}``,
``rotator_watched_tokens_omitted``, ``rotator_unmanaged_tokens{scope}``,
``rotator_inventory_last_success_timestamp_seconds``) are this replica's last inventory, replaced
whole by the next (:meth:`Metrics.inventory_taken`): a token revoked since disappears. They are
dropped once older than the keep the watch gives, so a replica whose turn went to another does not
export an old inventory forever.

No label carries a token value: labels are target names, outcomes and reasons from fixed lists,
steps, upstream names, route templates (ids replaced) and HTTP statuses.
"""

import threading

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rotator.core.inventory import UNMANAGED, Inventory, Listed
from rotator.core.model import Change, Outcome
from rotator.core.ports import Alert
from rotator.core.schedule import expiry_instant


log = structlog.get_logger("rotator")
#: Seconds a rotation takes, from planned to verified: mostly the connection re-read window.
DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
#: Why the journal is unavailable: each has a ``rotator_journal_unavailable`` series, 1 for the current one.
JOURNAL_REASONS = ("unreachable", "read_only", "damaged")
#: At most this many ``rotator_watched_token_expiry_timestamp_seconds`` series, the soonest-expiring kept:
#: a watched group may hold thousands of tokens, and each series costs Prometheus memory.
WATCHED_SERIES_CAP = 1000
#: Alert reasons that are states the gauges show, not failures counted in ``rotator_rotation_failures``.
_STATES = ("expiring", "unmanaged_expiring")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TargetGauges:
    """What the journal says of one target at scrape time (``None``: not known yet)."""

    target: str
    token_expiry: datetime | None
    next_rotation: datetime | None
    last_success: datetime | None
    drift: bool
    failing: bool
    #: Retired tokens waiting for their revoke (as ``status`` lists them).
    pending_revokes: int = 0


class Metrics:
    """Every metric of one daemon, in its own registry (so tests can build several)."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        """Create the counters; gauges come from :meth:`watch_targets`, :meth:`watch_credentials` and so on.

        ``clock`` tells at scrape time whether the last inventory is still kept (tests move it).
        """
        # The *_created series double every counter's series and no alert here needs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.rotations = Counter(
            "rotator_rotations",
            "Rotations finished, by outcome.",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "rotator_rotation_failures",
            "Alerts raised for a target: a failed step, drift, a held revoke, a refused connection.",
            ["target", "step", "reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "rotator_rotation_duration_seconds",
            "Seconds from a rotation's start to its end (verified, failed or rolled back).",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.triggers_coalesced = Counter(
            "rotator_triggers_coalesced",
            "HTTP triggers answered with a recent forced rotation instead of starting one.",
            ["target"],
            registry=self.registry,
        )
        self.requests = Counter(
            "rotator_upstream_requests",
            "HTTP requests rotator sent upstream, by upstream, route template and answer status.",
            ["upstream", "route", "status"],
            registry=self.registry,
        )
        from rotator import __version__  # noqa: PLC0415 - metadata lookup, once per daemon

        build = Gauge(
            "rotator_build_info",
            "Always 1; the version label says which release of rotator is running.",
            ["version"],
            registry=self.registry,
        )
        build.labels(str(__version__)).set(1)
        self._watched = _Watched(clock)
        self.registry.register(self._watched)

    def start_targets(self, names: Iterable[str]) -> None:
        """Show every target's counters from zero, so ``increase()`` sees the first one."""
        for name in names:
            for outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
                self.rotations.labels(name, outcome.value)
            self.triggers_coalesced.labels(name)

    # -- fed by the engine and the adapters --------------------------------------------------
    def rotation_finished(self, target: str, outcome: str, seconds: float) -> None:
        """An :class:`rotator.core.ports.Observer` hook."""
        self.rotations.labels(target, outcome).inc()
        self.duration.observe(max(0.0, seconds))

    def alert(self, alert: Alert) -> None:
        """An :class:`rotator.core.ports.Observer` hook; the :data:`_STATES` are for the gauges to show."""
        if alert.reason not in _STATES:
            self.failures.labels(alert.target, alert.step, alert.reason).inc()

    def recorded(self, target: str, change: Change) -> None:
        """An :class:`rotator.core.ports.Observer` hook; the gauges read the journal themselves."""

    def on_response(self, upstream: str, route: str, status: str) -> None:
        """The adapters' per-answer hook."""
        self.requests.labels(upstream, route, status).inc()

    # -- read at scrape time -----------------------------------------------------------------
    def watch_targets(self, read: Callable[[], list[TargetGauges]]) -> None:
        """Publish the per-target gauges, calling ``read`` on each scrape."""
        self.registry.register(_Gauges(read))

    def watch_credentials(self, read: Callable[[], dict[str, datetime | None]]) -> None:
        """Publish ``rotator_credential_expiry_timestamp_seconds{credential}`` from ``read``."""
        self.registry.register(_Credentials(read))

    def watch_journal(self, read: Callable[[], str | None]) -> None:
        """Publish ``rotator_journal_up`` and ``rotator_journal_unavailable{reason}`` from ``read``.

        ``read`` returns why the journal is unavailable (one of :data:`JOURNAL_REASONS`), or ``None``.
        """
        self.registry.register(_Journal(read))

    def inventory_taken(self, inventory: Inventory, keep: timedelta) -> None:
        """Replace the watch's gauges with ``inventory``'s, exported for ``keep`` from now (then dropped).

        Its last success moves only when every scope was listed whole.
        """
        self._watched.replace(inventory, keep)


def _seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


class _Gauges(Collector):
    def __init__(self, read: Callable[[], list[TargetGauges]]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        # Describing without reading keeps registration from touching the journal.
        return [family for family, _ in self._families()]

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            rows = self.read()
        except Exception as error:  # noqa: BLE001 - the counters must still be scraped
            log.warning("metrics.gauges_unread", error=type(error).__name__)
            rows = []
        for row in rows:
            values = (
                _seconds(row.token_expiry),
                _seconds(row.next_rotation),
                _seconds(row.last_success),
                float(row.drift),
                float(row.failing),
                float(row.pending_revokes),
            )
            for (family, _), value in zip(families, values, strict=True):
                if value is not None:
                    family.add_metric([row.target], value)
        yield from (family for family, _ in families)

    @staticmethod
    def _families() -> list[tuple[GaugeMetricFamily, str]]:
        specs = (
            (
                "rotator_token_expiry_timestamp_seconds",
                "When the current token dies (00:00 UTC on expires_at).",
            ),
            ("rotator_next_rotation_timestamp_seconds", "When the target is next due for rotation."),
            ("rotator_last_success_timestamp_seconds", "When the last verified rotation started."),
            ("rotator_drift", "1 while the target is frozen: its connection changed outside rotator."),
            (
                "rotator_failing",
                "1 while frozen, holding a revoke, or failed since the last verified rotation.",
            ),
            ("rotator_pending_revokes", "Retired tokens not yet revoked, as `rotator status` lists them."),
        )
        return [(GaugeMetricFamily(name, text, labels=["target"]), name) for name, text in specs]


class _Credentials(Collector):
    def __init__(self, read: Callable[[], dict[str, datetime | None]]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for credential, expiry in self.read().items():
            if expiry is not None:
                family.add_metric([credential], expiry.timestamp())
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "rotator_credential_expiry_timestamp_seconds",
            "When rotator's own credentials expire: the GitLab manager token, the Infisical access token.",
            labels=["credential"],
        )


class _Journal(Collector):
    def __init__(self, read: Callable[[], str | None]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        up, unavailable = self._families()
        reason = self.read()
        up.add_metric([], float(reason is None))
        for each in JOURNAL_REASONS:
            unavailable.add_metric([each], float(each == reason))
        yield from (up, unavailable)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        # Label-free, so that `max`/`min` over the replicas keep one series whatever the reason.
        up = GaugeMetricFamily(
            "rotator_journal_up", "1 while this process can read and write its journal; 0 otherwise."
        )
        unavailable = GaugeMetricFamily(
            "rotator_journal_unavailable",
            "1 for the reason the journal is unavailable now (unreachable, read_only, damaged); else 0.",
            labels=["reason"],
        )
        return up, unavailable


@dataclass(frozen=True, slots=True)
class _Snapshot:
    series: tuple[tuple[str, str, str, float], ...]  # scope, token id, owner, expiry in epoch seconds
    omitted: int
    unmanaged: tuple[tuple[str, int], ...]  # scope, unmanaged tokens listed
    until: datetime  # exported until then


def watched_series(inventory: Inventory, cap: int = WATCHED_SERIES_CAP) -> tuple[list[Listed], int]:
    """The tokens with an expiry that get a series, soonest first, at most ``cap``; and how many did not."""
    dated = sorted(
        (t for t in inventory.tokens() if t.info.expires_at is not None),
        key=lambda t: (t.info.expires_at, t.scope, t.info.id),
    )
    return dated[:cap], max(0, len(dated) - cap)


class _Watched(Collector):
    """The expiry watch's gauges, from the last inventory this replica took (none before the first)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # replaced by the watch's thread, read by the scrape's
        self._snapshot: _Snapshot | None = None
        self._last_success: datetime | None = None

    def replace(self, inventory: Inventory, keep: timedelta) -> None:
        kept, omitted = watched_series(inventory)
        series = tuple(
            (
                t.scope,
                str(t.info.id),
                UNMANAGED if t.unmanaged or t.managed is None else t.managed.target,
                expiry_instant(t.info.expires_at).timestamp(),
            )
            for t in kept
            if t.info.expires_at is not None
        )
        # A scope not listed whole has no count: what it did list is a lower bound, and a 0 would
        # read as "none" while the scope fails (RotatorInventoryStale says that instead).
        unmanaged = tuple(
            (report.scope, sum(1 for t in report.tokens if t.unmanaged))
            for report in inventory.scopes
            if report.error is None
        )
        snapshot = _Snapshot(series, omitted, unmanaged, self._clock() + keep)
        with self._lock:
            self._snapshot = snapshot
            if not inventory.failed:
                self._last_success = inventory.at

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        expiry, omitted, unmanaged, success = self._families()
        with self._lock:
            snapshot, last_success = self._snapshot, self._last_success
        if snapshot is not None and self._clock() < snapshot.until:
            for scope, token_id, owner, seconds in snapshot.series:
                expiry.add_metric([scope, token_id, owner], seconds)
            omitted.add_metric([], float(snapshot.omitted))
            for scope, count in snapshot.unmanaged:
                unmanaged.add_metric([scope], float(count))
        if last_success is not None:
            success.add_metric([], last_success.timestamp())
        yield from (expiry, omitted, unmanaged, success)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "rotator_watched_token_expiry_timestamp_seconds",
                "When a watched token dies (00:00 UTC on expires_at); owner is its target, or unmanaged.",
                labels=["scope", "token_id", "owner"],
            ),
            GaugeMetricFamily(
                "rotator_watched_tokens_omitted",
                f"Watched tokens with an expiry left out of the expiry series (past the {WATCHED_SERIES_CAP}"
                " soonest).",
            ),
            GaugeMetricFamily(
                "rotator_unmanaged_tokens",
                "Active tokens in the scope that no target manages, at the last inventory (none if the scope"
                " was not listed whole).",
                labels=["scope"],
            ),
            GaugeMetricFamily(
                "rotator_inventory_last_success_timestamp_seconds",
                "When this replica last took an inventory that listed every watched scope.",
            ),
        )
