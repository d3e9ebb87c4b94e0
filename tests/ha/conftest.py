"""The fleet fixture: a fresh PostgreSQL database, the fakes in their own process, replicas on demand."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.ha.fakes_host import fakes_host
from tests.ha.fleet import CALLERS, Fleet
from tests.postgres import fresh_database


MakeFleet = Callable[..., Fleet]


@pytest.fixture
def make_fleet(tmp_path: Path) -> Iterator[MakeFleet]:
    """``make_fleet(targets, **settings)``: a :class:`Fleet` on a database and fakes of its own."""
    with ExitStack() as stack:

        def make(targets: int, **settings: Any) -> Fleet:  # noqa: ANN401 - config sections
            database = stack.enter_context(fresh_database())
            host = stack.enter_context(fakes_host(targets, CALLERS))
            fleet = Fleet(host, database, tmp_path, **settings)
            stack.callback(fleet.close)
            return fleet

        yield make
