"""Records the journal tests share: one target key, one instant, a rotation and a resolve failure."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from rotator.core.model import Outcome, RotationRecord, Step, TargetKey, UnresolvedProject


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = TargetKey("https://gitlab.example.com", 42, "3c90c3cc-0d44-4b50-8888-8dd25736052a")
OTHER_KEY = replace(KEY, connection_id="7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
TTL = timedelta(minutes=10)


def rotation(
    rotation_id: str = "r1", *, at: datetime = NOW, outcome: Outcome = Outcome.IN_PROGRESS
) -> RotationRecord:
    """A rotation of ``KEY`` planned at ``at``, at its first step."""
    return RotationRecord(
        id=rotation_id,
        key=KEY,
        target="app-deploy",
        trigger="run-once",
        actor="host:1",
        step=Step.PLANNED,
        outcome=outcome,
        token_name="app-deploy-20261125-abcdef01",
        requested_expiry=date(2026, 12, 25),
        planned_at=at,
    )


UNRESOLVED = UnresolvedProject(
    KEY.gitlab_url,
    "acme/gone",
    since=NOW,
    at=NOW + timedelta(minutes=5),
    failures=2,
    status=404,
    error="target=app-deploy step=resolve gitlab GET /projects/:id -> 404: 404 Project Not Found",
)
