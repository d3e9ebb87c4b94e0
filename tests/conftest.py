"""Shared fixtures: both fakes on loopback, seeded, and python-gitlab / httpx clients for them.

Also the fault campaign's tally (``tests/faults/ledger.py``): printed after the run and kept in
``build/reliability.json`` (``FAULT_CAMPAIGN_TALLY`` names another file). The hooks live here, not
in ``tests/faults/``, because pytest-xdist's controller loads only this conftest; each worker
writes its own tally and the controller adds them up.
"""

import io
import json
import os

from collections.abc import Iterator
from pathlib import Path

import gitlab
import httpx
import pytest
import structlog

from rotator.adapters.logs import configure
from rotator.testing import Fakes, ForeignHost, start_fakes
from tests.faults import ledger
from tests.faults.campaign import identity_client
from tests.postgres import fresh_database


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """Both fakes, seeded, on ephemeral ports."""
    with start_fakes() as running:
        yield running


@pytest.fixture
def journal_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` for a config's SQLite file (the default), or a fresh PostgreSQL database's URL.

    A test takes both with ``@pytest.mark.parametrize("journal_url", ["sqlite", "postgresql"],
    indirect=True)``.
    """
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def foreign() -> Iterator[ForeignHost]:
    """A loopback host no config names, recording whatever reaches it (nothing should)."""
    host = ForeignHost()
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def gl(fakes: Fakes) -> gitlab.Gitlab:
    """python-gitlab, unchanged, authenticated with the seeded manager token."""
    return gitlab.Gitlab(fakes.seed.gitlab_url, private_token=fakes.seed.manager_token, timeout=10)


@pytest.fixture
def infisical(fakes: Fakes) -> Iterator[httpx.Client]:
    """An httpx client for the fake Infisical, logged in with the seeded identity."""
    with identity_client(fakes) as client:
        yield client


BUILD = Path(__file__).parents[1] / "build"  # the repository's build/, as docs/reliability.md says


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Log events as JSON lines in a buffer; the previous configuration restored afterwards."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure(stream=stream, json=True)
    yield stream
    structlog.configure(**saved)


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
