"""What a steady rotation asks of the journal: each of its own records read once, one ownership read."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rotator.testing import Fakes
from tests.engine.harness import EngineCase


#: The journal calls counted (the lease's, the writes, the reads a rotation makes).
COUNTED = ("acquire", "acquire_reading", "renew", "write", "write_renewing", "records", "owners", "release")


def _counting(case: EngineCase) -> Counter[str]:
    """Count the calls of :data:`COUNTED` the engine's runs make from now on (not the case's checks)."""
    calls: Counter[str] = Counter()
    running = [False]
    for name in COUNTED:
        method = getattr(case.store, name)

        def counted(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:  # noqa: ANN401
            calls[_name] += running[0]
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
