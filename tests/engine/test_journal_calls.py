"""What a steady rotation asks of the journal: each of its own records read once, one ownership read."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from rotator.testing import Fakes
from tests.engine.harness import EngineCase


#: The journal calls counted (the lease's, the writes, the reads a rotation makes).
COUNTED = ("acquire", "acquire_reading", "renew", "write", "write_renewing", "records", "owners", "release")


def _counting(
    case: EngineCase,
    names: tuple[str, ...] = COUNTED,
    which: Callable[[tuple[Any, ...]], bool] = lambda _args: True,
) -> Counter[str]:
    """Count the calls of ``names`` whose arguments ``which`` accepts, made by the engine's runs from now on.

    Not the case's checks after each run: only the engine's run itself is counted.
    """
    calls: Counter[str] = Counter()
    running = [False]
    for name in names:
        method = getattr(case.store, name)

        def counted(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:  # noqa: ANN401
            calls[_name] += running[0] and which(args)
            return _method(*args)

        setattr(case.store, name, counted)
    run_once = case._run_once  # noqa: SLF001 - the engine's run, without the invariant checks after it

    def engine_run(*args: Any) -> Any:  # noqa: ANN401
        running[0] = True
        try:
            return run_once(*args)
        finally:
            running[0] = False

    case._run_once = engine_run  # type: ignore[method-assign,assignment]  # noqa: SLF001
    return calls


def test_a_steady_rotation_with_grace_0_makes_no_journal_call_it_can_spare(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Rotate and revoke: the records read with the lease, one ownership read, no lone renewal."""
    case = EngineCase(fakes, tmp_path, grace="0s")
    name = case.names[0]
    assert case.run("rotate", name).code == 0  # adoption: the journal's first records
    calls = _counting(case)
    result = case.run("rotate", name)
    assert result.code == 0, result.stderr
    assert "revoked token" in result.stdout
    assert calls == Counter(
        acquire_reading=1,  # the lease, and the records as they stand once it is taken
        # PLANNED, PUSHING and VERIFIED carry the renewals before the create, the push and the revoke.
        write_renewing=3,
        write=3,  # CREATED, PUSHED, REVOKED
        records=1,  # the decision's (no lease); under the lease, the acquisition's read serves
        owners=1,  # the revoke's: one token, one owner
        release=1,
    ), calls


def test_a_first_rotations_untracked_listing_reads_no_other_targets_records(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Without adopt_token_id: who owns each listed token is asked by id; no other target is walked.

    A first run of many new targets would otherwise read every target's tokens, unfinished
    rotation and tombstones once per target.
    """
    case = EngineCase(fakes, tmp_path, grace="0s", targets=2)
    first, other = case.names[0], case.names[1]
    assert case.run("rotate", other).code == 0  # another target, its tokens in the journal
    [other_key] = [s.key for s in case.store.targets() if s.name == other]
    path = tmp_path / "rotator.yaml"
    config = yaml.safe_load(path.read_text())
    del config["targets"][0]["adopt_token_id"]
    path.write_text(yaml.safe_dump(config))
    case.foreign.add(fakes.seed.adopt_token_ids[0])  # left active: nothing names it for adoption
    walked = _counting(case, ("tokens", "unfinished", "tombstones"), lambda args: args[0] == other_key)
    result = case.run("rotate", first)
    assert result.code == 0, result.stderr
    assert "target.untracked_tokens" in result.stderr  # the connection's token, named with the hint
    assert walked == Counter(tokens=0, unfinished=0, tombstones=0), walked
