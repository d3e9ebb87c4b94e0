"""Print the campaign's tally after the run and keep it in ``build/reliability.json``.

``FAULT_CAMPAIGN_TALLY`` names another file (``.ci/run`` keeps one per tier).

Under pytest-xdist each worker writes its own tally; the controller adds them up.
"""

import json
import os

from pathlib import Path

import pytest

from tests.faults import ledger


BUILD = Path(__file__).parents[2] / "build"


def pytest_sessionstart(session: pytest.Session) -> None:
    """A fresh tally per session (the controller clears the workers' old files)."""
    if not hasattr(session.config, "workerinput"):
        for old in BUILD.glob("reliability-gw*.json"):
            old.unlink()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker leaves its tally for the controller."""
    worker = getattr(session.config, "workerinput", None)
    if worker is not None and ledger.TALLY["cases"]:
        ledger.write(BUILD / f"reliability-{worker['workerid']}.json")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per figure, when any fault case ran."""
    for part in BUILD.glob("reliability-gw*.json"):
        ledger.TALLY.update(json.loads(part.read_text()))
    if not ledger.TALLY["cases"]:
        return
    terminalreporter.section("fault campaign")
    for label, figure in ledger.summary().items():
        terminalreporter.write_line(f"{figure:>10,}  {label}")
    ledger.write(Path(os.environ.get("FAULT_CAMPAIGN_TALLY", BUILD / "reliability.json")))
