"""The one retry loop the GitLab, Infisical and webhook adapters share (rotator.adapters.retrying.call)."""

from collections.abc import Callable, Iterator
from http import HTTPStatus

import pytest

from hypothesis import given
from hypothesis import strategies as st

from rotator.adapters.retrying import MAX_WAIT, SERVER_ERRORS, Answer, Policy, call


_OK = "ok"
#: What one attempt may come to: a status, no answer at all (None), or success.
_OUTCOMES = st.one_of(
    st.sampled_from([None, 200, 400, 401, 404, 409, 429, 500, 502, 503, 504, 522, 599]),
    st.integers(min_value=100, max_value=999),
)


class _FailureError(Exception):
    """An attempt that failed with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class _OtherError(Exception):
    """A failure no retry can help (an adapter's answer function says None)."""


def _answer(exc: BaseException) -> Answer | None:
    return exc.answer if isinstance(exc, _FailureError) else None


class _Upstream:
    """Plays a scripted list of outcomes, one per attempt; past its end every attempt succeeds."""

    def __init__(self, outcomes: list[int | None], headers: dict[str, str] | None = None) -> None:
        self._outcomes: Iterator[int | None] = iter(outcomes)
        self._headers = headers or {}
        self.attempts = 0
        self.slept: list[float] = []

    def send(self) -> str:
        self.attempts += 1
        status = next(self._outcomes, HTTPStatus.OK)
        if _succeeded(status):
            return _OK
        raise _FailureError(Answer(status, self._headers))

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def run(self, policy: Policy, attempts: int, stopping: Callable[[], bool] | None = None) -> str:
        return call(self.send, policy, _answer, attempts=attempts, sleep=self.sleep, stopping=stopping)


def _succeeded(status: int | None) -> bool:
    return status is not None and HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES


def _expected_attempts(policy: Policy, outcomes: list[int | None], attempts: int) -> int:
    """The reference: attempts until a success, an answer not retried, or the limit."""
    for index, status in enumerate(outcomes[: max(1, attempts)]):
        if _succeeded(status) or not policy.retries(Answer(status)):
            return index + 1
    return min(len(outcomes) + 1, max(1, attempts))


@given(
    outcomes=st.lists(_OUTCOMES, max_size=12),
    attempts=st.integers(min_value=-1, max_value=8),
    idempotent=st.booleans(),
)
def test_never_more_attempts_than_the_limit(
    outcomes: list[int | None], attempts: int, idempotent: bool
) -> None:
    """Attempts stop at the limit (at least one), a success or an answer not retried; a sleep between each."""
    upstream = _Upstream(outcomes)
    policy = Policy(idempotent=idempotent)
    try:
        result: str | None = upstream.run(policy, attempts)
    except _FailureError:
        result = None
    assert upstream.attempts == _expected_attempts(policy, outcomes, attempts)
    assert upstream.attempts <= max(1, attempts)
    assert len(upstream.slept) == upstream.attempts - 1
    assert all(0 <= wait <= MAX_WAIT for wait in upstream.slept)
    last = outcomes[upstream.attempts - 1] if upstream.attempts <= len(outcomes) else HTTPStatus.OK
    assert (result == _OK) == _succeeded(last)


@given(outcomes=st.lists(_OUTCOMES, min_size=1, max_size=12), attempts=st.integers(min_value=1, max_value=8))
def test_a_non_idempotent_call_is_never_blind_retried(outcomes: list[int | None], attempts: int) -> None:
    """A create is tried again only after a 429 (refused before any effect), never after a 5xx or silence."""
    upstream = _Upstream(outcomes)
    last: int | None = HTTPStatus.OK
    try:
        upstream.run(Policy(idempotent=False), attempts)
    except _FailureError as failure:
        last = failure.answer.status
    # The last answer is a success, final for a create, or a 429 with no attempt left.
    assert last != HTTPStatus.TOO_MANY_REQUESTS or upstream.attempts == attempts
    retried_after = outcomes[: upstream.attempts - 1]
    assert all(status == HTTPStatus.TOO_MANY_REQUESTS for status in retried_after)


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 520, 530])
def test_a_non_idempotent_call_is_attempted_once_when_the_outcome_is_unknown(status: int | None) -> None:
    """A 5xx or a lost answer to a create leaves it unknown: one attempt, no sleep, the failure raised."""
    upstream = _Upstream([status, status, status])
    with pytest.raises(_FailureError):
        upstream.run(Policy(idempotent=False), attempts=5)
    assert (upstream.attempts, upstream.slept) == (1, [])


def test_an_idempotent_call_retries_an_unknown_outcome_with_jittered_backoff() -> None:
    """Two 503s then a 200: three attempts, waits within [ceiling/2, ceiling] of 0.5 * 2**attempt."""
    upstream = _Upstream([503, 503])
    assert upstream.run(Policy(idempotent=True), attempts=5) == _OK
    assert upstream.attempts == 3
    first, second = upstream.slept
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


def test_a_429_waits_what_the_server_asks() -> None:
    """Retry-After is honoured (capped at MAX_WAIT), for a call that is not idempotent too."""
    upstream = _Upstream([429, 429], headers={"Retry-After": "7"})
    assert upstream.run(Policy(idempotent=False), attempts=5) == _OK
    assert upstream.slept == [7.0, 7.0]


def test_the_policy_says_which_statuses_are_transient() -> None:
    """A status outside the policy's transient set is final, even for an idempotent call."""
    upstream = _Upstream([507])
    with pytest.raises(_FailureError):
        upstream.run(Policy(idempotent=True, transient=frozenset({502})), attempts=5)
    assert upstream.attempts == 1
    assert 507 in SERVER_ERRORS


def test_a_failure_the_adapter_does_not_know_is_raised_at_once() -> None:
    """An exception the answer function maps to None (a refused redirect) is never retried."""
    attempts = []

    def send() -> str:
        attempts.append(1)
        raise _OtherError

    with pytest.raises(_OtherError):
        call(send, Policy(idempotent=True), _answer, attempts=5, sleep=lambda _: None)
    assert len(attempts) == 1


def test_stopping_ends_the_retries_with_the_last_failure_intact() -> None:
    """Once stopping() says so after a wait, no attempt is made; the last failure keeps its own cause."""
    stop = [False]
    cause = OSError("connection reset")
    attempts = []

    def send() -> str:
        attempts.append(1)
        failure = _FailureError(Answer(None))
        failure.__cause__ = cause
        raise failure

    def sleep(_: float) -> None:
        stop[0] = len(attempts) == 2

    with pytest.raises(_FailureError) as raised:
        call(send, Policy(idempotent=True), _answer, attempts=5, sleep=sleep, stopping=lambda: stop[0])
    assert len(attempts) == 2
    assert raised.value.__cause__ is cause
