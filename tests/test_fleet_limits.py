"""The rate ceilings hold for the fleet: adapters count their calls in the journal's shared ledger.

Nothing really sleeps: every wait moves the fakes' clock on, which the ledger's clock reads too.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rotator.adapters import retrying
from rotator.adapters.gitlab import GitLabAPI
from rotator.adapters.infisical import InfisicalAPI, InfisicalAuth
from rotator.core.errors import JournalUnavailableError
from rotator.core.ledger import Reservation
from rotator.core.secret import Secret
from rotator.testing import FakeClock, FakeGitLab, Fakes
from rotator.testing.transport import FakeTransport, session_for
from tests.journal.stores import postgres_store


CEILING = 5
SELF = "GET /api/v4/personal_access_tokens/self"


class ScriptedLedger:
    """A ledger answering each take from a script (a wait, or an exception to raise)."""

    def __init__(self, *answers: float | Exception) -> None:
        """Answer ``answers`` in turn."""
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def take(self, bucket: str, per_minute: int) -> float:
        """The next answer."""
        return self.reserve(bucket, per_minute, 1).wait

    def reserve(self, bucket: str, per_minute: int, calls: int) -> Reservation:
        """The next answer: one call granted for its second's rest, or the wait."""
        self.asked.append((bucket, per_minute))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Reservation(min(calls, 1) if answer == 0.0 else 0, answer, 1.0 if answer == 0.0 else 0.0)

    def claim(self, job: str, every: timedelta) -> bool:
        """Not used by the adapters."""
        raise NotImplementedError


def test_a_shared_limiter_waits_what_the_ledger_says_then_asks_again() -> None:
    """Refused with a wait: that wait is slept, and the ledger asked again until it counts the call."""
    ledger, slept = ScriptedLedger(12.5, 0.25, 0.0), list[float]()
    limiter = retrying.Limiter(3, sleep=slept.append, ledger=ledger, bucket="gitlab:x")
    limiter.acquire()
    assert slept == [12.5, 0.25]
    assert ledger.asked == [("gitlab:x", 3)] * 3


def test_buckets_name_the_kind_and_one_spelling_of_the_upstream() -> None:
    """Host case, a default port written out and a trailing slash make no second bucket."""
    assert (
        retrying.bucket("gitlab", "https://GitLab.example.com:443/")
        == "gitlab:https://gitlab.example.com:443"
    )
    assert retrying.bucket("gitlab", "https://gitlab.example.com") == "gitlab:https://gitlab.example.com:443"
    assert (
        retrying.bucket("infisical-read", "http://127.0.0.1:8930/x/")
        == "infisical-read:http://127.0.0.1:8930/x"
    )


@pytest.mark.parametrize(
    "failure",
    [JournalUnavailableError("state.url", "the journal's database at db:5432: gone"), TimeoutError("slow")],
    ids=["unreachable", "other"],
)
def test_a_ledger_that_fails_stops_the_call_before_it_is_sent(fakes: Fakes, failure: Exception) -> None:
    """GitLab and Infisical alike: the journal's error (not an upstream's); no request reaches either."""
    gitlab = GitLabAPI(
        fakes.seed.gitlab_url,
        Secret(fakes.seed.manager_token),
        timeout=5,
        user_agent="rotator/test",
        session=session_for(fakes.gitlab),
        ledger=ScriptedLedger(failure),
    )
    infisical = InfisicalAPI(
        fakes.seed.infisical_url,
        InfisicalAuth.token(Secret(fakes.seed.infisical_token)),
        timeout=5,
        user_agent="rotator/test",
        client=httpx.Client(transport=FakeTransport(fakes.infisical)),
        ledger=ScriptedLedger(failure),
    )
    with pytest.raises(JournalUnavailableError, match=r"^state\.url: ") as stopped:
        gitlab.manager_self()
    assert "slow" not in str(stopped.value)  # another failure's text is not carried
    with pytest.raises(JournalUnavailableError, match=r"^state\.url: "):
        infisical.get_connection(fakes.seed.connection_ids[0])
    assert fakes.gitlab.calls(user_agent="rotator/") == []
    assert fakes.infisical.calls(user_agent="rotator/") == []
    gitlab.close()
    infisical.close()


@pytest.fixture
def limited() -> Iterator[tuple[FakeGitLab, str]]:
    """A fake GitLab throttling at :data:`CEILING` a minute per user, 10 s into a minute; a token."""
    clock = FakeClock(datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))
    gitlab = FakeGitLab(clock, requests_per_minute=CEILING)
    gitlab.start("127.0.0.1", 0)
    try:
        user = gitlab.seed_user("rotator-manager")
        yield gitlab, gitlab.seed_personal_token(user, ["api"]).value
    finally:
        gitlab.stop()


def _two_replicas(
    gitlab: FakeGitLab, token: str, ledgers: tuple[object, object] | None
) -> tuple[list[GitLabAPI], list[tuple[datetime, str]]]:
    """Two adapters (two replicas' clients) at the ceiling, each on its own ledger or on none."""
    answers: list[tuple[datetime, str]] = []

    def wait(seconds: float) -> None:
        gitlab.clock.advance(timedelta(seconds=seconds))

    def monotonic() -> float:
        return gitlab.clock.now().timestamp()

    def heard(_upstream: str, _route: str, status: str) -> None:
        answers.append((gitlab.clock.now(), status))

    made = [
        GitLabAPI(
            gitlab.url,
            Secret(token),
            timeout=5,
            user_agent="rotator/test",
            requests_per_minute=CEILING,
            session=session_for(gitlab),
            sleep=wait,
            monotonic=monotonic,
            on_response=heard,
            ledger=ledger,  # type: ignore[arg-type]
        )
        for ledger in (ledgers or (None, None))
    ]
    return made, answers


def test_two_replicas_sharing_a_postgres_ledger_stay_under_the_ceiling_together(
    limited: tuple[FakeGitLab, str],
) -> None:
    """12 calls, alternating between two adapters on two handles: the server, at the ceiling, refuses none."""
    gitlab, token = limited
    with postgres_store(gitlab.clock.now) as opener:
        apis, answers = _two_replicas(gitlab, token, (opener(), opener()))
        for turn in range(12):
            apis[turn % 2].manager_self()
        for api in apis:
            api.close()
    assert [status for _, status in answers] == ["200"] * 12
    assert len(gitlab.calls(SELF)) == 12
    # The ledger made them wait: 12 calls at 5 a minute span more than two minutes of (fake) time.
    assert answers[-1][0] - answers[0][0] >= timedelta(minutes=2)


def test_without_the_shared_ledger_two_replicas_exceed_the_ceiling(limited: tuple[FakeGitLab, str]) -> None:
    """The same calls with a limiter in each process: the server refuses some (what the ledger prevents)."""
    gitlab, token = limited
    apis, answers = _two_replicas(gitlab, token, None)
    for turn in range(12):
        apis[turn % 2].manager_self()
    for api in apis:
        api.close()
    assert "429" in [status for _, status in answers]
