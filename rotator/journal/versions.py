"""The journal's schema versions, shared by every durable store. Standard library only.

Each store records the version of its schema in a one-row ``schema_version`` table and brings an
older schema up to date itself when it opens the journal for writing (SQLite inside its write
lock, PostgreSQL under an advisory lock, so processes starting together migrate once). A schema
newer than this rotator knows is refused: an older rotator must never write records it does not
understand into a journal a newer one keeps.
"""

from rotator.core.errors import ConfigError


def too_new(found: int, known: int) -> ConfigError:
    """The error for a journal whose schema is newer than this rotator's (exit 2)."""
    return ConfigError(
        "state.url",
        f"the journal's schema is version {found}; this rotator knows up to {known}: upgrade rotator",
    )
