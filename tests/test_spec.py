"""The engine's view of the config: frozen specs built by the doors, a removed target told by its flag."""

import dataclasses

from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest

from rotator.core.model import Change, Origin, Role, TargetKey, TargetState, TokenRecord
from rotator.core.spec import EngineSpec, RotationSpec
from rotator.doors.config import engine_spec, parse_config, rotation_spec
from rotator.engine.context import Context
from rotator.engine.run import Engine, RunOptions
from rotator.journal.memory import MemoryJournal


URL = "https://gitlab.example.com"
CONNECTIONS = ("3c90c3cc-0d44-4b50-8888-8dd25736052a", "7f2b8e0a-5d61-4c3e-9a4f-2b1c0d9e8f71")
NOW = datetime(2026, 11, 2, tzinfo=UTC)
CONFIG = {
    "gitlab": {"url": URL},
    "max_concurrent_rotations": 3,
    "defaults": {"grace": "2h", "token": {"scopes": ["api", "read_repository"], "lifetime": "30d"}},
    "targets": [
        {"name": "app-deploy", "project": "group/app", "connection_id": CONNECTIONS[0], "adopt_token_id": 7},
        {
            "name": "web-deploy",
            "project": 12,
            "connection_id": CONNECTIONS[1],
            "rotate_before": "5d",
            "rotate_every": "7d",
            "schedule": "0 3 * * 1",
            "hold_revoke_if_used": False,
            "token": {"name": "web", "access_level": "developer"},
        },
    ],
}


def test_the_engine_spec_carries_what_the_engine_reads_of_the_config() -> None:
    """gitlab.url, the concurrency, and each target with its defaults merged and rotate_before resolved."""
    spec = engine_spec(parse_config(CONFIG))
    assert (spec.gitlab_url, spec.max_concurrent_rotations) == (URL, 3)
    app, web = spec.targets
    assert app == RotationSpec(
        name="app-deploy",
        project="group/app",
        connection_id=CONNECTIONS[0],
        token=app.token,
        token_base_name="app-deploy",
        renew_before=timedelta(days=10),  # a third of the 30-day lifetime
        grace=timedelta(hours=2),
        adopt_token_id=7,
    )
    assert (app.token.scopes, app.token.access_level, app.token.lifetime) == (
        ("api", "read_repository"),
        40,
        timedelta(days=30),
    )
    assert (web.project, web.token_base_name, web.token.access_level) == (12, "web", 30)
    assert (web.renew_before, web.rotate_every, web.schedule) == (
        timedelta(days=5),
        timedelta(days=7),
        "0 3 * * 1",
    )
    assert web.hold_revoke_if_used is False
    assert not app.removed
    assert not web.removed


def test_a_spec_is_a_frozen_hashable_value() -> None:
    """No run can change what it was told; equal specs are one dictionary key."""
    target = parse_config(CONFIG).targets[0]
    spec = rotation_spec(target)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    assert {spec: 1}[rotation_spec(target)] == 1
    assert not hasattr(spec, "__dict__")  # slotted


def _removed_key_holding_a_token(journal: MemoryJournal) -> TargetKey:
    """A key no configured target maps to, holding a current token verified a day ago."""
    key = TargetKey(URL, 99, "11111111-0000-4000-8000-000000000001")
    lease = journal.acquire(key, "old-deploy", "test", NOW, timedelta(minutes=1))
    assert lease is not None
    token = TokenRecord(key, 41, "t41", Origin.CREATED, Role.CURRENT, date(2027, 1, 1))
    state = TargetState(key, "old-deploy", verified_hash="a" * 64, verified_at=NOW - timedelta(days=1))
    journal.write(lease, Change(tokens=(token,), target=state))
    journal.release(lease)
    return key


def _offline_engine(journal: MemoryJournal, spec: EngineSpec) -> Engine:
    unused = cast("Any", None)  # dry runs read the journal only
    return Engine(
        spec, Context(unused, unused, journal, lambda: NOW, lambda _s: None, lambda: 0.0, URL, "test")
    )


def test_a_removed_target_is_a_spec_with_removed_set_and_its_shown_name() -> None:
    """The stand-in is ``NAME (removed)`` with removed=True, the key's project and connection."""
    journal = MemoryJournal()
    key = _removed_key_holding_a_token(journal)
    engine = _offline_engine(journal, engine_spec(parse_config(CONFIG)))
    [stand_in] = engine.removed_targets()
    assert stand_in.removed
    assert (stand_in.name, stand_in.project, stand_in.connection_id) == (
        "old-deploy (removed)",
        key.project_id,
        key.connection_id,
    )
    report = engine.run_target(stand_in, RunOptions(dry_run=True))
    assert report.name == "old-deploy (removed)"
    assert "left alone: token 41 (current)" in report.detail  # the removed key's plan, not a rotation's


def test_the_engine_tells_a_removed_target_by_its_flag_not_its_name() -> None:
    """A configured spec whose name looks like a stand-in's is run as configured (planned a rotation)."""
    journal = MemoryJournal()
    _removed_key_holding_a_token(journal)
    spec = engine_spec(parse_config(CONFIG))
    lookalike = dataclasses.replace(spec.targets[0], name="old-deploy (removed)")
    engine = _offline_engine(journal, dataclasses.replace(spec, targets=(lookalike,)))
    engine.removed_targets()  # the real stand-in of that name is known to the engine
    report = engine.run_target(lookalike, RunOptions(dry_run=True))
    assert report.detail.startswith("rotate (never-rotated)")
