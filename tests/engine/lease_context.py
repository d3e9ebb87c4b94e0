"""A bare engine context for tests of the lease keeper and what it owns: a journal, no upstreams."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rotator.core.model import TargetKey
from rotator.core.ports import Journal
from rotator.engine.context import Context, Settings


def lease_context(  # noqa: PLR0913 - each keyword is one test's knob
    journal: Journal,
    key: TargetKey,
    now: datetime,
    *,
    monotonic: Callable[[], float] = lambda: 0.0,
    gitlab: Any = None,  # noqa: ANN401 - a stand-in for only the calls a test makes, or none
    settings: Settings | None = None,
) -> Context:
    """A context over ``journal`` for ``key``'s GitLab at ``now``; no Infisical, GitLab only if given."""
    unused: Any = None
    return Context(
        gitlab=gitlab,
        infisical=unused,
        journal=journal,
        clock=lambda: now,
        sleep=lambda _s: None,
        monotonic=monotonic,
        gitlab_url=key.gitlab_url,
        actor="test",
        settings=settings or Settings(),
    )
