"""The inventory: every active token in the configured scopes, and who owns it. Reads only.

``rotator inventory`` prints it and the daemon's expiry watch refreshes it; both call
:func:`take_inventory`. Per scope, in the order given (the door gives the targets' scopes in config
order, then the ``watch:`` groups, then the ``watch:`` projects):

* a project, a group or a service account (a target's owner, or a watched project): its tokens;
* a watched group (``whole_group``): its own group access tokens and its service accounts'
  tokens, then, with ``include_subgroups``, each subgroup's at any depth, then every project's
  access tokens (``GET /groups/:id/projects``; its subgroups' projects with ``include_subgroups``).

Only active tokens are listed (GitLab keeps revoked and expired ones in its lists as
``active: false``). A token appears once, under the first scope that lists it, and an owner whose
tokens one scope listed is not asked again by a later one. Ownership is the journal's: every
target it knows on this GitLab instance, removed ones included, in the roles in which a token is
its live responsibility (:func:`rotator.core.inventory.owners_of`).

Failures stay in their scope. The manager token is asked about first (``GET
/personal_access_tokens/self``): refused, nothing else is sent and every scope says why. A read
refused inside a scope (a 401 on one project's tokens, a 403 or 404 on a watched group) is kept as
the scope's one-line ``error`` (scope, owner, route and status, never a token value), and the
scope's other owners are still listed. GitLab not answering, a 5xx or a 429 that outlived the
retries stops the whole inventory: the scopes not yet listed say so, and nothing more is sent.
A group's service accounts that GitLab will not list (403: not licensed, or 404: a server without
the feature) are taken as none: the group's own tokens' read already fails if the manager is no Owner.

No create, rotation or revoke is ever sent, and the journal is only read (paths it has not
resolved are asked of GitLab, and not remembered).
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus

from rotator.core.errors import UpstreamError
from rotator.core.inventory import Inventory, Listed, Managed, Scope, ScopeReport, TokenKind
from rotator.core.model import Kind, Owner, TargetKey
from rotator.core.ports import GitLabPort, Journal
from rotator.engine.owners import cache_ref
from rotator.engine.untracked import tracked


#: A scope with more projects than this reports its progress (``progress``) as it lists them.
PROGRESS_OVER = 10
_KINDS = {
    Kind.PROJECT: TokenKind.PROJECT,
    Kind.GROUP: TokenKind.GROUP,
    Kind.SERVICE_ACCOUNT: TokenKind.PERSONAL,
}


class _Stopped(Exception):  # noqa: N818 - names what happened, not an error category
    """GitLab stopped answering (or kept refusing for load): nothing more is sent."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(str(error))
        self.error = error


def _stops_everything(error: UpstreamError) -> bool:
    """No answer, a 5xx or a 429 that outlived the retries: the next read would fare no better."""
    status = error.status
    return (
        status is None or status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR
    )


def take_inventory(  # noqa: PLR0913, PLR0917 - the daemon and the command each pass all of these
    gitlab: GitLabPort,
    journal: Journal,
    gitlab_url: str,
    scopes: Sequence[Scope],
    now: datetime,
    progress: Callable[[str], None] | None = None,
    removed: Collection[TargetKey] = (),
) -> Inventory:
    """Every scope's active tokens and their owners, as of ``now`` (see the module docstring).

    ``progress`` hears a line now and then while a scope with many projects is listed.
    ``removed``: the journal keys no configured target maps to (their tokens are marked so).
    """
    owned = tracked(journal, gitlab_url, removed)
    try:
        gitlab.manager_self()
    except UpstreamError as error:
        why = f"not listed: the manager token could not be used: {error}"
        return Inventory(now, tuple(ScopeReport(s.label, error=f"{s.label}: {why}") for s in scopes))
    walk = _Walk(gitlab, journal, gitlab_url, owned, progress or (lambda _: None))
    reports: list[ScopeReport] = []
    stopped: _Stopped | None = None
    for scope in scopes:
        if stopped is not None:
            why = f"not listed: GitLab stopped answering: {stopped.error}"
            reports.append(ScopeReport(scope.label, error=f"{scope.label}: {why}"))
            continue
        listing = _Listing(scope.label)
        try:
            walk.scope(scope, listing)
        except _Stopped as error:
            stopped = error  # already in this scope's listing
        reports.append(listing.report())
    return Inventory(now, tuple(reports))


@dataclass
class _Listing:
    """One scope's tokens so far, and its failed reads."""

    label: str
    tokens: list[Listed] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def fail(self, holder: str, error: UpstreamError) -> None:
        self.failures.append(f"{holder}: {error}" if holder else str(error))

    def report(self) -> ScopeReport:
        error = None
        if self.failures:
            more = len(self.failures) - 1
            error = f"{self.label}: {self.failures[0]}" + (f" (and {more} more failed reads)" if more else "")
        return ScopeReport(self.label, tuple(self.tokens), error)


class _Walk:
    """Lists owners' tokens for one inventory: what was seen is shared by its scopes."""

    def __init__(
        self,
        gitlab: GitLabPort,
        journal: Journal,
        gitlab_url: str,
        owned: dict[int, Managed],
        progress: Callable[[str], None],
    ) -> None:
        self._gitlab, self._journal, self._url = gitlab, journal, gitlab_url
        self._owned, self._progress = owned, progress
        self._seen: set[int] = set()  # token ids already listed, under an earlier scope
        self._done: set[Owner] = set()  # owners already listed

    def scope(self, scope: Scope, listing: _Listing) -> None:
        """List ``scope`` into ``listing``."""
        try:
            own = self._id(scope.kind if scope.kind is not Kind.SERVICE_ACCOUNT else Kind.PROJECT, scope.ref)
            via = (scope.via[0], self._id(*scope.via)) if scope.via is not None else None
        except UpstreamError as error:
            self._failed(listing, f"{scope.kind.value} {scope.ref}", error)
            return
        if scope.kind is Kind.SERVICE_ACCOUNT:
            where = "the instance" if scope.via is None else f"{scope.via[0].value} {scope.via[1]}"
            owner = Owner(Kind.SERVICE_ACCOUNT, own, *(via or (None, None)))
            self._tokens(listing, owner, f"service account {own} of {where}")
        elif not scope.whole_group:
            self._tokens(listing, Owner(scope.kind, own), f"{scope.kind.value} {scope.ref}")
        else:
            self._group(scope, own, listing)

    def _group(self, scope: Scope, group: int, listing: _Listing) -> None:
        """A watched group: its groups' tokens and service accounts, then its projects' tokens."""
        groups = [(group, str(scope.ref))]
        if scope.include_subgroups:
            try:
                groups += [(g.id, g.path) for g in self._gitlab.descendant_groups(group)]
            except UpstreamError as error:
                self._failed(listing, f"group {scope.ref}", error)
        for group_id, path in groups:
            self._tokens(listing, Owner(Kind.GROUP, group_id), f"group {path}")
            for account in self._accounts(listing, group_id, path):
                owner = Owner(Kind.SERVICE_ACCOUNT, account, Kind.GROUP, group_id)
                self._tokens(listing, owner, f"service account {account} of group {path}")
        try:
            projects = self._gitlab.group_projects(group, include_subgroups=scope.include_subgroups)
        except UpstreamError as error:
            self._failed(listing, f"group {scope.ref}", error)
            return
        step = max(PROGRESS_OVER, len(projects) // 10)
        for done, project in enumerate(projects, start=1):
            self._tokens(listing, Owner(Kind.PROJECT, project.id), f"project {project.path}")
            if len(projects) > PROGRESS_OVER and (done % step == 0 or done == len(projects)):
                self._progress(f"inventory: {scope.label}: {done}/{len(projects)} projects")

    def _accounts(self, listing: _Listing, group: int, path: str) -> list[int]:
        """The group's service accounts; none where GitLab has no such list for it (403, a bare 404)."""
        try:
            return self._gitlab.group_service_accounts(group)
        except UpstreamError as error:
            unlisted = error.status == HTTPStatus.FORBIDDEN or (
                error.status == HTTPStatus.NOT_FOUND and "group not found" not in error.message.lower()
            )
            if not unlisted:
                self._failed(listing, f"group {path}", error)
            return []

    def _tokens(self, listing: _Listing, owner: Owner, holder: str) -> None:
        """The owner's active tokens not listed yet, into ``listing``."""
        if owner in self._done:
            return
        try:
            tokens = self._gitlab.list_tokens(owner)
        except UpstreamError as error:
            self._failed(listing, holder, error)
            return
        self._done.add(owner)
        for info in tokens:
            if not info.active or info.id in self._seen:
                continue
            self._seen.add(info.id)
            kind = _KINDS[owner.kind]
            listing.tokens.append(Listed(listing.label, kind, holder, info, self._owned.get(info.id)))

    def _failed(self, listing: _Listing, holder: str, error: UpstreamError) -> None:
        listing.fail(holder, error)
        if _stops_everything(error):
            raise _Stopped(error)

    def _id(self, kind: Kind, ref: int | str) -> int:
        """A project's or group's id: given, cached in the journal, or asked of GitLab (not remembered)."""
        if isinstance(ref, int):
            return ref
        cached = self._journal.project_id(self._url, cache_ref(kind, ref))
        if cached is not None:
            return cached
        return self._gitlab.group_id(ref) if kind is Kind.GROUP else self._gitlab.project_id(ref)
