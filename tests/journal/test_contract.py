"""The journal contract (:class:`rotator.core.ports.Journal`), run against every store in ``stores.STORES``.

Time is whatever the test passes as ``now``: stores judge leases by the clock they are given, so
nothing here sleeps. What is specific to one store (SQLite's file, codec, read-only mode) lives in
that store's own tests.
"""

import threading

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.core.errors import LeaseLostError
from rotator.core.model import (
    Change,
    Kind,
    Lease,
    Origin,
    Outcome,
    Owner,
    Role,
    Step,
    TargetKey,
    TargetRecords,
    TargetState,
    TokenRecord,
    Tombstone,
)
from rotator.core.ports import Journal
from rotator.core.redact import MARKER
from tests.journal.samples import KEY, NOW, OTHER_KEY, TTL, UNRESOLVED, rotation
from tests.journal.stores import STORES, Opener


STORE_NAMES = sorted(STORES)
US = timedelta(microseconds=1)


def _lease(journal: Journal, key: TargetKey = KEY, holder: str = "w1", at: datetime = NOW) -> Lease:
    lease = journal.acquire(key, "app-deploy" if key == KEY else "api-deploy", holder, at, TTL)
    assert lease is not None
    return lease


def _everything(journal: Journal, keys: tuple[TargetKey, ...] = (KEY, OTHER_KEY)) -> tuple[object, ...]:
    """Every read of the journal for ``keys``: equal before and after means nothing changed."""
    per_key = tuple(
        (
            journal.target(k),
            journal.tokens(k),
            journal.tombstones(k),
            journal.rotations(k, 100),
            journal.unfinished(k),
        )
        for k in keys
    )
    names = sorted(journal.recorded_names(), key=str)
    return journal.targets(), journal.rotations(None, 100), names, per_key


# Records ------------------------------------------------------------------------------------------


def test_write_then_read_back_every_record(journal: Journal) -> None:
    """A fenced write records a rotation, tokens, the target state and a tombstone atomically."""
    lease = _lease(journal)
    token = TokenRecord(KEY, 7, "app-deploy-x", Origin.CREATED, Role.CANDIDATE, date(2026, 12, 25), "r1")
    state = TargetState(KEY, "app-deploy", verified_hash="ab" * 32, verified_at=NOW)
    stone = Tombstone(KEY, "app-deploy-x", NOW + timedelta(days=3))
    journal.write(lease, Change(rotation=rotation(), tokens=(token,), target=state, tombstones=(stone,)))
    assert journal.rotations(KEY) == [rotation()]
    assert journal.tokens(KEY) == [token]
    assert journal.target(KEY) == state
    assert journal.tombstones(KEY) == [stone]
    assert journal.unfinished(KEY) == rotation()
    journal.write(lease, Change(drop_tombstones=("app-deploy-x",)))
    assert journal.tombstones(KEY) == []


def test_the_first_acquisition_creates_the_target_state(journal: Journal) -> None:
    """An unknown key reads as None; acquiring it records a bare state under the given name, kept after."""
    assert journal.target(KEY) is None
    assert journal.targets() == []
    lease = _lease(journal)
    assert journal.target(KEY) == TargetState(KEY, "app-deploy")
    journal.release(lease)
    assert journal.acquire(KEY, "renamed", "w2", NOW, TTL) is not None
    assert journal.target(KEY) == TargetState(KEY, "app-deploy")


def test_a_rewritten_record_replaces_the_old_one(journal: Journal) -> None:
    """Writing a rotation, token or tombstone again (same id, same token id, same name) replaces it."""
    lease = _lease(journal)
    token = TokenRecord(KEY, 7, "t", Origin.CREATED, Role.CANDIDATE, None)
    stone = Tombstone(KEY, "t", NOW)
    journal.write(lease, Change(rotation=rotation(), tokens=(token,), tombstones=(stone,)))
    done = replace(rotation(), outcome=Outcome.SUCCEEDED, finished_at=NOW + US)
    later = replace(stone, until=NOW + TTL)
    journal.write(
        lease, Change(rotation=done, tokens=(replace(token, role=Role.CURRENT),), tombstones=(later,))
    )
    assert journal.rotations(KEY) == [done]
    assert journal.unfinished(KEY) is None
    assert journal.tokens(KEY) == [replace(token, role=Role.CURRENT)]
    assert journal.tombstones(KEY) == [later]


def test_a_token_given_twice_in_one_write_keeps_its_last_record(journal: Journal) -> None:
    """Within one write, records apply in order: the last of two with one token id is the one kept."""
    lease = _lease(journal)
    token = TokenRecord(KEY, 7, "t", Origin.CREATED, Role.CANDIDATE, None)
    stone = Tombstone(KEY, "s", NOW)
    later = (replace(token, role=Role.CURRENT), replace(stone, until=NOW + TTL))
    journal.write(lease, Change(tokens=(token, later[0]), tombstones=(stone, later[1])))
    assert journal.tokens(KEY) == [later[0]]
    assert journal.tombstones(KEY) == [later[1]]


def test_a_write_answers_its_records_as_a_read_gives_them_back(journal: Journal) -> None:
    """What ``write`` answers is what the reads then give: free text redacted, times as stored."""
    said = "401 for glpat-" + "A1b2C3d4E5f6G7h8I9j0"
    lease = _lease(journal)
    stored = journal.write(
        lease,
        Change(
            rotation=replace(rotation(), error=said),
            tokens=(TokenRecord(KEY, 7, "t", Origin.CREATED, Role.REVOKED, None, evidence=said),),
            target=TargetState(KEY, "app-deploy", last_error=said, backoff_until=NOW + TTL),
            tombstones=(Tombstone(KEY, "t", NOW),),
        ),
    )
    assert stored.rotation == journal.unfinished(KEY)
    assert list(stored.tokens) == journal.tokens(KEY)
    assert stored.target == journal.target(KEY)
    assert list(stored.tombstones) == journal.tombstones(KEY)
    assert stored.target is not None
    assert stored.target.last_error == f"401 for {MARKER}"


def test_dropping_a_tombstone_in_the_write_that_adds_it_drops_it(journal: Journal) -> None:
    """Within one write, ``drop_tombstones`` applies after ``tombstones``; an unknown name is no error."""
    lease = _lease(journal)
    stone = Tombstone(KEY, "t", NOW)
    journal.write(lease, Change(tombstones=(stone,), drop_tombstones=("t", "never-there")))
    assert journal.tombstones(KEY) == []


def test_free_text_is_redacted_on_its_way_in(journal: Journal) -> None:
    """An upstream's echo of a token in an error, last error or revoke evidence is never kept."""
    secret = "glpat-" + "A1b2C3d4E5f6G7h8I9j0"
    lease = _lease(journal)
    said = f"401 for {secret}"
    journal.write(
        lease,
        Change(
            rotation=replace(rotation(), error=said),
            tokens=(TokenRecord(KEY, 7, "t", Origin.CREATED, Role.REVOKED, None, evidence=said),),
            target=TargetState(KEY, "app-deploy", last_error=said),
        ),
    )
    journal.record_unresolved(replace(UNRESOLVED, error=said))
    kept = [
        journal.rotations(KEY)[0].error,
        journal.tokens(KEY)[0].evidence,
        journal.target(KEY).last_error,  # type: ignore[union-attr]
        journal.unresolved(UNRESOLVED.gitlab_url, UNRESOLVED.project).error,  # type: ignore[union-attr]
    ]
    assert kept == [f"401 for {MARKER}"] * 4


def test_project_paths_are_remembered(journal: Journal) -> None:
    """A resolved path is found again without asking GitLab."""
    assert journal.project_id(KEY.gitlab_url, "acme/app") is None
    journal.remember_project(KEY.gitlab_url, "acme/app", 42)
    assert journal.project_id(KEY.gitlab_url, "acme/app") == 42
    assert journal.project_id("https://other.example.com", "acme/app") is None
    journal.remember_project(KEY.gitlab_url, "acme/app", 43)
    assert journal.project_id(KEY.gitlab_url, "acme/app") == 43


def test_every_resolved_path_of_a_gitlab_is_read_at_once(journal: Journal) -> None:
    """project_ids answers each path of that GitLab with its latest id, and none of another GitLab."""
    assert journal.project_ids(KEY.gitlab_url) == {}
    journal.remember_project(KEY.gitlab_url, "acme/app", 42)
    journal.remember_project(KEY.gitlab_url, "group:acme", 7)
    journal.remember_project("https://other.example.com", "acme/api", 9)
    journal.remember_project(KEY.gitlab_url, "acme/app", 43)
    assert journal.project_ids(KEY.gitlab_url) == {"acme/app": 43, "group:acme": 7}
    assert journal.project_ids("https://other.example.com") == {"acme/api": 9}


def test_a_failure_to_resolve_a_path_is_kept_until_the_path_resolves(journal: Journal) -> None:
    """A resolve failure is read back by URL and path (no lease needed) and dropped once the path resolves."""
    journal.record_unresolved(UNRESOLVED)
    assert journal.unresolved(KEY.gitlab_url, "acme/gone") == UNRESOLVED
    assert journal.unresolved(KEY.gitlab_url, "acme/app") is None
    assert journal.unresolved("https://other.example.com", "acme/gone") is None
    again = replace(UNRESOLVED, failures=3, at=NOW + TTL)
    journal.record_unresolved(again)
    assert journal.unresolved(KEY.gitlab_url, "acme/gone") == again
    journal.remember_project(KEY.gitlab_url, "acme/gone", 44)
    assert journal.unresolved(KEY.gitlab_url, "acme/gone") is None
    assert journal.targets() == []


# Order --------------------------------------------------------------------------------------------


def test_rotations_are_newest_first_and_limited(journal: Journal) -> None:
    """History lists newest first; ``unfinished`` finds only the in-progress one."""
    lease = _lease(journal)
    for day in range(5):
        outcome = Outcome.IN_PROGRESS if day == 4 else Outcome.SUCCEEDED
        journal.write(
            lease, Change(rotation=rotation(f"r{day}", at=NOW + timedelta(days=day), outcome=outcome))
        )
    assert [r.id for r in journal.rotations(KEY, limit=3)] == ["r4", "r3", "r2"]
    assert [r.id for r in journal.rotations(None, limit=10)] == ["r4", "r3", "r2", "r1", "r0"]
    assert journal.rotations(KEY, limit=0) == []
    unfinished = journal.unfinished(KEY)
    assert unfinished is not None
    assert unfinished.id == "r4"


def test_newest_first_is_by_planned_time_not_by_write_order(journal: Journal) -> None:
    """Rotations written out of order come back by ``planned_at``, across targets too."""
    lease, other = _lease(journal), _lease(journal, OTHER_KEY)
    for minute in (3, 0, 4, 1):
        journal.write(lease, Change(rotation=rotation(f"a{minute}", at=NOW + timedelta(minutes=minute))))
    journal.write(
        other, Change(rotation=replace(rotation("b2", at=NOW + timedelta(minutes=2)), key=OTHER_KEY))
    )
    assert [r.id for r in journal.rotations(KEY)] == ["a4", "a3", "a1", "a0"]
    assert [r.id for r in journal.rotations()] == ["a4", "a3", "b2", "a1", "a0"]


def test_rotations_planned_at_one_instant_keep_the_order_they_were_first_recorded_in(
    journal: Journal,
) -> None:
    """A tie on ``planned_at``: the later-started comes first, and finishing an earlier one never moves it."""
    lease = _lease(journal)
    for name in ("first", "second", "third"):
        journal.write(lease, Change(rotation=rotation(name)))
    journal.write(lease, Change(rotation=replace(rotation("first"), outcome=Outcome.SUCCEEDED)))
    journal.write(lease, Change(rotation=replace(rotation("second"), outcome=Outcome.SUCCEEDED)))
    assert [r.id for r in journal.rotations(KEY)] == ["third", "second", "first"]
    assert [r.id for r in journal.rotations(KEY, limit=2)] == ["third", "second"]
    assert [r.id for r in journal.rotations_of([(KEY, "app-deploy")], 10)] == ["third", "second", "first"]
    last = journal.last_rotation(KEY, {"run-once"})
    assert last is not None
    assert last.id == "third"


def test_unfinished_is_the_newest_in_progress_rotation(journal: Journal) -> None:
    """Of two rotations left in progress (a tie on planned time included), ``unfinished`` is the newest."""
    lease = _lease(journal)
    journal.write(lease, Change(rotation=rotation("old", at=NOW)))
    journal.write(lease, Change(rotation=rotation("new", at=NOW + US)))
    journal.write(lease, Change(rotation=rotation("done", at=NOW + TTL, outcome=Outcome.DRIFT)))
    assert journal.unfinished(KEY) == rotation("new", at=NOW + US)
    journal.write(lease, Change(rotation=rotation("tied", at=NOW + US)))
    journal.write(lease, Change(rotation=replace(rotation("new", at=NOW + US), step=Step.CREATED)))
    assert journal.unfinished(KEY) == rotation("tied", at=NOW + US)


def test_last_rotation_is_the_newest_by_one_of_the_triggers(journal: Journal) -> None:
    """``last_rotation`` skips other triggers and other targets, and is None when nothing matches."""
    lease = _lease(journal)
    other_lease = _lease(journal, OTHER_KEY)
    for minute, trigger in enumerate(("http", "rotate", "schedule", "run-once")):
        record = replace(rotation(f"r{minute}", at=NOW + timedelta(minutes=minute)), trigger=trigger)
        journal.write(lease, Change(rotation=record))
    later = replace(rotation("elsewhere", at=NOW + timedelta(hours=1)), key=OTHER_KEY, trigger="http")
    journal.write(other_lease, Change(rotation=later))
    found = journal.last_rotation(KEY, {"http", "rotate"})
    assert found is not None
    assert (found.id, found.trigger) == ("r1", "rotate")
    only_http = journal.last_rotation(KEY, {"http"})
    assert only_http is not None
    assert only_http.id == "r0"
    assert journal.last_rotation(KEY, {"demo"}) is None
    assert journal.last_rotation(KEY, ()) is None


def test_rotations_of_filters_by_key_and_name_before_the_limit(journal: Journal) -> None:
    """Only the asked (key, name) pairs count, and the limit applies to what they match."""
    lease, other = _lease(journal), _lease(journal, OTHER_KEY)
    journal.write(lease, Change(rotation=rotation("quiet", at=NOW)))
    journal.write(lease, Change(rotation=replace(rotation("renamed", at=NOW + US), target="old-name")))
    for n in range(3):
        record = replace(rotation(f"busy{n}", at=NOW + TTL + n * US), key=OTHER_KEY, target="app-deploy")
        journal.write(other, Change(rotation=record))
    assert [r.id for r in journal.rotations_of([(KEY, "app-deploy")], 1)] == ["quiet"]
    both = journal.rotations_of([(KEY, "app-deploy"), (KEY, "old-name")], 10)
    assert [r.id for r in both] == ["renamed", "quiet"]
    assert [r.id for r in journal.rotations_of([(OTHER_KEY, "app-deploy")], 2)] == ["busy2", "busy1"]
    assert journal.rotations_of([], 10) == []


def test_recorded_names_include_a_target_no_longer_configured(journal: Journal) -> None:
    """Each (key, name) a rotation was recorded under comes back once."""
    lease = _lease(journal)
    journal.write(lease, Change(rotation=rotation("r1")))
    journal.write(lease, Change(rotation=replace(rotation("r2"), target="renamed")))
    journal.write(lease, Change(rotation=rotation("r3", outcome=Outcome.SUCCEEDED)))
    assert sorted(journal.recorded_names(), key=lambda pair: pair[1]) == [
        (KEY, "app-deploy"),
        (KEY, "renamed"),
    ]


def test_records_answers_the_four_reads_of_a_key_at_once(journal: Journal) -> None:
    """``records`` is ``target``, ``tokens``, ``unfinished`` and ``tombstones`` together, in their orders."""
    assert journal.records(KEY) == TargetRecords(None, (), None, ())
    lease = _lease(journal)
    tokens = tuple(TokenRecord(KEY, i, f"t{i}", Origin.CREATED, Role.CANDIDATE, None) for i in (9, 3, 12))
    stones = (Tombstone(KEY, "b", NOW), Tombstone(KEY, "a", NOW + TTL))
    done = rotation("r0", at=NOW + TTL, outcome=Outcome.SUCCEEDED)
    journal.write(lease, Change(rotation=rotation("r1"), tokens=tokens, tombstones=stones))
    journal.write(lease, Change(rotation=done, target=TargetState(KEY, "app-deploy", failures=2)))
    other = _lease(journal, OTHER_KEY)
    theirs = replace(rotation("r2", at=NOW + TTL), key=OTHER_KEY)
    journal.write(other, Change(rotation=theirs, tokens=(replace(tokens[0], key=OTHER_KEY),)))
    found = journal.records(KEY)
    assert found == TargetRecords(
        journal.target(KEY),
        tuple(journal.tokens(KEY)),
        journal.unfinished(KEY),
        tuple(journal.tombstones(KEY)),
    )
    assert [t.token_id for t in found.tokens] == [3, 9, 12]
    assert [s.name for s in found.tombstones] == ["a", "b"]
    assert found.unfinished == rotation("r1")
    assert found.target == TargetState(KEY, "app-deploy", failures=2)


def test_targets_tokens_and_tombstones_come_back_in_key_id_and_name_order(journal: Journal) -> None:
    """``targets`` by key, ``tokens`` by token id, ``tombstones`` by name, whatever the write order."""
    keys = [replace(KEY, project_id=n) for n in (9, 3, 12)]
    for key in keys:
        _lease(journal, key)
    assert [t.key for t in journal.targets()] == sorted(keys, key=str)
    lease = _lease(journal, keys[0], "w1", NOW + US)
    tokens = tuple(TokenRecord(keys[0], n, f"t{n}", Origin.CREATED, Role.REVOKED, None) for n in (30, 4, 100))
    stones = tuple(Tombstone(keys[0], name, NOW) for name in ("b", "c", "a"))
    journal.write(lease, Change(tokens=tokens, tombstones=stones))
    assert [t.token_id for t in journal.tokens(keys[0])] == [4, 30, 100]
    assert [s.name for s in journal.tombstones(keys[0])] == ["a", "b", "c"]
    assert journal.tokens(keys[1]) == []


@pytest.mark.parametrize("store", STORE_NAMES)
@settings(max_examples=25, deadline=None)
@given(
    plan=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(list(Outcome))), min_size=1, max_size=12),
    rewrites=st.lists(st.integers(0, 11), max_size=6),
    limit=st.integers(0, 14),
)
def test_history_is_always_sorted_and_limited(
    store: str, plan: list[tuple[int, Outcome]], rewrites: list[int], limit: int
) -> None:
    """Any planned times (ties common), any rewrites: newest first, ties by first record, limited."""
    with STORES[store]() as opener:
        journal = opener()
        lease = _lease(journal)
        records = [
            rotation(f"r{n:02}", at=NOW + timedelta(minutes=minute), outcome=outcome)
            for n, (minute, outcome) in enumerate(plan)
        ]
        for record in records:
            journal.write(lease, Change(rotation=record))
        for n in rewrites:
            if n < len(records):
                records[n] = replace(records[n], outcome=Outcome.FAILED)
                journal.write(lease, Change(rotation=records[n]))
        expected = sorted(range(len(plan)), key=lambda n: (plan[n][0], n), reverse=True)
        assert journal.rotations(KEY, limit) == [records[n] for n in expected][:limit]
        open_ = [records[n] for n in expected if records[n].outcome is Outcome.IN_PROGRESS]
        assert journal.unfinished(KEY) == (open_[0] if open_ else None)


# Leases and fencing ------------------------------------------------------------------------------


def test_a_second_worker_is_refused_while_the_lease_lives(journal: Journal) -> None:
    """Only one worker holds a target; another gets None until the lease expires."""
    assert journal.acquire(KEY, "app-deploy", "w1", NOW, TTL) is not None
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=5), TTL) is None
    later = journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=11), TTL)
    assert later is not None
    assert later.holder == "w2"


def test_a_lease_expires_exactly_at_its_expiry_by_the_clock_it_is_given(journal: Journal) -> None:
    """Held while ``now < expires``: refused a microsecond before, free at the instant itself."""
    lease = _lease(journal)
    assert lease.expires == NOW + TTL
    assert journal.acquire(KEY, "app-deploy", "w2", lease.expires - US, TTL) is None
    taken = journal.acquire(KEY, "app-deploy", "w2", lease.expires, TTL)
    assert taken == Lease(KEY, "w2", lease.fence + 1, lease.expires + TTL)


def test_the_clock_given_decides_not_the_wall_clock(journal: Journal) -> None:
    """The ``now`` passed decides: a lease is free to a clock a year later, held for one a year before."""
    _lease(journal)
    assert journal.acquire(KEY, "app-deploy", "w2", NOW - timedelta(days=365), TTL) is None
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(days=365), TTL) is not None


def test_its_holder_may_take_a_lease_again_with_a_new_fence(journal: Journal) -> None:
    """The holder re-acquiring its own live lease gets a higher fence; the earlier lease is then stale."""
    first = _lease(journal)
    second = journal.acquire(KEY, "app-deploy", "w1", NOW + US, TTL)
    assert second is not None
    assert second.fence == first.fence + 1
    with pytest.raises(LeaseLostError):
        journal.write(first, Change(rotation=rotation()))
    journal.write(second, Change(rotation=rotation()))


def test_fences_count_per_key(journal: Journal) -> None:
    """Each key's fence starts at 1 and grows by one per acquisition, whatever happens to other keys."""
    fences = [_lease(journal, KEY, f"w{n}", NOW + n * TTL).fence for n in range(3)]
    assert fences == [1, 2, 3]
    assert _lease(journal, OTHER_KEY).fence == 1


def test_the_fence_keeps_rising_across_a_forget(journal: Journal) -> None:
    """A forgotten key taken again continues from its last fence: a lease from before never matches again."""
    first = _lease(journal)
    second = _lease(journal, KEY, "w1", NOW + US)
    journal.forget(second, "forgotten")
    again = _lease(journal, KEY, "w1", NOW + US)
    assert again.fence == second.fence + 1 == 3
    for stale in (first, second):
        with pytest.raises(LeaseLostError):
            journal.write(stale, Change(rotation=rotation()))
    assert journal.rotations(KEY) == []


def test_a_worker_that_lost_its_lease_records_nothing(journal: Journal) -> None:
    """Fencing: after another worker takes over, the old lease's writes and renewals fail."""
    old = _lease(journal)
    new = journal.acquire(KEY, "app-deploy", "w2", NOW + TTL + timedelta(seconds=1), TTL)
    assert new is not None
    assert new.fence > old.fence
    with pytest.raises(LeaseLostError):
        journal.write(old, Change(rotation=rotation()))
    with pytest.raises(LeaseLostError):
        journal.renew(old, NOW, TTL)
    assert journal.rotations(KEY) == []
    journal.write(new, Change(rotation=rotation()))
    assert len(journal.rotations(KEY)) == 1


_EVERY_WRITE: dict[str, Callable[[Journal, Lease], object]] = {
    "rotation": lambda j, lease: j.write(lease, Change(rotation=rotation("stale"))),
    "tokens": lambda j, lease: j.write(
        lease, Change(tokens=(TokenRecord(KEY, 99, "t", Origin.CREATED, Role.CANDIDATE, None),))
    ),
    "target": lambda j, lease: j.write(lease, Change(target=TargetState(KEY, "app-deploy", failures=9))),
    "tombstones": lambda j, lease: j.write(lease, Change(tombstones=(Tombstone(KEY, "new", NOW),))),
    "drop_tombstones": lambda j, lease: j.write(lease, Change(drop_tombstones=("kept",))),
    "empty change": lambda j, lease: j.write(lease, Change()),
    "everything": lambda j, lease: j.write(
        lease,
        Change(
            rotation=rotation("stale"),
            tokens=(TokenRecord(KEY, 99, "t", Origin.CREATED, Role.CANDIDATE, None),),
            target=TargetState(KEY, "app-deploy", failures=9),
            tombstones=(Tombstone(KEY, "new", NOW),),
            drop_tombstones=("kept",),
        ),
    ),
    "renew": lambda j, lease: j.renew(lease, NOW + TTL * 3, TTL),
    "forget": lambda j, lease: j.forget(lease, "forgotten"),
}


def _released_then_taken(journal: Journal, lease: Lease) -> Lease:
    journal.release(lease)
    return _lease(journal, KEY, "w2", NOW + US)


_STALE: dict[str, Callable[[Journal, Lease], object]] = {
    "taken over": lambda j, lease: _lease(j, KEY, "w2", lease.expires),
    "taken again by its holder": lambda j, lease: _lease(j, KEY, lease.holder, NOW + US),
    "released": lambda j, lease: j.release(lease),
    "released then taken": _released_then_taken,
    "forgotten": lambda j, lease: j.forget(lease, "gone"),
}


@pytest.mark.parametrize("how", sorted(_STALE))
@pytest.mark.parametrize("operation", sorted(_EVERY_WRITE))
def test_every_write_with_a_stale_lease_is_refused_and_changes_nothing(
    journal: Journal, operation: str, how: str
) -> None:
    """Each fenced operation on a lease taken over, re-taken, released or forgotten: refused, no trace."""
    lease = _lease(journal)
    journal.write(
        lease,
        Change(
            rotation=rotation("kept"),
            tokens=(TokenRecord(KEY, 7, "t", Origin.CREATED, Role.CURRENT, None),),
            tombstones=(Tombstone(KEY, "kept", NOW),),
        ),
    )
    _STALE[how](journal, lease)
    before = _everything(journal)
    with pytest.raises(LeaseLostError):
        _EVERY_WRITE[operation](journal, lease)
    assert _everything(journal) == before


def test_a_forged_lease_is_refused(journal: Journal) -> None:
    """A lease never handed out (other key, wrong holder, a fence from the future) records nothing."""
    lease = _lease(journal)
    for forged in (
        replace(lease, key=OTHER_KEY),
        replace(lease, holder="w2"),
        replace(lease, fence=lease.fence + 1),
        replace(lease, fence=lease.fence - 1),
    ):
        with pytest.raises(LeaseLostError):
            journal.write(forged, Change(rotation=rotation()))
    assert journal.rotations() == []


def test_an_expired_lease_nobody_took_is_still_good(journal: Journal) -> None:
    """Expiry only lets another worker in: until one does, the holder may still renew and write."""
    lease = _lease(journal)
    late = lease.expires + TTL
    renewed = journal.renew(lease, late, TTL)
    assert renewed == replace(lease, expires=late + TTL)
    journal.write(renewed, Change(rotation=rotation()))
    assert journal.acquire(KEY, "app-deploy", "w2", late + TTL - US, TTL) is None


def test_release_frees_the_target(journal: Journal) -> None:
    """A released lease can be taken at once by another worker, with a higher fence."""
    first = _lease(journal)
    journal.release(first)
    second = journal.acquire(KEY, "app-deploy", "w2", NOW, TTL)
    assert second is not None
    assert second.fence == first.fence + 1


def test_releasing_a_stale_lease_leaves_the_current_one(journal: Journal) -> None:
    """Release is a no-op for a lease no longer current: the new holder keeps the target."""
    old = _lease(journal)
    new = _lease(journal, KEY, "w2", old.expires)
    journal.release(old)
    journal.release(old)
    assert journal.acquire(KEY, "app-deploy", "w3", old.expires, TTL) is None
    journal.write(new, Change(rotation=rotation()))


def test_renew_extends_the_lease(journal: Journal) -> None:
    """A renewed lease keeps other workers out past the original expiry; the fence stays."""
    lease = _lease(journal)
    renewed = journal.renew(lease, NOW + timedelta(minutes=9), TTL)
    assert renewed == replace(lease, expires=NOW + timedelta(minutes=19))
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=12), TTL) is None
    journal.write(renewed, Change(rotation=rotation()))
    journal.write(lease, Change(rotation=rotation("r2")))  # same holder and fence: the same lease


def test_write_renewing_records_and_extends_the_lease_in_one_call(journal: Journal) -> None:
    """The write lands and the lease is renewed as ``renew`` would: others kept out past the old expiry."""
    lease = _lease(journal)
    stored, renewed = journal.write_renewing(
        lease, Change(rotation=rotation()), NOW + timedelta(minutes=9), TTL
    )
    assert renewed == replace(lease, expires=NOW + timedelta(minutes=19))
    assert stored.rotation == journal.unfinished(KEY)
    assert journal.acquire(KEY, "app-deploy", "w2", NOW + timedelta(minutes=12), TTL) is None
    journal.write(renewed, Change(rotation=rotation("r2")))  # the same lease, renewed


def test_write_renewing_a_lost_lease_neither_writes_nor_renews(journal: Journal) -> None:
    """A lease taken over: LeaseLostError, nothing recorded, and the new holder's lease untouched."""
    old = _lease(journal)
    new = _lease(journal, holder="w2", at=NOW + 2 * TTL)
    before = _everything(journal)
    with pytest.raises(LeaseLostError):
        journal.write_renewing(old, Change(rotation=rotation()), NOW + 2 * TTL, 10 * TTL)
    assert _everything(journal) == before
    # Not renewed for the old holder: once the new holder's lease lapses, a third worker gets in.
    assert journal.acquire(KEY, "app-deploy", "w3", new.expires, TTL) is not None


def test_acquire_reading_takes_the_lease_and_answers_the_records_as_they_stand(journal: Journal) -> None:
    """``acquire_reading`` is ``acquire`` then ``records``: a new key's bare state; then what was written."""
    taken = journal.acquire_reading(KEY, "app-deploy", "w1", NOW, TTL)
    assert taken == (
        Lease(KEY, "w1", 1, NOW + TTL),
        TargetRecords(TargetState(KEY, "app-deploy"), (), None, ()),
    )
    lease = taken[0]
    token = TokenRecord(KEY, 7, "t7", Origin.CREATED, Role.CURRENT, None)
    journal.write(
        lease, Change(rotation=rotation("r1"), tokens=(token,), tombstones=(Tombstone(KEY, "a", NOW),))
    )
    journal.release(lease)
    again = journal.acquire_reading(KEY, "app-deploy", "w2", NOW + US, TTL)
    assert again is not None
    assert again[0] == Lease(KEY, "w2", 2, NOW + US + TTL)
    assert again[1] == journal.records(KEY)
    assert again[1].tokens == (token,)
    assert again[1].unfinished == rotation("r1")


def test_acquire_reading_a_held_lease_answers_none_and_changes_nothing(journal: Journal) -> None:
    """Refused as ``acquire`` is while another holds the lease; taken, with the next fence, once it lapses."""
    lease = _lease(journal)
    journal.write(lease, Change(rotation=rotation("r1")))
    before = _everything(journal)
    assert journal.acquire_reading(KEY, "app-deploy", "w2", lease.expires - US, TTL) is None
    assert _everything(journal) == before
    taken = journal.acquire_reading(KEY, "app-deploy", "w2", lease.expires, TTL)
    assert taken is not None
    assert taken[0].fence == lease.fence + 1
    assert taken[1].unfinished == rotation("r1")
    with pytest.raises(LeaseLostError):
        journal.write(lease, Change(rotation=rotation("late")))


# Several workers at once -------------------------------------------------------------------------

WORKERS = 8


def _race(opener: Opener, work: Callable[[Journal, int], object]) -> list[object]:
    """Run ``work(handle, n)`` for each of WORKERS threads, each on its own handle, released together."""
    handles = [opener() for _ in range(WORKERS)]
    start = threading.Barrier(WORKERS)
    results: list[object] = [None] * WORKERS

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = work(handles[n], n)
        except Exception as error:  # noqa: BLE001 - the error is the result to compare
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_workers_racing_for_one_lease_one_wins(opener: Opener) -> None:
    """Eight workers acquire one free target at once: exactly one lease, and only its writes land."""
    leases = _race(opener, lambda j, n: j.acquire(KEY, "app-deploy", f"w{n}", NOW, TTL))
    [winner] = [lease for lease in leases if lease is not None]
    assert isinstance(winner, Lease)
    assert winner.fence == 1
    journal = opener()
    journal.write(winner, Change(rotation=rotation()))
    assert journal.rotations(KEY) == [rotation()]


def test_workers_racing_for_an_expired_lease_one_wins(opener: Opener) -> None:
    """Once the lease has lapsed, eight workers at once: one takes it with the next fence, the rest None."""
    journal = opener()
    old = _lease(journal)
    leases = _race(opener, lambda j, n: j.acquire(KEY, "app-deploy", f"w{n}", old.expires, TTL))
    [winner] = [lease for lease in leases if lease is not None]
    assert isinstance(winner, Lease)
    assert winner.fence == old.fence + 1


def test_racing_writes_with_stale_fences_are_all_refused(opener: Opener) -> None:
    """Eight leases taken in turn, then all write at once: only the newest lands, the seven others fail."""
    journal = opener()
    leases = [_lease(journal, KEY, f"w{n}", NOW + n * TTL) for n in range(WORKERS)]
    results = _race(opener, lambda j, n: j.write(leases[n], Change(rotation=rotation(f"by-w{n}"))))
    refused = [n for n, result in enumerate(results) if isinstance(result, LeaseLostError)]
    assert refused == list(range(WORKERS - 1))
    assert results[-1] == Change(rotation=rotation(f"by-w{WORKERS - 1}"))  # the write, as stored
    assert [r.id for r in journal.rotations(KEY)] == [f"by-w{WORKERS - 1}"]


def test_a_takeover_racing_the_old_holders_writes_leaves_no_write_after_it(opener: Opener) -> None:
    """The old holder writes in a loop while a new worker takes over: after the takeover, none of it lands."""
    journal = opener()
    old = _lease(journal)
    landed: list[int] = []

    def work(handle: Journal, n: int) -> object:
        if n == 0:
            return handle.acquire(KEY, "app-deploy", "w2", old.expires, TTL)
        for i in range(20):
            try:
                handle.write(old, Change(rotation=rotation(f"w{n}-{i}", at=NOW + i * US)))
            except LeaseLostError:
                return i
            landed.append(n)
        return None

    results = _race(opener, work)
    new = results[0]
    assert isinstance(new, Lease)
    with pytest.raises(LeaseLostError):
        journal.write(old, Change(rotation=rotation("after")))
    assert len(journal.rotations(KEY, 1000)) == len(landed)
    journal.write(new, Change(rotation=rotation("new")))


def test_a_takeover_read_sees_every_write_of_the_lapsed_holder(opener: Opener) -> None:
    """``acquire_reading`` racing the old holder's writes: its records hold every write that landed."""
    journal = opener()
    old = _lease(journal)
    landed: list[str] = []

    def work(handle: Journal, n: int) -> object:
        if n == 0:
            return handle.acquire_reading(KEY, "app-deploy", "w2", old.expires, TTL)
        for i in range(20):
            rotation_id = f"w{n}-{i}"
            try:
                handle.write(old, Change(rotation=rotation(rotation_id, at=NOW + i * US)))
            except LeaseLostError:
                return i
            landed.append(rotation_id)
        return None

    results = _race(opener, work)
    taken = results[0]
    assert isinstance(taken, tuple)
    new, records = taken
    # Every write of the old holder that landed did so before the takeover, and the read saw it:
    # the records it answered are the store's now, and nothing was written since.
    assert records == journal.records(KEY)
    assert {r.id for r in journal.rotations(KEY, 1000)} == set(landed)
    if landed:
        assert records.unfinished is not None
    journal.write(new, Change(rotation=rotation("new")))


# Owners and forget -------------------------------------------------------------------------------


def test_owners_finds_a_token_across_targets_of_one_gitlab(journal: Journal) -> None:
    """``owners`` names each key on that GitLab tracking a token id, with its role; other GitLabs never."""
    other = TargetKey(KEY.gitlab_url, 43, "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
    elsewhere = TargetKey("https://gitlab.other.example.com", 42, KEY.connection_id)
    for key, name, role in ((KEY, "app-deploy", Role.CURRENT), (other, "api-deploy", Role.PENDING_REVOKE)):
        lease = journal.acquire(key, name, "w1", NOW, TTL)
        assert lease is not None
        journal.write(lease, Change(tokens=(TokenRecord(key, 7, "t", Origin.ADOPTED, role, None),)))
    lease = journal.acquire(elsewhere, "far", "w1", NOW, TTL)
    assert lease is not None
    journal.write(lease, Change(tokens=(TokenRecord(elsewhere, 7, "t", Origin.CREATED, Role.CURRENT, None),)))
    owners = journal.owners(KEY.gitlab_url, 7)
    assert [(o.key, o.target, o.role) for o in owners] == sorted(
        [(KEY, "app-deploy", Role.CURRENT), (other, "api-deploy", Role.PENDING_REVOKE)],
        key=lambda o: str(o[0]),
    )
    assert journal.owners(KEY.gitlab_url, 8) == []
    assert [o.target for o in journal.owners(elsewhere.gitlab_url, 7)] == ["far"]


def test_every_kinds_key_is_its_own_target_and_owner(journal: Journal) -> None:
    """Group and service-account keys sharing a project's id stay apart: state, tokens, owners, history."""
    keys = [
        TargetKey.of(KEY.gitlab_url, owner, KEY.connection_id)
        for owner in (
            Owner(Kind.PROJECT, 42),
            Owner(Kind.GROUP, 42),
            Owner(Kind.SERVICE_ACCOUNT, 42, Kind.GROUP, 42),
            Owner(Kind.SERVICE_ACCOUNT, 42, Kind.PROJECT, 42),
            Owner(Kind.SERVICE_ACCOUNT, 42),
        )
    ]
    assert keys[0] == KEY  # a project key is the key every store held before kinds
    for index, key in enumerate(keys):
        lease = journal.acquire(key, f"t{index}", "w1", NOW, TTL)
        assert lease is not None
        token = TokenRecord(key, 7, f"t{index}-x", Origin.CREATED, Role.CURRENT, None, f"r{index}")
        journal.write(lease, Change(rotation=replace(rotation(f"r{index}"), key=key), tokens=(token,)))
    for index, key in enumerate(keys):
        assert [t.key.owner for t in journal.tokens(key)] == [key.owner]
        assert [r.id for r in journal.rotations(key, 10)] == [f"r{index}"]
        state = journal.target(key)
        assert state is not None
        assert state.name == f"t{index}"
    assert {state.key for state in journal.targets()} == set(keys)
    assert {(o.key, o.target) for o in journal.owners(KEY.gitlab_url, 7)} == {
        (key, f"t{index}") for index, key in enumerate(keys)
    }


def test_owners_sees_one_instance_however_its_url_is_spelled(journal: Journal) -> None:
    """A key recorded as ``https://GitLab.example.com:443/`` owns the token for ``https://gitlab.example.com``."""
    spelled = TargetKey("https://GitLab.example.com:443/", 42, "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
    lease = journal.acquire(spelled, "old-spelling", "w1", NOW, TTL)
    assert lease is not None
    journal.write(lease, Change(tokens=(TokenRecord(spelled, 9, "t", Origin.CREATED, Role.CURRENT, None),)))
    assert [(o.key, o.role) for o in journal.owners(KEY.gitlab_url, 9)] == [(spelled, Role.CURRENT)]
    assert journal.owners("https://gitlab.example.com:8443", 9) == []
    assert journal.owners("http://gitlab.example.com", 9) == []


def test_owners_follow_roles_renames_and_forget(journal: Journal) -> None:
    """An owner's role and name are the latest written; any role counts; a forgotten key owns nothing."""
    lease, other = _lease(journal), _lease(journal, OTHER_KEY)
    token = TokenRecord(KEY, 7, "t", Origin.CREATED, Role.CANDIDATE, None)
    journal.write(lease, Change(tokens=(token,)))
    journal.write(other, Change(tokens=(replace(token, key=OTHER_KEY, role=Role.REVOKED),)))
    journal.write(
        lease, Change(tokens=(replace(token, role=Role.CURRENT),), target=TargetState(KEY, "renamed"))
    )
    owners = {(o.key, o.target, o.role) for o in journal.owners(KEY.gitlab_url, 7)}
    assert owners == {(KEY, "renamed", Role.CURRENT), (OTHER_KEY, "api-deploy", Role.REVOKED)}
    journal.forget(lease, "forgotten")
    assert [(o.key, o.role) for o in journal.owners(KEY.gitlab_url, 7)] == [(OTHER_KEY, Role.REVOKED)]


def test_forget_drops_a_key_but_keeps_its_rotations(journal: Journal) -> None:
    """`forget` drops a key's state, tokens and tombstones; rotations stay, an unfinished one closed."""
    lease = _lease(journal)
    token = TokenRecord(KEY, 7, "app-deploy-x", Origin.CREATED, Role.CURRENT, date(2026, 12, 25), "r1")
    stone = Tombstone(KEY, "app-deploy-y", NOW + timedelta(days=3))
    journal.write(lease, Change(rotation=rotation(), tokens=(token,), tombstones=(stone,)))
    other_lease = _lease(journal, OTHER_KEY)
    journal.write(other_lease, Change(tokens=(replace(token, key=OTHER_KEY),)))
    journal.forget(lease, "forgotten by the operator")
    assert (journal.target(KEY), journal.tokens(KEY), journal.tombstones(KEY)) == (None, [], [])
    assert [s.key for s in journal.targets()] == [OTHER_KEY]
    assert journal.unfinished(KEY) is None
    [kept] = journal.rotations(KEY)
    assert (kept.outcome, kept.error) == (Outcome.FAILED, "forgotten by the operator")
    assert len(journal.tokens(OTHER_KEY)) == 1
    with pytest.raises(LeaseLostError):
        journal.forget(lease, "again")


def test_forget_closes_only_the_keys_unfinished_rotations(journal: Journal) -> None:
    """Finished rotations keep their outcome, other keys' unfinished ones stay open, the order is kept."""
    lease, other = _lease(journal), _lease(journal, OTHER_KEY)
    journal.write(lease, Change(rotation=rotation("done", outcome=Outcome.SUCCEEDED)))
    journal.write(lease, Change(rotation=rotation("open")))
    journal.write(other, Change(rotation=replace(rotation("theirs"), key=OTHER_KEY)))
    journal.forget(lease, "forgotten")
    assert [(r.id, r.outcome, r.error) for r in journal.rotations()] == [
        ("theirs", Outcome.IN_PROGRESS, None),
        ("open", Outcome.FAILED, "forgotten"),
        ("done", Outcome.SUCCEEDED, None),
    ]
    assert journal.unfinished(OTHER_KEY) is not None
    assert journal.project_id(KEY.gitlab_url, "acme/app") is None


def test_a_forgotten_key_starts_afresh_and_its_history_stays(journal: Journal) -> None:
    """After forget the key is free at once, with a new state under the new name; its rotations still list."""
    lease = _lease(journal)
    journal.write(lease, Change(rotation=rotation(), target=TargetState(KEY, "app-deploy", failures=3)))
    journal.forget(lease, "forgotten")
    again = journal.acquire(KEY, "new-name", "w2", NOW, TTL)
    assert again is not None
    assert journal.target(KEY) == TargetState(KEY, "new-name")
    assert journal.unfinished(KEY) is None
    assert [r.id for r in journal.rotations(KEY)] == ["r1"]
    with pytest.raises(LeaseLostError):
        journal.write(lease, Change())
