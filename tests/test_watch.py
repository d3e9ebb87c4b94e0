"""The daemon's expiry watch: its gauges, its cap, one digest per scope per day, and its failures.

A hand-built inventory stands in for the reading (the provider the daemon's caller passes); the
claims go to a real journal on a clock the test moves, and digests to a loopback webhook receiver.
"""

import io
import json

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.adapters.metrics import WATCHED_SERIES_CAP, Metrics, watched_series
from rotator.adapters.webhook import payload
from rotator.core.inventory import Inventory, Listed, Managed, ScopeReport, TokenKind
from rotator.core.model import Role, TokenInfo
from rotator.core.ports import Alert, Observer
from rotator.core.schedule import expiry_instant
from rotator.doors.watch import ExpiryWatch, Watching, digest
from rotator.engine.alerts import ALERT_REASONS
from rotator.journal.memory import MemoryJournal
from tests.observers import Heard
from tests.test_notify import MakeHook, Receiver, events, make_hook, receiver


__all__ = ["make_hook", "receiver"]  # the webhook receiver's fixtures, used by name below

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
APP = "project:acme/app"
GROUP = "group:acme"
WARN = timedelta(days=14)


class Clock:
    """The journal's and the metrics' clock, moved by the test."""

    def __init__(self) -> None:
        """At :data:`START`."""
        self.at = START

    def __call__(self) -> datetime:
        """The time now."""
        return self.at


def _token(  # noqa: PLR0913 - one row, each part named at the call site
    scope: str,
    token_id: int,
    name: str,
    expires: date | None,
    managed: Managed | None = None,
    *,
    holder: str = "",
) -> Listed:
    """One listed project token."""
    info = TokenInfo(token_id, name, active=True, revoked=False, expires_at=expires)
    return Listed(scope, TokenKind.PROJECT, holder or f"project {scope.split(':')[1]}", info, managed)


def _inventory(at: datetime) -> Inventory:
    """Managed, adopted and unmanaged tokens in a project; one expiring unmanaged token in a group."""
    app = (
        _token(
            APP, 1, "rotator-app-deploy", date(2026, 3, 1), Managed("app-deploy", Role.CURRENT, adopted=False)
        ),
        _token(
            APP, 2, "hand-made", date(2026, 1, 3), Managed("app-deploy", Role.PENDING_REVOKE, adopted=True)
        ),
        _token(APP, 3, "old-ci", date(2026, 1, 10)),  # unmanaged, inside warn_before
        _token(APP, 4, "far-off", date(2027, 1, 1)),  # unmanaged, far off
        _token(APP, 5, "forever", None),  # unmanaged, never expires
        _token(APP, 6, "gone-by", date(2025, 12, 30)),  # unmanaged, already expired
    )
    group = (_token(GROUP, 7, "group-bot", date(2026, 1, 5), holder="group acme"),)
    return Inventory(at, (ScopeReport(APP, app), ScopeReport(GROUP, group)))


def _scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The /metrics text, parsed: each family's samples as (labels, value)."""
    text = generate_latest(metrics.registry).decode()
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def _watch(  # noqa: PLR0913 - the watch's parts, each with the test's default
    take: Callable[[], Inventory],
    clock: Clock,
    observer: Observer,
    *,
    journal: MemoryJournal | None = None,
    metrics: Metrics | None = None,
    interval: timedelta = timedelta(hours=1),
) -> ExpiryWatch:
    """A watch on its own journal (or ``journal``), jitter off."""
    return ExpiryWatch(
        Watching(take, interval, WARN),
        ledger=journal if journal is not None else MemoryJournal(clock=clock),
        metrics=metrics if metrics is not None else Metrics(clock=clock),
        observer=observer,
        jitter=timedelta(0),
    )


def test_every_dated_token_gets_an_expiry_series_owned_by_its_target_or_unmanaged() -> None:
    """Managed and adopted tokens name their target, the others say unmanaged; no expiry, no series."""
    clock = Clock()
    metrics = Metrics(clock=clock)
    assert _watch(lambda: _inventory(clock()), clock, Heard(), metrics=metrics).run()
    scraped = _scrape(metrics)
    series = {
        (labels["scope"], labels["token_id"], labels["owner"]): value
        for labels, value in scraped["rotator_watched_token_expiry_timestamp_seconds"]
    }
    midnight = expiry_instant(date(2026, 1, 10)).timestamp()
    assert series == {
        (APP, "1", "app-deploy"): expiry_instant(date(2026, 3, 1)).timestamp(),
        (APP, "2", "app-deploy"): expiry_instant(date(2026, 1, 3)).timestamp(),
        (APP, "3", "unmanaged"): midnight,
        (APP, "4", "unmanaged"): expiry_instant(date(2027, 1, 1)).timestamp(),
        (APP, "6", "unmanaged"): expiry_instant(date(2025, 12, 30)).timestamp(),
        (GROUP, "7", "unmanaged"): expiry_instant(date(2026, 1, 5)).timestamp(),
    }
    assert midnight == datetime(2026, 1, 10, tzinfo=UTC).timestamp()
    unmanaged = {labels["scope"]: value for labels, value in scraped["rotator_unmanaged_tokens"]}
    assert unmanaged == {APP: 4.0, GROUP: 1.0}  # the token without expiry counts too
    assert scraped["rotator_watched_tokens_omitted"] == [({}, 0.0)]
    assert scraped["rotator_inventory_last_success_timestamp_seconds"] == [({}, START.timestamp())]


def test_each_refresh_replaces_the_series_so_a_revoked_token_disappears() -> None:
    """The next inventory's series replace the last: a token no longer listed has no series."""
    clock, listed = Clock(), [_inventory(START)]
    metrics = Metrics(clock=clock)
    watch = _watch(lambda: listed[0], clock, Heard(), metrics=metrics)
    assert watch.run()
    clock.at = START + timedelta(hours=1)
    app, group = listed[0].scopes
    listed[0] = Inventory(clock.at, (ScopeReport(APP, app.tokens[:2]), group))
    assert watch.run()
    ids = {
        labels["token_id"] for labels, _ in _scrape(metrics)["rotator_watched_token_expiry_timestamp_seconds"]
    }
    assert ids == {"1", "2", "7"}


def test_the_series_are_capped_soonest_first_and_the_rest_counted() -> None:
    """Past the cap, the soonest-expiring tokens keep their series; the omitted gauge counts the others."""
    clock = Clock()
    extra = 5
    many = tuple(
        _token(APP, n, f"t{n}", date(2026, 2, 1) + timedelta(days=n))
        for n in range(WATCHED_SERIES_CAP + extra)
    )
    metrics = Metrics(clock=clock)
    assert _watch(lambda: Inventory(START, (ScopeReport(APP, many),)), clock, Heard(), metrics=metrics).run()
    scraped = _scrape(metrics)
    ids = {int(labels["token_id"]) for labels, _ in scraped["rotator_watched_token_expiry_timestamp_seconds"]}
    assert ids == set(range(WATCHED_SERIES_CAP))
    assert scraped["rotator_watched_tokens_omitted"] == [({}, float(extra))]


@given(
    st.lists(st.one_of(st.none(), st.dates(date(2025, 1, 1), date(2027, 1, 1))), max_size=30),
    st.integers(0, 30),
)
def test_the_cap_keeps_the_soonest_and_counts_every_other_dated_token(
    expiries: list[date | None], cap: int
) -> None:
    """Kept plus omitted are the dated tokens; none kept expires after one left out; at most cap kept."""
    tokens = tuple(_token(APP, n, f"t{n}", expires) for n, expires in enumerate(expiries))
    kept, omitted = watched_series(Inventory(START, (ScopeReport(APP, tokens),)), cap)
    dated = [t for t in tokens if t.info.expires_at is not None]
    assert len(kept) == min(cap, len(dated))
    assert len(kept) + omitted == len(dated)
    left_out = {t.info.id for t in dated} - {t.info.id for t in kept}
    if kept and left_out:
        latest_kept = max(t.info.expires_at for t in kept if t.info.expires_at is not None)
        assert all(
            t.info.expires_at is not None and t.info.expires_at >= latest_kept
            for t in dated
            if t.info.id in left_out
        )


def test_a_replica_drops_its_gauges_two_intervals_after_its_last_turn() -> None:
    """An old inventory is not exported for ever (another replica ran since); its last success stays."""
    clock = Clock()
    metrics = Metrics(clock=clock)
    assert _watch(lambda: _inventory(START), clock, Heard(), metrics=metrics).run()
    clock.at = START + timedelta(hours=2) - timedelta(seconds=1)
    assert _scrape(metrics)["rotator_watched_token_expiry_timestamp_seconds"]
    clock.at = START + timedelta(hours=2)
    scraped = _scrape(metrics)
    assert scraped["rotator_watched_token_expiry_timestamp_seconds"] == []
    assert scraped["rotator_unmanaged_tokens"] == []
    assert scraped["rotator_inventory_last_success_timestamp_seconds"] == [({}, START.timestamp())]


def test_a_scope_that_failed_is_logged_and_the_last_success_does_not_move(logs: io.StringIO) -> None:
    """One inventory.scope_failed line per failed scope; the other scopes are still exported."""
    clock = Clock()
    metrics = Metrics(clock=clock)
    failing = Inventory(
        START, (*_inventory(START).scopes, ScopeReport("group:secret", error="GET /groups/:id: 403"))
    )
    assert _watch(lambda: failing, clock, Heard(), metrics=metrics).run()
    [line] = [e for e in events(logs) if e["event"] == "inventory.scope_failed"]
    assert (line["scope"], line["error"]) == ("group:secret", "GET /groups/:id: 403")
    scraped = _scrape(metrics)
    assert scraped["rotator_inventory_last_success_timestamp_seconds"] == []
    assert {labels["scope"] for labels, _ in scraped["rotator_unmanaged_tokens"]} == {APP, GROUP}


def test_a_scope_not_listed_whole_exports_no_unmanaged_count() -> None:
    """A failed scope's count is unknown, not 0 (nor the part it listed): no series until it lists whole."""
    clock = Clock()
    metrics = Metrics(clock=clock)
    partial = ScopeReport(GROUP, _inventory(START).scopes[1].tokens, error="group:acme: GET /groups/:id: 403")
    failing = Inventory(
        START, (_inventory(START).scopes[0], partial, ScopeReport("group:secret", error="403"))
    )
    assert _watch(lambda: failing, clock, Heard(), metrics=metrics).run()
    unmanaged = {labels["scope"]: value for labels, value in _scrape(metrics)["rotator_unmanaged_tokens"]}
    assert unmanaged == {APP: 4.0}


def test_one_digest_per_scope_per_day_through_the_webhook(receiver: Receiver, make_hook: MakeHook) -> None:
    """Two scopes with expiring unmanaged tokens: two posts; the same day none more; the next day again."""
    clock = Clock()
    hook = make_hook(clock=clock)
    watch = _watch(lambda: _inventory(clock()), clock, hook)
    assert watch.run()
    assert hook.flush(5)
    bodies = {r.body["target"]: r.body for r in receiver.requests}
    assert set(bodies) == {APP, GROUP}
    app = bodies[APP]
    assert app["reason"] == "unmanaged_expiring"
    assert app["text"] == (
        "rotator: project:acme/app: unmanaged_expiring: 2 unmanaged tokens expire within 14d: "
        'token 6 "gone-by" (project acme/app) expired 2025-12-30; '
        'token 3 "old-ci" (project acme/app) expires 2026-01-10 (in 8 days)'
    )
    assert app["expires_at"] == "2025-12-30"
    for hours in (1, 2, 23):  # the watch runs every hour; the digests wait for the day
        clock.at = START + timedelta(hours=hours)
        assert watch.run()
    assert hook.flush(5)
    assert len(receiver.requests) == 2
    clock.at = START + timedelta(days=1)
    assert watch.run()
    assert hook.flush(5)
    assert sorted(r.body["target"] for r in receiver.requests[2:]) == [GROUP, APP]


def test_a_digest_names_the_soonest_few_and_counts_the_rest() -> None:
    """Eight expiring tokens: the five soonest named, then how many more; never more than one line."""
    soon = [_token(APP, n, f"t{n}", date(2026, 1, 2 + n)) for n in range(8)]
    line = digest(soon, START, WARN)
    assert line.startswith("8 unmanaged tokens expire within 14d: token 0 ")
    assert line.count("token ") == 5
    assert line.endswith("; and 3 more")
    assert "\n" not in line


def test_a_scope_without_expiring_unmanaged_tokens_sends_nothing() -> None:
    """Managed tokens expiring soon, or unmanaged ones far off or without expiry, make no digest."""
    clock = Clock()
    quiet = (
        _token(APP, 1, "a", date(2026, 1, 2), Managed("app-deploy", Role.CURRENT, adopted=False)),
        _token(APP, 2, "b", date(2026, 6, 1)),
        _token(APP, 3, "c", None),
    )
    heard = Heard()
    assert _watch(lambda: Inventory(START, (ScopeReport(APP, quiet),)), clock, heard).run()
    assert heard.alerts == []


def test_a_failing_provider_logs_one_line_and_the_next_turn_runs(logs: io.StringIO) -> None:
    """The provider raising is one inventory.failed line, never raised; the next interval tries again."""
    clock, calls = Clock(), []

    def take() -> Inventory:
        calls.append(clock())
        if len(calls) == 1:
            raise ConnectionError("glpat-notavalue")  # by type only: an exception's text may quote anything
        return _inventory(clock())

    heard = Heard()
    watch = _watch(take, clock, heard)
    assert not watch.run()
    [line] = [e for e in events(logs) if e["event"] == "inventory.failed"]
    assert line == {**line, "reason": "ConnectionError", "level": "error"}
    assert "glpat" not in logs.getvalue()
    clock.at = START + timedelta(hours=1)
    assert watch.run()
    assert {a.target for a in heard.alerts} == {APP, GROUP}


def test_two_watches_on_one_journal_take_the_inventory_once_per_interval() -> None:
    """Replicas sharing a journal: one takes each turn, whichever fires first, and only that one digests."""
    clock, taken = Clock(), []
    journal = MemoryJournal(clock=clock)
    heard = Heard()

    def take() -> Inventory:
        taken.append(clock())
        return _inventory(clock())

    first, second = (_watch(take, clock, heard, journal=journal) for _ in range(2))
    assert [first.run(), second.run()] == [True, False]
    clock.at = START + timedelta(minutes=30)
    assert [second.run(), first.run()] == [False, False]
    clock.at = START + timedelta(hours=1)
    assert [second.run(), first.run()] == [True, False]
    assert len(taken) == 2
    assert len(heard.alerts) == 2  # the two scopes' digests, once


def test_the_digest_is_a_state_not_a_failure_counted_per_target() -> None:
    """``unmanaged_expiring`` is a listed reason, and rotator_rotation_failures_total does not count it."""
    assert "unmanaged_expiring" in ALERT_REASONS
    metrics = Metrics()
    metrics.alert(
        Alert(APP, "unmanaged_expiring", "1 unmanaged token expires within 14d: ...", START, "inventory")
    )
    failures = _scrape(metrics)["rotator_rotation_failures"]
    assert failures == []
    assert payload(Alert(APP, "unmanaged_expiring", "x", START, "inventory"))["target"] == APP


def test_a_digest_never_carries_a_token_shaped_name_or_a_forged_line(
    receiver: Receiver, make_hook: MakeHook
) -> None:
    """A token named like a glpat value, or with a newline and an ANSI escape: redacted and escaped."""
    clock = Clock()
    value = "glpat-" + "A1b2C3d4E5f6G7h8I9j0"
    named = (
        _token(APP, 1, value, date(2026, 1, 4)),
        _token(APP, 2, "ci\nrotator: fine\x1b[2J", date(2026, 1, 5)),
    )
    hook = make_hook(clock=clock)
    assert _watch(lambda: Inventory(START, (ScopeReport(APP, named),)), clock, hook).run()
    assert hook.flush(5)
    [request] = receiver.requests
    sent = json.dumps(request.body)
    assert value not in sent
    assert "[REDACTED]" in request.body["text"]
    assert "\n" not in request.body["text"] + request.body["message"]
    assert "\x1b" not in request.body["text"] + request.body["message"]
