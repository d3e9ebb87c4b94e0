"""The engine's in-process copy of the journal's path cache (:class:`rotator.engine.owners.PathCache`)."""

from collections import Counter
from datetime import UTC, datetime, timedelta

from rotator.core.model import Kind, TargetKey
from rotator.core.spec import EngineSpec, RotationSpec, TokenShape
from rotator.engine.owners import PathCache
from rotator.engine.run import Engine
from rotator.journal.memory import MemoryJournal
from tests.engine.lease_context import lease_context


URL = "https://gitlab.example.com"
CONN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
NOW = datetime(2026, 1, 5, tzinfo=UTC)


class _Counting(MemoryJournal):
    """A memory journal counting the path reads and writes that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def project_id(self, gitlab_url: str, project: str) -> int | None:
        self.calls["project_id"] += 1
        return super().project_id(gitlab_url, project)

    def project_ids(self, gitlab_url: str) -> dict[str, int]:
        self.calls["project_ids"] += 1
        return super().project_ids(gitlab_url)

    def remember_project(self, gitlab_url: str, project: str, project_id: int) -> None:
        self.calls["remember_project"] += 1
        super().remember_project(gitlab_url, project, project_id)


def _target(project: int | str = "acme/app", kind: Kind = Kind.PROJECT) -> RotationSpec:
    return RotationSpec(
        name="app",
        project=project,
        connection_id=CONN,
        token=TokenShape(("api",), 40, timedelta(days=30)),
        token_base_name="app",
        renew_before=timedelta(days=10),
        grace=timedelta(hours=1),
        kind=kind,
    )


def _engine(journal: MemoryJournal, *targets: RotationSpec) -> Engine:
    ctx = lease_context(journal, TargetKey(URL, 0, CONN), NOW)
    return Engine(EngineSpec(URL, targets), ctx)


def test_a_resolved_path_is_read_from_the_journal_once_per_process() -> None:
    """A run's key and the sweep of removed targets, again and again: the journal is asked once."""
    journal = _Counting()
    journal.remember_project(URL, "acme/app", 42)
    journal.calls.clear()
    engine = _engine(journal, _target())
    first = engine.key(_target(), resolve=False)
    assert first == TargetKey(URL, 42, CONN)
    assert engine.removed_targets() == []  # the sweep looks every configured path up too
    assert engine.key(_target(), resolve=False) == first  # a second run
    assert journal.calls == Counter(project_ids=1)  # every resolved path of that GitLab, at once


def test_an_unknown_path_is_asked_again_and_kept_once_another_process_resolves_it() -> None:
    """``None`` is never kept: once another replica records the path, the next lookup finds it."""
    journal = _Counting()
    engine = _engine(journal, _target())
    assert engine.key(_target(), resolve=False) is None
    assert engine.key(_target(), resolve=False) is None
    journal.remember_project(URL, "acme/app", 42)  # another process resolved it
    assert engine.key(_target(), resolve=False) == TargetKey(URL, 42, CONN)
    assert engine.key(_target(), resolve=False) == TargetKey(URL, 42, CONN)
    assert journal.calls == Counter(project_ids=1, project_id=2, remember_project=1)


def test_remember_writes_through_and_keeps_what_the_journal_holds() -> None:
    """A path resolved here is written to the journal; the copy kept is the journal's answer, read back."""
    journal = _Counting()
    paths = PathCache(journal)
    paths.remember(URL, "acme/app", 42)
    assert journal.project_id(URL, "acme/app") == 42
    journal.remember_project(URL, "acme/app", 43)  # another process resolved it too, and wrote last
    assert paths.project_id(URL, "acme/app") == 43
    assert paths.project_id(URL, "acme/app") == 43
    assert paths.project_id(URL, "group:acme") is None  # a group's ref is its own entry
    assert journal.calls == Counter(remember_project=2, project_ids=1, project_id=2)


def test_a_fresh_process_reads_every_resolved_path_in_one_read() -> None:
    """A thousand targets' paths, resolved before: a new process's runs ask the journal once, not per path."""
    journal = _Counting()
    targets = [_target(f"acme/app-{i}") for i in range(1000)]
    for i, target in enumerate(targets):
        journal.remember_project(URL, str(target.project), i + 1)
    journal.calls.clear()
    engine = _engine(journal, *targets)
    assert [engine.key(t, resolve=False) for t in targets] == [
        TargetKey(URL, i + 1, CONN) for i in range(1000)
    ]
    assert journal.calls == Counter(project_ids=1)


def test_ids_in_the_config_need_no_lookup() -> None:
    """A target named by numeric id never reads the path cache."""
    journal = _Counting()
    engine = _engine(journal, _target(42))
    assert engine.key(_target(42), resolve=False) == TargetKey(URL, 42, CONN)
    assert journal.calls == Counter()
