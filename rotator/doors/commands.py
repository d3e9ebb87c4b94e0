"""The commands that act on targets: ``run-once``, ``rotate``, ``plan``, ``status``, ``history``, ``check``.

``forget`` lets a removed target's journal entry go.

Each returns an :class:`~rotator.doors.outcome.Outcome` (bad config or usage is raised as
:class:`ConfigError`); :mod:`rotator.doors.cli` alone turns it into an exit code. stdout carries
only the result.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from rotator.adapters.logs import configure
from rotator.core.durations import format_duration, human_duration, in_days, stamp
from rotator.core.errors import ConfigError, ConnectionNotFoundError, LeaseLostError, UpstreamError, said_of
from rotator.core.model import Kind, Lease, TargetKey
from rotator.core.ports import Journal
from rotator.core.redact import redact
from rotator.core.schedule import expiry_instant
from rotator.core.spec import RotationSpec
from rotator.doors import preflight, report, upstream, wiring
from rotator.doors.config import Config, engine_spec
from rotator.doors.outcome import Outcome
from rotator.doors.readmodel import as_json
from rotator.engine import untracked
from rotator.engine.checks import access_problem, check_connection, manager_problem, owned_elsewhere
from rotator.engine.lease import LeaseKeeper
from rotator.engine.owners import shown
from rotator.engine.recorder import Recorder
from rotator.engine.removed import Removed, RemovedRun, classify, live, stand_in
from rotator.engine.run import REMOVED, RunOptions, TargetReport


_IN_USE_MARGIN = timedelta(minutes=15)
#: Long enough for a few revokes; forget renews nothing.
log = structlog.get_logger("rotator")


def _print_reports(reports: list[TargetReport]) -> Outcome:
    for r in reports:
        # Details quote upstream messages (redacted), and name the target the line leads with.
        print(f"{r.name}: {r.status}: {redact(said_of(r.name, r.detail))}")
        for warning in r.warnings:  # a warning leaves the exit code alone
            print(f"{r.name}: warn: {redact(warning)}")
    return Outcome.FAILING if any(r.failed for r in reports) else Outcome.OK


def run_once(args: argparse.Namespace, config: Config) -> Outcome:
    """``run-once`` and ``rotate``: the CronJob mode and the on-demand trigger."""
    configure(args.log)
    # A dry run (plan) reads the journal and never creates it: it changes nothing, not even that.
    rt = wiring.build(config, os.environ, journal="read" if args.dry_run else "write")
    try:
        names = tuple(args.target or ())
        options = RunOptions(
            names=names,
            force=args.force,
            dry_run=args.dry_run,
            take_over=args.take_over,
            revoke_anyway=args.revoke_anyway,
            trigger=args.trigger,
        )
        if (options.take_over or options.revoke_anyway) and not names:
            raise ConfigError("--take-over", "--take-over and --revoke-anyway need --target NAME")
        # Like the daemon: on SIGTERM (a CronJob's pod being stopped) start no new target and let
        # the ones in flight finish, so no rotation is cut between its steps by our own hand.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: _stop(rt))
        if options.dry_run:
            return _plan(rt, options)
        return _print_reports(rt.engine.run(options))
    finally:
        rt.close()


def _plan(rt: wiring.Runtime, options: RunOptions) -> Outcome:
    """``plan`` (``run-once --dry-run``): the journal's plan, with what GitLab and Infisical show now.

    Reads only: no create, PATCH or DELETE, and the journal is opened read-only.
    """
    reports = rt.engine.run(options)
    seen = upstream.read_live(rt, options.names, os.environ, force=options.force, take_over=options.take_over)
    print(upstream.plan_text(reports, seen, report.terminal_width()))
    return Outcome.FAILING if seen.failing or any(r.failed for r in reports) else Outcome.OK


def _stop(rt: wiring.Runtime) -> None:
    log.warning("run.stopping", hint="finishing targets in flight; Ctrl-C again to quit at once")
    rt.engine.stopping.set()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C is a person insisting


def status(args: argparse.Namespace, config: Config) -> Outcome:
    """``status``: offline, from the journal (read-only; exit 2 if there is none yet).

    ``--live`` also looks upstream (reads only), and so needs the secrets.
    """
    if args.live:
        return _live_status(args, config)
    journal = wiring.read_journal(config, missing_ok=False)
    try:
        data = report.read_status(config, journal, wiring.clock(config, os.environ))
    finally:
        journal.close()
    print(
        json.dumps(as_json(data), indent=2)
        if args.json
        else report.status_table(data, report.terminal_width())
    )
    failing = any(t.failing for t in data.targets) or any(r.failing for r in data.removed)
    return Outcome.FAILING if failing else Outcome.OK


def _live_status(args: argparse.Namespace, config: Config) -> Outcome:
    """``status --live``: the journal's status, then what GitLab and Infisical show now."""
    configure(args.log)
    wiring.require_journal(config)  # as offline: no journal yet is exit 2, and none is created
    rt = wiring.build(config, os.environ, journal="read")
    try:
        data = report.read_status(config, rt.journal, rt.engine.ctx.clock)
        seen = upstream.read_live(rt, (), os.environ)
    finally:
        rt.close()
    width = report.terminal_width()
    if args.json:
        print(json.dumps({**as_json(data), "live": as_json(seen)}, indent=2))
    else:
        print(report.status_table(data, width) + "\n" + upstream.status_text(seen, width))
    failing = any(t.failing for t in data.targets) or any(r.failing for r in data.removed)
    return Outcome.FAILING if failing or seen.failing else Outcome.OK


def forget(args: argparse.Namespace, config: Config) -> Outcome:
    """``forget KEY [--revoke]``: let a removed target's journal entry go (its rotations stay)."""
    wiring.require_journal(config)  # with no journal there is nothing to forget: create none to say so
    rt: wiring.Runtime | None = None
    if args.revoke:
        configure(args.log)
        rt = wiring.build(config, os.environ)
        journal = rt.journal
    else:
        journal = wiring.open_journal(config)  # offline: no secret is read
    try:
        found = _removed_key(config, journal, args.key)
        now = wiring.clock(config, os.environ)()
        holder = f"{socket.gethostname()}:{os.getpid()}:forget"
        lease = journal.acquire(found.key, found.name, holder, now, config.state.lease_ttl)
        if lease is None:
            print(f"rotator forget: {found.key}: another worker holds it; try again", file=sys.stderr)
            return Outcome.REFUSED
        try:
            blocked = _not_yet(journal, found, now, revoke=args.revoke)
            if blocked:
                for line in blocked:
                    print(f"not forgotten: {redact(line)}")
                print(f"kept {found.key}: a run can still find what it may have created")
                return Outcome.REFUSED
            if rt is not None:
                refused = _revoke_removed(rt, lease, found)
                if refused:
                    for line in refused:
                        print(f"not revoked: {redact(line)}")  # refusals quote upstream messages
                    print(
                        f"kept {found.key}: nothing is forgotten while it holds a live token it cannot revoke"
                    )
                    return Outcome.REFUSED
            for token in live(journal.tokens(found.key), now):
                print(f"left live, no longer tracked: token {token.token_id} ({token.role.value})")
            _print_dropped(journal, found, checked=rt is not None)
            journal.forget(lease, "forgotten by `rotator forget`")
        finally:
            journal.release(lease)
        print(f"forgot {found.key} ({found.name}); its rotations stay in `rotator history`")
        return Outcome.OK
    finally:
        (rt.close if rt is not None else journal.close)()


def _not_yet(journal: Journal, found: Removed, now: datetime, *, revoke: bool) -> list[str]:
    """What a run (or ``--revoke``) can still check for the key, so ``forget`` must not drop it yet.

    A rotation stopped at PLANNED may have created a token under a name only the journal knows;
    the run resumes it (re-checks the name, or revokes the unpushed token). A live tombstone is a
    name a late create may still use: ``--revoke`` re-checks it first; plain ``forget`` (offline)
    refuses until its window has passed. On another GitLab instance nothing can ever be checked,
    so forgetting is the only way out there, and it prints what it drops.
    """
    if not found.same_instance:
        return []
    lines = []
    unfinished = journal.unfinished(found.key)
    if unfinished is not None:
        lines.append(
            f"rotation {unfinished.id} stopped at {unfinished.step.value} and may have created token"
            f" {unfinished.token_name}: run `rotator run-once` first (it re-checks or revokes it)"
        )
    if not revoke:
        lines += [
            f"tombstoned name {s.name} is re-checked until {stamp(s.until)} (a create that completes"
            f" late would stay live, untracked): `rotator forget '{found.key}' --revoke` re-checks it now"
            for s in journal.tombstones(found.key)
            if s.until > now
        ]
    return lines


def _print_dropped(journal: Journal, found: Removed, *, checked: bool) -> None:
    """Name every tombstone and unfinished rotation ``forget`` drops: a token may live under that name."""
    for stone in journal.tombstones(found.key):
        note = "re-checked just now" if checked and found.same_instance else "not re-checked at its end"
        print(f"dropped tombstoned name {stone.name} ({note}; a token by that name is no longer looked for)")
    unfinished = journal.unfinished(found.key)
    if unfinished is not None:
        print(
            f"left unresolved: rotation {unfinished.id} stopped at {unfinished.step.value}"
            f" (token name {unfinished.token_name}; may be live, untracked)"
        )


def _removed_key(config: Config, journal: Journal, key: str) -> Removed:
    """The removed key named ``key``; a usage error (exit 2) for a configured or unknown one."""
    removed, kept = classify(engine_spec(config), journal)
    if key in kept:
        raise ConfigError("KEY", f"{key} is not removed: {kept[key]}; change the config first")
    for found in removed:
        if str(found.key) == key:
            return found
    known = ", ".join(f"'{r.key}'" for r in removed) or "none"
    raise ConfigError(
        "KEY", f"no journal entry {key!r}; removed keys (as `rotator status` shows them): {known}"
    )


def _revoke_removed(rt: wiring.Runtime, lease: Lease, found: Removed) -> list[str]:
    """Revoke what the key holds, as far as is safe; the refusals (an upstream failure is one)."""
    target = stand_in(found, f"{found.name}{REMOVED}")
    with LeaseKeeper(rt.engine.ctx, lease) as keeper:
        rec = Recorder(keeper, target)
        run = RemovedRun(rec.ctx, rec, target, found)
        refused = _revoke_all(run, target)
    for action in run.scratch.actions:
        print(redact(action))  # actions quote upstream token names
    return refused


def _revoke_all(run: RemovedRun, target: RotationSpec) -> list[str]:
    """``forget --revoke``'s revokes; the refusals, an upstream failure or a lost lease among them."""
    try:
        refused = run.revoke_all()
    except UpstreamError as error:
        refused = [str(replace(error, target=target.name, step=error.step or "forget"))]
    except LeaseLostError as error:
        refused = [str(error)]
    return refused


def history(args: argparse.Namespace, config: Config) -> Outcome:
    """``history``: the audit trail, newest first (read-only; exit 2 if there is none yet)."""
    journal = wiring.read_journal(config, missing_ok=False)
    try:
        rows = report.read_history(journal, config, args.target, args.limit)
    finally:
        journal.close()
    print(
        json.dumps(as_json(rows), indent=2)
        if args.json
        else report.history_table(rows, report.terminal_width())
    )
    return Outcome.OK


class Item(Protocol):
    """One ``check`` line: its label, its probe, the upstream it asks, the connection's config key."""

    def __call__(
        self, what: str, probe: Callable[[], str | None], upstream: str, key: str | None = None
    ) -> None:
        """Run ``probe`` (unless ``upstream`` already failed) and print its line."""


def check(args: argparse.Namespace, config: Config) -> Outcome:
    """``check``: a preflight with no side effects; every problem is one line.

    Each request is sent once (:func:`rotator.doors.wiring.build`'s ``preflight``), and an upstream
    that refused the credential or did not answer is not asked again (:mod:`rotator.doors.preflight`).
    """
    configure(args.log)
    # The real journal, read-only (empty if there is none yet): adopt_token_id must not name a
    # token another target owns. The engine's own (in-memory) journal stays the throwaway one.
    journal = wiring.read_journal(config, missing_ok=True)
    try:
        rt = wiring.build(config, os.environ, journal="scratch", preflight=True)
    except BaseException:
        journal.close()
        raise
    problems: list[str] = []
    wording = preflight.Wording.of(os.environ)
    blocked: dict[str, str] = {}  # upstream -> why its later items are skipped

    def item(what: str, probe: Callable[[], str | None], upstream: str, key: str | None = None) -> None:
        if upstream in blocked:
            print(f"skip    {what}: not checked: {blocked[upstream]}")
            return
        try:
            problem = probe()
        except UpstreamError as error:
            problem = wording.problem(error, key)
            reason = wording.blocking(error)
            if reason is not None:
                blocked.setdefault(error.upstream, reason)
        said = "" if problem is None else ": " + redact(problem)  # problems quote upstream messages
        print(f"{'ok     ' if problem is None else 'PROBLEM'} {what}{said}")
        if problem is not None:
            problems.append(problem)

    try:
        print(f"ok      config: {len(config.targets)} target(s)")
        me: list[int | UpstreamError] = []  # the manager token's id, or why not: never a token to adopt
        item("gitlab: manager token", lambda: _manager(rt, me), "gitlab")
        item("infisical: credentials", lambda: _infisical(rt), "infisical")
        notes = report.lifetime_notes(config, journal, wiring.clock(config, os.environ))
        for index, target in enumerate(rt.engine.spec.targets):
            _check_target(rt, (index, target), item, journal, manager=me[0] if me else None)
            if target.name in notes:
                print(f"warn    {target.name}: {notes[target.name]}")
    finally:
        rt.close()
        journal.close()
    return Outcome.PROBLEMS if problems else Outcome.OK


def _check_target(
    rt: wiring.Runtime,
    indexed: tuple[int, RotationSpec],
    item: Item,
    journal: Journal,
    *,
    manager: int | UpstreamError | None,
) -> None:
    index, target = indexed
    keys: list[TargetKey] = []

    def project() -> str | None:
        key = rt.engine.key(target, resolve=True)
        if key is None:  # pragma: no cover - resolve=True yields a key or raises
            return "cannot resolve the project"
        keys.append(key)
        return access_problem(rt.gitlab.manager_access_level(key.owner), key.owner)

    def connection() -> str | None:
        held = rt.infisical.get_connection(target.connection_id)
        return check_connection(held, rt.config.gitlab.url, target.kind)

    item(f"{target.name}: {shown(target)}", project, "gitlab")
    key = f"targets[{index}].connection_id: {target.connection_id}"
    item(f"{target.name}: connection {target.connection_id}", connection, "infisical", key)
    if "api" not in target.token.scopes:
        print(f"warn    {target.name}: token.scopes lack api; Infisical's GitLab syncs need it")
    if target.grace < _IN_USE_MARGIN and target.hold_revoke_if_used:
        grace = format_duration(target.grace)  # as written in the config: 10m, not 0:10:00
        print(f"warn    {target.name}: grace {grace} is shorter than the 15m still-in-use margin")
    adopt = target.adopt_token_id
    if adopt is None:
        if keys and untracked.concerns(target, journal.target(keys[0])):
            _untracked(rt, (index, target), keys[0], journal, manager)
        return
    label = f"{target.name}: adopt_token_id {adopt}"
    if not keys:  # the project line above says why; an item left out would read as passed
        print(f"skip    {label}: not checked: the project could not be read (above)")
        return
    item(label, lambda: _adoptable(rt, journal, keys[0], adopt), "gitlab")


def _untracked(
    rt: wiring.Runtime,
    indexed: tuple[int, RotationSpec],
    key: TargetKey,
    journal: Journal,
    manager: int | UpstreamError | None,
) -> None:
    """A first rotation without adopt_token_id: warn of the owner's untracked tokens (never a problem)."""
    index, target = indexed
    if isinstance(manager, UpstreamError):  # any listed token could be the manager's own
        found = untracked.failed(manager, untracked.MANAGER_UNREAD)
    else:
        try:
            listed = rt.gitlab.list_tokens(key.owner)
        except UpstreamError as error:
            found = untracked.failed(error)
        else:
            url = rt.config.gitlab.url
            owners = untracked.owned(journal, url, listed)
            found = untracked.untracked(
                listed, owners, manager, untracked.unsettled(journal, url, listed, owners)
            )
    if found.worth_saying:
        resumed = untracked.settles_on_resume(journal.unfinished(key))
        text = untracked.warning(
            target, index, shown(target, key.owner), found, rotated=False, resumed=resumed
        )
        print(f"warn    {target.name}: {untracked.WHAT}: {redact(text)}")  # quotes GitLab's token names


def _manager(rt: wiring.Runtime, seen: list[int | UpstreamError]) -> str | None:
    try:
        me = rt.gitlab.manager_self()
    except UpstreamError as error:
        seen.append(error)
        raise
    seen.append(me.id)
    problem = manager_problem(me)
    if problem is not None:
        return problem
    left = "never expires"
    if me.expires_at:
        left = f"expires {me.expires_at} ({in_days(expiry_instant(me.expires_at) - datetime.now(UTC))})"
    print(f"info    gitlab: manager token {me.id} ({redact(me.name)}) {left}")  # GitLab's name for it
    return None


def _infisical(rt: wiring.Runtime) -> str | None:
    first = rt.config.targets[0]
    # Infisical's own "not found" came past authentication: the connection's own line says it.
    with contextlib.suppress(ConnectionNotFoundError):
        rt.infisical.get_connection(str(first.connection_id))
    expiry = rt.infisical.access_token_expiry()
    if expiry is not None:
        print(f"info    infisical: access token expires in {human_duration(expiry - datetime.now(UTC))}")
    return None


def _adoptable(rt: wiring.Runtime, journal: Journal, key: TargetKey, token_id: int) -> str | None:
    state = journal.target(key)
    applied = state is not None and state.verified_hash is not None
    owned = None if applied else owned_elsewhere(journal, key, token_id)
    if owned is not None:
        return f"{owned}; a token has one owner (the run fails until this is fixed)"
    info = rt.gitlab.get_token(key.owner, token_id)
    if info is None:
        where = "this project" if key.owner.kind is Kind.PROJECT else key.owner.describe()
        return f"token {token_id} is not in {where}"
    return None if info.active else f"token {token_id} is not active"


def daemon(args: argparse.Namespace, config: Config) -> Outcome:
    """``daemon``: schedule every target, serve health, metrics and the trigger, until SIGTERM."""
    # Imported here: the CronJob's run-once should not pay for FastAPI, uvicorn and APScheduler.
    from rotator.adapters.metrics import Metrics  # noqa: PLC0415
    from rotator.doors import web  # noqa: PLC0415
    from rotator.doors.config import split_listen  # noqa: PLC0415
    from rotator.doors.daemon import Daemon, on_signal  # noqa: PLC0415
    from rotator.doors.environment import api_token  # noqa: PLC0415
    from rotator.doors.inventory import watching_of  # noqa: PLC0415

    configure(args.log)
    token = api_token(os.environ)
    metrics = Metrics()
    rt = wiring.build(config, os.environ, observers=(metrics,), on_response=metrics.on_response)
    watching = watching_of(config, rt)
    service = Daemon(
        rt,
        metrics,
        trigger_enabled=token is not None,
        wording=preflight.Wording.of(os.environ),
        watching=watching,
    )
    host, port = split_listen(config.daemon.listen)
    try:
        server = web.Server(web.create_app(service, metrics.registry, token), host, int(port))
    except OSError as error:
        rt.close()
        print(
            f"rotator: error: daemon.listen: cannot listen on {config.daemon.listen}: {error.strerror}",
            file=sys.stderr,
        )
        return Outcome.CANNOT_LISTEN
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal(stop))
    server.start()
    service.start()
    log.info("daemon.started", url=server.url, targets=len(config.targets), trigger=token is not None)
    if token is None:
        log.warning(
            "daemon.trigger_off",
            hint="set ROTATOR_API_TOKEN to enable /v1/*; rotations still run on schedule",
        )
    stop.wait()
    timeout = config.daemon.shutdown_timeout
    log.info("daemon.stopping", in_flight=service.in_flight, timeout_s=timeout.total_seconds())
    drained = service.stop(timeout)
    server.stop()
    if not drained:
        # A rotation is still running: its journal records let the next start resume it. The
        # process ends at once (rotator.doors.cli), rather than wait on it: rt stays open under it.
        log.error("daemon.shutdown_timeout", in_flight=service.in_flight)
        if rt.webhook is not None:
            rt.webhook.flush(5.0)
        sys.stderr.flush()
        return Outcome.ABANDONED
    rt.close()
    log.info("daemon.stopped")
    return Outcome.OK
