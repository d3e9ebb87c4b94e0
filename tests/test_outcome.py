"""Exit codes in one place: every outcome has one; only rotator.doors.cli ends a process or picks a code."""

import ast

from pathlib import Path

import pytest

from rotator.doors import cli
from rotator.doors.outcome import Outcome


DOORS = Path(cli.__file__).parent


def test_every_outcome_has_an_exit_code() -> None:
    """0 only for OK, 2 only for a usage error, 1 for every failure found at run time."""
    assert set(cli.EXIT_CODES) == set(Outcome)
    assert {o for o, code in cli.EXIT_CODES.items() if code == cli.EXIT_OK} == {Outcome.OK}
    assert {o for o, code in cli.EXIT_CODES.items() if code == cli.EXIT_USAGE} == {Outcome.USAGE}
    assert set(cli.EXIT_CODES.values()) == {cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE}


def _exits(tree: ast.AST) -> list[str]:
    """Every ``sys.exit(…)``, ``os._exit(…)``, ``raise SystemExit`` and ``return <int>`` in ``tree``."""
    return [ast.unparse(node) for node in ast.walk(tree) if _is_exit(node)]


def _is_exit(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in {"exit", "_exit"}
    if isinstance(node, ast.Raise) and node.exc is not None:
        return "SystemExit" in ast.unparse(node.exc)
    if isinstance(node, ast.Return) and node.value is not None:
        # `return 1`, and `return 0 if ok else 1`.
        values = (node.value.body, node.value.orelse) if isinstance(node.value, ast.IfExp) else (node.value,)
        return any(_is_number(value) for value in values)
    return False


def _is_number(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


@pytest.mark.parametrize("module", sorted(p.name for p in DOORS.glob("*.py") if p.name != "cli.py"))
def test_no_door_but_the_cli_picks_an_exit_code(module: str) -> None:
    """Commands, the daemon and the demo return an Outcome; none exits or returns a number of its own."""
    assert _exits(ast.parse((DOORS / module).read_text())) == []
