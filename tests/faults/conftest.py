"""Print the campaign's tally after the run and keep it in ``build/reliability.json``."""

from pathlib import Path

import pytest

from tests.faults import ledger


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per figure, when any fault case ran."""
    if not ledger.TALLY["cases"]:
        return
    terminalreporter.section("fault campaign")
    for label, figure in ledger.summary().items():
        terminalreporter.write_line(f"{figure:>10,}  {label}")
    ledger.write(Path(__file__).parents[2] / "build" / "reliability.json")
