"""The contract suites' fixtures: every store, empty, each test on a fresh one."""

from collections.abc import Iterator

import pytest

from rotator.core.ports import Journal
from tests.journal.stores import STORES, Opener


@pytest.fixture(params=sorted(STORES))
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Each store, empty: a function returning a new handle on it."""
    with STORES[request.param]() as handles:
        yield handles


@pytest.fixture
def journal(opener: Opener) -> Journal:
    """A handle on each store, empty."""
    return opener()
