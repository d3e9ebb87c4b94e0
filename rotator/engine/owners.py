"""A target's owner by numeric ids (architecture §9): paths resolved through the journal's cache.

The cache (the journal's projects table: ``ref`` → id) holds project paths as they are written,
and group paths under ``group:`` (``group:acme/platform``), which no project path can begin with
(GitLab paths have no colon): one table, no schema change, and an older replica never mistakes a
group path for a project's.
"""

import threading

from collections.abc import Callable
from typing import TYPE_CHECKING

from rotator.core.model import Kind, Owner
from rotator.core.spec import RotationSpec


if TYPE_CHECKING:
    from rotator.core.ports import Journal


#: Resolves a path of a kind to its id (``None``: not known, and not to be asked upstream).
Lookup = Callable[[Kind, str], int | None]


class PathCache:
    """The journal's path cache with an in-process copy in front: a path's id is read once per process.

    A daemon looks every target's path up at each run and at each sweep of removed targets, two
    round trips per rotation for an answer that never changes: the journal keeps a resolved path
    for good (only :meth:`Journal.remember_project` writes it, and only for a path it did not
    know; a snapshot is restored into an empty journal only). So what the journal answered is
    kept here for the process's life. Not an answer of ``None``: another process may resolve the
    path meanwhile, and its id is then read from the journal.

    :meth:`remember` writes through to the journal and forgets the copy: should two processes
    resolve a new path at once (and GitLab answer them differently, the path moved in between),
    the journal keeps one answer; each process then keeps what the journal holds, not what it
    wrote, as it did when it read the journal every time.
    """

    def __init__(self, journal: "Journal") -> None:
        """In front of ``journal``'s cache."""
        self._journal = journal
        self._lock = threading.Lock()  # the engine's workers share it
        self._ids: dict[tuple[str, str], int] = {}
        self._loaded: set[str] = set()  # the GitLab URLs whose every resolved path was read

    def project_id(self, gitlab_url: str, ref: str) -> int | None:
        """The id ``ref`` (:func:`cache_ref`) resolved to, as the journal holds it; ``None``: not resolved.

        The first ask for a GitLab reads all its resolved paths at once: a fresh process (each
        CronJob run, a replica just started) would otherwise read a thousand targets' paths one
        round trip each. A path missing from that read is asked alone, as another process may
        have resolved it since.
        """
        with self._lock:
            found = self._ids.get((gitlab_url, ref))
            load = found is None and gitlab_url not in self._loaded
        if load:
            every = self._journal.project_ids(gitlab_url)
            with self._lock:
                self._loaded.add(gitlab_url)
                for path, pid in every.items():
                    self._ids.setdefault((gitlab_url, path), pid)
                found = self._ids.get((gitlab_url, ref))
        if found is None and not load:  # just read with every other path: not resolved yet
            found = self._journal.project_id(gitlab_url, ref)
            if found is not None:
                with self._lock:
                    self._ids[gitlab_url, ref] = found
        return found

    def remember(self, gitlab_url: str, ref: str, project_id: int) -> None:
        """Record a resolved path in the journal (the next :meth:`project_id` reads it back)."""
        with self._lock:
            self._ids.pop((gitlab_url, ref), None)
        self._journal.remember_project(gitlab_url, ref, project_id)


def cache_ref(kind: Kind, path: str) -> str:
    """The cache's ``ref`` for a path: a project's as written, a group's prefixed ``group:``."""
    return path if kind is Kind.PROJECT else f"{kind.value}:{path}"


def owner_of(target: RotationSpec, lookup: Lookup) -> Owner | None:
    """The target's owner, or ``None`` while one of its paths is not resolved."""
    own = _id(
        target.kind if target.kind is not Kind.SERVICE_ACCOUNT else Kind.PROJECT, target.project, lookup
    )
    if own is None:
        return None
    if target.via is None:
        return Owner(target.kind, own)
    via_kind, ref = target.via
    via_id = _id(via_kind, ref, lookup)
    return Owner(target.kind, own, via_kind, via_id) if via_id is not None else None


def path_ref(target: RotationSpec) -> str | None:
    """The cache ``ref`` of the target's path (its own, or its service account's home); ``None``: ids only."""
    if isinstance(target.project, str):
        return cache_ref(target.kind, target.project)
    if target.via is not None:
        kind, ref = target.via
        return cache_ref(kind, ref) if isinstance(ref, str) else None
    return None


def _id(kind: Kind, ref: int | str, lookup: Lookup) -> int | None:
    return ref if isinstance(ref, int) else lookup(kind, ref)


def shown(target: RotationSpec, owner: Owner | None = None) -> str:
    """The owner as the config names it: ``project acme/app``, ``group 7``, ``service account 9 of ...``.

    With the resolved ``owner`` (the look's), each path is followed by its id:
    ``group platform (7)``, ``service account 9 of group platform (7)``; an id is shown once.
    """
    if target.kind is not Kind.SERVICE_ACCOUNT:
        return f"{target.kind.value} {_named(target.project, owner.id if owner else None)}"
    if target.via is None:
        return f"service account {target.project} of the instance"
    via_kind, ref = target.via
    return (
        f"service account {target.project} of {via_kind.value} {_named(ref, owner.via_id if owner else None)}"
    )


def _named(ref: int | str, resolved: int | None) -> str:
    """A path or id as configured, and the id it resolved to when that says more."""
    return str(ref) if resolved is None or resolved == ref else f"{ref} ({resolved})"


#: The role the manager needs where each kind's tokens live (``reference/gitlab-2.md`` §1.2, §3).
ROLE_LEVELS = {Kind.PROJECT: 40, Kind.GROUP: 50}
_ROLE_NAMES = {40: "Maintainer", 50: "Owner"}


def level_needed(owner: Owner) -> int:
    """The manager's role needed for ``owner``'s tokens: where they live (an instance SA: admin, 50)."""
    where = owner.kind if owner.kind is not Kind.SERVICE_ACCOUNT else owner.via
    return ROLE_LEVELS[where] if where is not None else 50


def role_needed(owner: Owner) -> str:
    """That role in words: ``Maintainer``, ``Owner``, or ``admin`` (an instance service account)."""
    if owner.kind is Kind.SERVICE_ACCOUNT and owner.via is None:
        return "admin"
    return _ROLE_NAMES[level_needed(owner)]


def role_held(owner: Owner, level: int | None) -> str:
    """The manager's role, judged enough, in words: ``maintainer``, ``owner``, ``admin``."""
    if owner.kind is Kind.SERVICE_ACCOUNT and owner.via is None:
        return "admin"  # the adapter's 50 for an instance service account: the manager is an admin
    return _ROLE_NAMES.get(level or 0, str(level)).lower()
