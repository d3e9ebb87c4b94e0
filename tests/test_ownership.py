"""One token, one owner (architecture §6): no target adopts or revokes a token another target tracks.

Both targets here sit on one project (acme/app), each with its own connection: the case where a
token id written into the wrong target's ``adopt_token_id`` would lock the other connection out.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gitlab
import httpx
import pytest
import yaml

from rotator.core.model import Change, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.journal.sqlite import SQLiteJournal
from rotator.testing import Fakes
from tests.cli_harness import CONNECTIONS, Harness, patch_by_hand


pytestmark = pytest.mark.slow
PATCH = "PATCH /api/v1/app-connections/gitlab/:connectionId"


@pytest.fixture
def h(fakes: Fakes, tmp_path: Path) -> Harness:
    """app-deploy alone, grace 1h, adopting the token its connection holds."""
    harness = Harness(fakes, tmp_path)
    _configure(harness)
    return harness


def _configure(h: Harness, second: dict[str, Any] | None = None) -> None:
    """app-deploy on acme/app, plus (if given) a second target on the same project."""
    seed = h.fakes.seed
    targets = [
        {
            "name": "app-deploy",
            "project": seed.project_paths[0],
            "connection_id": CONNECTIONS[0],
            "adopt_token_id": seed.adopt_token_ids[0],
        }
    ]
    if second is not None:
        targets.append({"name": "app-second", "project": seed.project_paths[0], **second})
    config = {
        "gitlab": {"url": seed.gitlab_url, "timeout": "10s"},
        "infisical": {"url": seed.infisical_url, "timeout": "10s"},
        "state": {"url": "sqlite:///state.db"},
        "defaults": {"grace": "1h", "token": {"scopes": ["api"], "lifetime": "30d"}},
        "targets": targets,
    }
    (h.folder / "rotator.yaml").write_text(yaml.safe_dump(config))


def _current(h: Harness) -> int:
    """app-deploy's current token id, from `status --json`."""
    token_id = h.run("status", "--json").json()["targets"][0]["token_id"]
    assert isinstance(token_id, int)
    return token_id


def test_adopting_a_token_another_target_owns_fails_and_touches_nothing(h: Harness) -> None:
    """A second target whose adopt_token_id is app-deploy's current token: exit 1 naming both, no mutation."""
    assert h.run("run-once").code == 0
    owned = _current(h)
    _configure(h, {"connection_id": CONNECTIONS[1], "adopt_token_id": owned})
    h.fakes.gitlab.reset_calls()
    h.fakes.infisical.reset_calls()
    result = h.run("run-once")
    assert result.code == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("app-second"))
    assert "adopt_token_id" in line
    assert "app-deploy" in line
    assert h.mutations() == 0
    assert owned in h.active_tokens(0)
    assert h.held_works(0)
    check = h.run("check")
    assert check.code == 1, check.stdout
    assert any(
        x.startswith("PROBLEM app-second: adopt_token_id") and "app-deploy" in x
        for x in check.stdout.splitlines()
    ), check.stdout


def test_a_removed_target_never_revokes_a_token_another_target_holds(
    h: Harness, infisical: httpx.Client
) -> None:
    """A removed target's pending revoke of app-deploy's current token is refused: exit 1, token kept."""
    assert h.run("run-once").code == 0
    owned = _current(h)
    held_hash = infisical.get(f"/api/v1/app-connections/gitlab/{CONNECTIONS[1]}").json()["appConnection"][
        "credentialsHash"
    ]
    # A journal written before the ownership rule: a target, since removed from the config, adopted
    # app-deploy's token and retired it.
    gone = TargetKey(h.fakes.seed.gitlab_url, h.fakes.seed.project_ids[0], CONNECTIONS[1])
    now = datetime.now(UTC) + h.fakes.clock.offset
    journal = SQLiteJournal(h.folder / "state.db")
    lease = journal.acquire(gone, "old-second", "test", now, timedelta(seconds=1))
    assert lease is not None
    pending = TokenRecord(
        gone, owned, "adopted", Origin.ADOPTED, Role.PENDING_REVOKE, None, revoke_after=now, retired_at=now
    )
    state = TargetState(gone, "old-second", verified_hash=held_hash, verified_at=now, verified_start=now)
    journal.write(lease, Change(tokens=(pending,), target=state))
    journal.release(lease)
    journal.close()
    result = h.run("run-once")
    assert result.code == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("old-second (removed)"))
    assert f"token {owned}" in line
    assert "app-deploy" in line
    assert "target.alert" in result.stderr
    assert owned in h.active_tokens(0)
    assert h.held_works(0)
    journal = SQLiteJournal(h.folder / "state.db")
    assert [t.role for t in journal.tokens(gone)] == [Role.PENDING_REVOKE]
    journal.close()


def test_adopt_token_id_set_after_a_refused_first_push_is_applied(h: Harness) -> None:
    """First push refused, then adopt_token_id set: the adopted token is retired after the verified push."""
    adopted = h.fakes.seed.adopt_token_ids[0]
    _configure(h)
    config = yaml.safe_load((h.folder / "rotator.yaml").read_text())
    del config["targets"][0]["adopt_token_id"]
    (h.folder / "rotator.yaml").write_text(yaml.safe_dump(config))
    h.fakes.infisical.faults.fail(PATCH, 400)
    assert h.run("run-once").code == 1
    _configure(h)  # the operator now sets adopt_token_id to the token the connection holds
    h.fakes.clock.advance(timedelta(minutes=6))  # past the failure's backoff
    result = h.run("run-once")
    assert result.code == 0, result.stdout + result.stderr
    pending = h.run("status", "--json").json()["targets"][0]["pending_revokes"]
    assert [p["token_id"] for p in pending] == [adopted]
    h.fakes.clock.advance(timedelta(minutes=61))
    assert h.run("run-once").code == 0
    assert adopted not in h.active_tokens(0)
    assert len(h.active_tokens(0)) == 1
    assert h.held_works(0)


def test_take_over_lists_the_untracked_token_a_person_wrote(
    h: Harness, infisical: httpx.Client, gl: gitlab.Gitlab
) -> None:
    """After a person writes a hand-made token into the connection, `--take-over` and `status` name it."""
    assert h.run("run-once").code == 0
    project = gl.projects.get(h.fakes.seed.project_ids[0], lazy=True)
    expires = h.fakes.clock.now().date() + timedelta(days=30)
    by_hand = project.access_tokens.create(
        {"name": "by-hand", "scopes": ["api"], "access_level": 40, "expires_at": expires.isoformat()}
    )
    assert patch_by_hand(infisical, h.fakes.gitlab.url, CONNECTIONS[0], by_hand.token).status_code == 200
    taken = h.run("rotate", "app-deploy", "--take-over")
    assert taken.code == 0, taken.stdout + taken.stderr
    assert f"{by_hand.id} by-hand" in taken.stdout
    untracked = h.run("status", "--json").json()["targets"][0]["untracked_tokens"]
    assert [t["token_id"] for t in untracked["tokens"]] == [by_hand.id]
    assert untracked["as_of"]
    table = h.run("status")
    assert table.code == 0
    assert f"{by_hand.id} by-hand" in table.stdout
