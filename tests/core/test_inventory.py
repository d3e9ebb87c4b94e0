"""The inventory's pure rules: who owns a token, how many days it has left, which ones a digest names."""

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rotator.core.inventory import (
    Listed,
    Managed,
    ScopeReport,
    TokenKind,
    days_left,
    expiring_unmanaged,
    owners_of,
)
from rotator.core.model import Origin, Role, TokenInfo, TokenRecord
from tests.core.samples import KEY, PURE, T0


def _record(token_id: int, role: Role, origin: Origin = Origin.CREATED) -> TokenRecord:
    """A tracked token of KEY."""
    return TokenRecord(KEY, token_id, f"rotator-{token_id}", origin, role, date(2026, 2, 1))


def _listed(token_id: int, expires_at: date | None, managed: Managed | None = None) -> Listed:
    """An active project access token of scope ``project:acme/app``."""
    info = TokenInfo(token_id, f"t{token_id}", active=True, revoked=False, expires_at=expires_at)
    return Listed("project:acme/app", TokenKind.PROJECT, "project acme/app", info, managed)


def test_only_live_roles_own_a_token_and_adoption_is_kept() -> None:
    """Candidate, possibly-held, current and pending-revoke tokens are owned; revoked ones are nobody's."""
    owners = owners_of(
        [
            ("app", _record(1, Role.CURRENT)),
            ("app", _record(2, Role.PENDING_REVOKE, Origin.ADOPTED)),
            ("app", _record(3, Role.POSSIBLY_HELD)),
            ("app", _record(4, Role.CANDIDATE)),
            ("app", _record(5, Role.REVOKED)),
            ("app", _record(6, Role.ABANDONED)),
        ]
    )
    assert owners == {
        1: Managed("app", Role.CURRENT, adopted=False),
        2: Managed("app", Role.PENDING_REVOKE, adopted=True),
        3: Managed("app", Role.POSSIBLY_HELD, adopted=False),
        4: Managed("app", Role.CANDIDATE, adopted=False),
    }


@PURE
@given(st.dates(date(2025, 1, 1), date(2028, 1, 1)), st.integers(0, 86_399_999))
def test_days_left_counts_whole_days_to_midnight_utc(expires_at: date, millis: int) -> None:
    """Days left are whole days to 00:00 UTC on expires_at, rounded down, negative once past."""
    now = T0 + timedelta(milliseconds=millis)
    left = days_left(expires_at, now)
    dies = datetime.combine(expires_at, time(0), UTC)
    assert left is not None
    assert now + timedelta(days=left) <= dies < now + timedelta(days=left + 1)


def test_no_expiry_means_no_days_left_and_no_warning() -> None:
    """A token without expires_at has no days left and never enters a digest."""
    assert days_left(None, T0) is None
    report = ScopeReport("project:acme/app", (_listed(1, None),))
    assert expiring_unmanaged(report, T0, timedelta(days=3650)) == []


def test_the_digest_names_unmanaged_tokens_inside_warn_before_soonest_first() -> None:
    """Unmanaged tokens dying within warn_before (past ones too) are named soonest first; managed never."""
    owner = Managed("app", Role.CURRENT, adopted=False)
    report = ScopeReport(
        "project:acme/app",
        (
            _listed(1, date(2026, 1, 10)),  # 9 days: inside 14
            _listed(2, date(2026, 1, 30)),  # 29 days: outside
            _listed(3, date(2025, 12, 31)),  # already past, GitLab still listing it active
            _listed(4, date(2026, 1, 5), owner),  # inside, but a target owns it
            _listed(5, date(2026, 1, 15)),  # exactly 14 days: inside
        ),
    )
    named = expiring_unmanaged(report, T0, timedelta(days=14))
    assert [t.info.id for t in named] == [3, 1, 5]


def test_a_removed_targets_held_token_is_unmanaged_but_its_pending_revoke_is_not() -> None:
    """Nothing rotates a removed target's current or possibly-held token; its pending revokes are done."""
    report = ScopeReport(
        "project:acme/app",
        tuple(
            _listed(token_id, date(2026, 1, 5), Managed("old", role, adopted=False, removed=True))
            for token_id, role in enumerate((Role.CURRENT, Role.POSSIBLY_HELD, Role.PENDING_REVOKE), 1)
        ),
    )
    assert [t.unmanaged for t in report.tokens] == [True, True, False]
    assert [t.info.id for t in expiring_unmanaged(report, T0, timedelta(days=14))] == [1, 2]
    owners = owners_of([("old", _record(7, Role.CURRENT))], removed={KEY})
    assert owners[7].removed
