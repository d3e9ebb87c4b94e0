"""The trigger requests' part of the journal contract (:class:`rotator.core.ports.Requests`), on every store.

A request is claimed by one replica until its claim lapses, by the clock each call passes (the
PostgreSQL store under test reads the same instant through its test clock); whoever claims it next
gets a higher claim number, and only the current claim records progress.
"""

from dataclasses import replace
from datetime import timedelta

from rotator.core.model import Change, RequestStatus, TriggerRequest
from rotator.core.ports import Journal
from rotator.core.redact import MARKER
from tests.journal.samples import KEY, NOW, TTL, rotation
from tests.journal.stores import Opener
from tests.journal.test_contract import _lease, _race


def _request(request_id: str = "q1", replica: str | None = "replica-a", minutes: int = 0) -> TriggerRequest:
    return TriggerRequest(
        request_id, "app-deploy", NOW + timedelta(minutes=minutes), arrived_at=NOW, replica=replica
    )


def test_a_request_is_kept_claimed_and_read_back(journal: Journal) -> None:
    """An added request reads back claimed by its replica until now + ttl, claim 1; an unknown id is None."""
    added = journal.add_request(_request(), NOW, TTL)
    assert added == replace(_request(), claim=1, claim_until=NOW + TTL)
    assert journal.request("q1") == added
    assert journal.request("nope") is None
    assert journal.add_request(replace(_request(), target="other"), NOW, TTL) == added  # an id is kept once


def test_only_the_current_claim_records_progress_until_the_request_ends(journal: Journal) -> None:
    """Progress under the current claim lands (redacted); a stale claim's, or any after the end, does not."""
    added = journal.add_request(_request(), NOW, TTL)
    running = replace(
        added, status=RequestStatus.RUNNING, started_at=NOW, detail="token glpat-abcdefghij0123456789"
    )
    assert journal.update_request(running)
    assert journal.request("q1") == replace(running, detail=f"token {MARKER}")
    assert not journal.update_request(replace(running, claim=2))
    assert not journal.update_request(replace(running, replica="replica-b"))
    assert not journal.update_request(replace(_request("unknown"), claim=1))
    finished = replace(running, status=RequestStatus.FINISHED, finished_at=NOW, outcome="done", detail=None)
    assert journal.update_request(finished)
    assert not journal.update_request(replace(finished, outcome="failed"))
    assert journal.request("q1") == finished


def test_a_lapsed_claim_is_taken_once_with_a_higher_claim(journal: Journal) -> None:
    """Live until claim_until; then listed as lapsed and claimed once; the old claim records nothing more."""
    added = journal.add_request(_request(), NOW, TTL)
    journal.add_request(replace(_request("q2", minutes=1), status=RequestStatus.FINISHED), NOW, TTL)
    just_before = NOW + TTL - timedelta(microseconds=1)
    assert journal.lapsed_requests(just_before, 10) == []
    assert journal.claim_request("q1", "replica-b", just_before, TTL) is None
    assert journal.lapsed_requests(NOW + TTL, 10) == [added]
    taken = journal.claim_request("q1", "replica-b", NOW + TTL, TTL)
    assert taken == replace(added, replica="replica-b", claim=2, claim_until=NOW + 2 * TTL)
    assert journal.claim_request("q1", "replica-c", NOW + TTL, TTL) is None  # live again
    assert journal.claim_request("q2", "replica-c", NOW + TTL, TTL) is None  # ended
    assert not journal.update_request(replace(added, status=RequestStatus.RUNNING))
    assert journal.update_request(replace(taken, status=RequestStatus.RUNNING))


def test_renewal_extends_only_the_replicas_open_claims(journal: Journal) -> None:
    """renew_claims moves the replica's open claims on; another replica's, and ended ones, stay lapsed."""
    journal.add_request(_request("mine"), NOW, TTL)
    journal.add_request(_request("theirs", replica="replica-b", minutes=1), NOW, TTL)
    journal.add_request(replace(_request("ended", minutes=2), status=RequestStatus.CANCELLED), NOW, TTL)
    assert journal.renew_claims("replica-a", NOW + TTL / 2, TTL) == 1
    assert [r.id for r in journal.lapsed_requests(NOW + TTL, 10)] == ["theirs"]
    assert journal.request("mine").claim_until == NOW + TTL / 2 + TTL  # type: ignore[union-attr]
    assert journal.request("ended") == replace(
        _request("ended", replica=None, minutes=2), status=RequestStatus.CANCELLED
    )


def test_lapsed_requests_are_oldest_first_and_limited(journal: Journal) -> None:
    """The lapsed requests come back by request time, at most ``limit``."""
    for n in (2, 0, 1):
        journal.add_request(_request(f"q{n}", minutes=n), NOW, TTL)
    assert [r.id for r in journal.lapsed_requests(NOW + TTL, 2)] == ["q0", "q1"]


def test_ended_requests_beyond_the_newest_kept_are_pruned_open_ones_never(journal: Journal) -> None:
    """With keep=2, adding a request drops the oldest ended ones; the oldest open one stays."""
    journal.add_request(_request("open", minutes=0), NOW, TTL, keep=2)
    for n in range(1, 5):
        journal.add_request(
            replace(_request(f"e{n}", minutes=n), status=RequestStatus.FINISHED), NOW, TTL, keep=2
        )
    kept = [n for n in ("open", "e1", "e2", "e3", "e4") if journal.request(n) is not None]
    assert kept == ["open", "e3", "e4"]


def test_the_rotations_a_request_planned_are_found_by_its_id(journal: Journal) -> None:
    """A rotation's request survives the round trip; request_rotations lists that request's, oldest first."""
    lease = _lease(journal)
    first = replace(rotation("r1"), request="q1")
    journal.write(lease, Change(rotation=replace(rotation("r2", at=NOW + TTL), request="q1")))
    journal.write(lease, Change(rotation=first))
    journal.write(lease, Change(rotation=replace(rotation("r3"), request="q2")))
    journal.write(lease, Change(rotation=rotation("r4")))
    assert [r.id for r in journal.request_rotations("q1")] == ["r1", "r2"]
    assert journal.request_rotations("q1")[0] == first
    assert journal.request_rotations("none") == []
    assert journal.rotations(KEY, 1)[0].request == "q1"


def test_replicas_racing_for_one_lapsed_request_one_wins(opener: Opener) -> None:
    """Eight replicas claim one lapsed request at once: exactly one claim, numbered 2."""
    opener().add_request(_request(), NOW, TTL)
    claims = _race(opener, lambda j, n: j.claim_request("q1", f"replica-{n}", NOW + TTL, TTL))
    [winner] = [claim for claim in claims if claim is not None]
    assert isinstance(winner, TriggerRequest)
    assert winner.claim == 2
    assert opener().request("q1") == winner
