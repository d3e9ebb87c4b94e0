"""The stores the journal contract suite runs over: add a store here and every contract test runs on it.

A store factory is a context manager that makes one empty store and yields an *opener*: each call
returns a new handle on that same store (for SQLite, another connection to the one file; for the
memory store, the store itself), so concurrency tests can race separate handles the way separate
processes would. Leaving the context closes every handle and removes whatever the store left behind.
"""

import tempfile

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from rotator.core.ports import Journal
from rotator.journal.memory import MemoryJournal
from rotator.journal.sqlite import SQLiteJournal


Opener = Callable[[], Journal]
StoreFactory = Callable[[], AbstractContextManager[Opener]]


@contextmanager
def memory_store() -> Iterator[Opener]:
    """The reference store: every handle is the one :class:`MemoryJournal`."""
    store = MemoryJournal()
    yield lambda: store
    store.close()


@contextmanager
def sqlite_store() -> Iterator[Opener]:
    """An SQLite journal in a fresh folder; each handle is its own connection to the file."""
    handles: list[SQLiteJournal] = []
    with tempfile.TemporaryDirectory() as folder:

        def opener() -> Journal:
            handle = SQLiteJournal(Path(folder) / "state.db")
            handles.append(handle)
            return handle

        try:
            yield opener
        finally:
            for handle in handles:
                handle.close()


#: Every store, by name (the pytest id). PostgreSQL joins here in the next issue.
STORES: dict[str, StoreFactory] = {"memory": memory_store, "sqlite": sqlite_store}
