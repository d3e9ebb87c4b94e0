"""``status`` and ``history``: what the journal knows, offline, as values of the read model.

:func:`read_status` and :func:`read_history` build :mod:`rotator.doors.readmodel` values; the CLI
prints them with :func:`status_table` and :func:`history_table` or as JSON, the HTTP API serves the
same values. Both read only the journal (no secrets, no upstream call), so they answer instantly and work
while GitLab or Infisical is down. ``status`` applies the exit-1 rule from the journal: a target
frozen by drift, holding a revoke, holding a live token it has no access to revoke, or backing off
after a failure; a removed key holding a revoke or a live token it has no access to revoke.
"""

import time

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from rotator.adapters import cron
from rotator.core import model
from rotator.core.model import Role, RotationRecord, TargetState, TokenRecord, short_hash
from rotator.core.ports import Journal
from rotator.core.schedule import decide
from rotator.doors.config import Config, engine_spec
from rotator.doors.readmodel import (
    Drift,
    HistoryRow,
    PendingRevoke,
    RemovedStatus,
    RetiredToken,
    Status,
    TargetStatus,
    TombstoneStatus,
    UnfinishedRotation,
    UnresolvedProject,
    UntrackedToken,
    UntrackedTokens,
    as_json,
    shown,
)
from rotator.engine.context import Context, Settings
from rotator.engine.removed import find_removed, live, plan_removed
from rotator.engine.retire import describe_untracked
from rotator.engine.run import (
    Engine,
    awaits_revoke,
    describe,
    removed_failing_reason,
    require_known,
)
from rotator.engine.timing import lifetime_note


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso(when: datetime | None) -> str | None:
    return _stamp(when) if when else None


def _offline_engine(config: Config, journal: Journal, clock: Callable[[], datetime]) -> Engine:
    # status never calls upstream: the ports are absent, and Engine.key(resolve=False) never uses them.
    ports = cast("Any", None)
    ctx = Context(
        ports,
        ports,
        journal,
        clock,
        lambda _s: None,
        time.monotonic,
        config.gitlab.url,
        "status",
        settings=Settings(run_interval=config.daemon.check_interval),
        cron=cron.next_fire,
    )
    return Engine(engine_spec(config), ctx)


def status(config: Config, journal: Journal, clock: Callable[[], datetime]) -> dict[str, Any]:
    """``status --json``'s document: :func:`read_status` as JSON."""
    return cast("dict[str, Any]", as_json(read_status(config, journal, clock)))


def read_status(config: Config, journal: Journal, clock: Callable[[], datetime]) -> Status:
    """Every configured target (one row each) and the removed keys still tracked, as of now."""
    engine = _offline_engine(config, journal, clock)
    now = clock()
    rows = []
    for target in engine.spec.targets:
        key = engine.key(target, resolve=False)
        situation, state = engine.situation(target, key)
        tokens = journal.tokens(key) if key else []
        current = [t for t in tokens if t.role is Role.CURRENT]
        last = journal.rotations(key, limit=1) if key else []
        work = decide(situation, now, force=False, take_over=False)
        failing = engine.failing(target, key, state, now)
        unresolved = engine.unresolved(target, key)
        rows.append(
            shown(
                TargetStatus(
                    target=target.name,
                    token_id=current[-1].token_id if current else None,
                    expires_at=current[-1].expires_at.isoformat()
                    if current and current[-1].expires_at
                    else None,
                    last_rotation=_iso(last[0].planned_at) if last else None,
                    last_outcome=last[0].outcome.value if last else None,
                    next_due=_iso(situation.due.next_due),
                    due_reason=situation.due.reason,
                    would=describe(work, situation, None),
                    pending_revokes=_awaiting_revoke(tokens),
                    possibly_held=tuple(t.token_id for t in tokens if t.role is Role.POSSIBLY_HELD),
                    drift=None
                    if not (state and state.drift_since)
                    else Drift(
                        since=_iso(state.drift_since),
                        expected=short_hash(state.verified_hash),
                        observed=short_hash(state.observed_hash),
                    ),
                    holding_revoke_since=_iso(state.hold_since) if state else None,
                    backoff_until=_iso(state.backoff_until) if state and state.failures else None,
                    last_error=state.last_error if state else (unresolved.error if unresolved else None),
                    failing=failing is not None,
                    failing_reason=failing,
                    untracked_tokens=_untracked(state),
                    unresolved_project=_unresolved(unresolved),
                )
            )
        )
    return Status(as_of=_stamp(now), targets=tuple(rows), removed=removed(config, journal, now))


def _awaiting_revoke(tokens: Sequence[TokenRecord]) -> tuple[PendingRevoke, ...]:
    """Tokens waiting for their revoke (a "no access" one too), as ``status`` shows them."""
    return tuple(
        PendingRevoke(
            token_id=t.token_id, revoke_after=_iso(t.revoke_after), no_access_since=_iso(t.no_access_since)
        )
        for t in tokens
        if awaits_revoke(t)
    )


def _unfinished(rotation: RotationRecord | None) -> UnfinishedRotation | None:
    if rotation is None:
        return None
    return UnfinishedRotation(rotation=rotation.id, step=rotation.step.value, token_name=rotation.token_name)


def removed(config: Config, journal: Journal, now: datetime) -> tuple[RemovedStatus, ...]:
    """The journal keys no configured target maps to that still hold something, and the way out."""
    rows = []
    for found in find_removed(engine_spec(config), journal, now):
        tokens = live(journal.tokens(found.key), now)
        current = [t for t in tokens if t.role is Role.CURRENT]
        plan = plan_removed(journal, found, now)
        failing = removed_failing_reason(journal.target(found.key), now, tokens)
        rows.append(
            shown(
                RemovedStatus(
                    key=str(found.key),
                    target=found.name,
                    token_id=current[-1].token_id if current else None,
                    expires_at=current[-1].expires_at.isoformat()
                    if current and current[-1].expires_at
                    else None,
                    pending_revokes=_awaiting_revoke(tokens),
                    possibly_held=tuple(
                        t.token_id
                        for t in tokens
                        if t.role in (Role.POSSIBLY_HELD, Role.CANDIDATE) and not awaits_revoke(t)
                    ),
                    connection_used_by=found.owner.name if found.owner else None,
                    revoke_next_run=tuple(t.token_id for t in plan.due),
                    left_alone=tuple(plan.left),
                    failing=failing is not None,
                    failing_reason=failing,
                    # Names a late create may still use: `forget` re-checks (--revoke) or refuses.
                    tombstones=tuple(
                        TombstoneStatus(name=s.name, until=_iso(s.until))
                        for s in journal.tombstones(found.key)
                    ),
                    unfinished=_unfinished(journal.unfinished(found.key)),
                    forget=found.forget,
                )
            )
        )
    return tuple(rows)


def _unresolved(record: model.UnresolvedProject | None) -> UnresolvedProject | None:
    """The recorded failure to resolve the target's project path, or None."""
    if record is None:
        return None
    return UnresolvedProject(
        project=record.project,
        since=_iso(record.since),
        last_failed=_iso(record.at),
        failures=record.failures,
        status=record.status,
        error=record.error,
    )


def _untracked(state: TargetState | None) -> UntrackedTokens | None:
    """The take-over's list of active tokens no target tracks, or None if no take-over recorded one."""
    if state is None or state.untracked_as_of is None:
        return None
    return UntrackedTokens(
        as_of=_iso(state.untracked_as_of),
        tokens=tuple(
            UntrackedToken(token_id=token_id, name=name, expires_at=expires)
            for token_id, name, expires in state.untracked
        ),
    )


def lifetime_notes(config: Config, journal: Journal, clock: Callable[[], datetime]) -> dict[str, str]:
    """Per target, the rule-6 note when GitLab's lifetime cap overrides ``rotate_before``."""
    engine = _offline_engine(config, journal, clock)
    notes = {}
    for target in engine.spec.targets:
        note = lifetime_note(engine.ctx, target, engine.key(target, resolve=False))
        if note is not None:
            notes[target.name] = note
    return notes


def status_table(report: Status) -> str:
    """The human form of :func:`read_status`."""
    lines = [f"as of {report.as_of}"]
    header = ("TARGET", "TOKEN", "EXPIRES", "LAST", "NEXT DUE", "PENDING", "DRIFT", "LAST ERROR")
    rows = [header]
    for t in report.targets:
        pending = ",".join(
            f"{p.token_id}@{(p.revoke_after or '')[:16]}{_no_access(p)}" for p in t.pending_revokes
        )
        drift = f"since {(t.drift.since or '')[:16]}" if t.drift else "-"
        rows.append(
            (
                t.target,
                str(t.token_id or "-"),
                t.expires_at or "-",
                t.last_outcome or "never",
                f"{(t.next_due or '-')[:16]} ({t.due_reason})",
                pending or "-",
                drift,
                (t.last_error or "-")[:80],
            )
        )
    lines += _columns(rows)
    for t in report.targets:
        if t.unresolved_project:
            # No column says it (no token, no rotation yet), and the error alone is cut short.
            lines.append(f"{t.target}: failing: {t.failing_reason}")
        untracked = t.untracked_tokens
        if untracked and untracked.tokens:
            tokens = describe_untracked(tuple((u.token_id, u.name, u.expires_at) for u in untracked.tokens))
            lines.append(
                f"{t.target}: untracked active tokens as of {(untracked.as_of or '')[:16]}Z (take-over;"
                f" rotator leaves them alone, revoke the one you no longer need): {tokens}"
            )
    if report.removed:
        lines += [
            "",
            "removed from the config, still tracked (revoked when safe; `rotator forget` lets one go):",
        ]
        gone = [("KEY", "WAS", "TOKEN", "PENDING", "HELD?", "CONNECTION NOW USED BY")]
        gone += [
            (
                r.key,
                r.target,
                str(r.token_id or "-"),
                ",".join(_pending(p) for p in r.pending_revokes) or "-",
                ",".join(str(i) for i in r.possibly_held) or "-",
                r.connection_used_by or "-",
            )
            for r in report.removed
        ]
        lines += _columns(gone)
        for r in report.removed:
            lines += [f"  {r.key}: tombstoned name {t.name} until {t.until}" for t in r.tombstones]
            if r.unfinished:
                u = r.unfinished
                lines.append(f"  {r.key}: rotation {u.rotation} stopped at {u.step}; the next run resumes it")
        lines += [f"  {r.forget}" for r in report.removed]
        lines += [f"{r.target} (removed): failing: {r.failing_reason}" for r in report.removed if r.failing]
    return "\n".join(lines)


def _no_access(pending: PendingRevoke) -> str:
    return " NO ACCESS" if pending.no_access_since else ""


def _pending(pending: PendingRevoke) -> str:
    return f"{pending.token_id}{_no_access(pending)}"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def history(journal: Journal, config: Config, name: str | None, limit: int) -> list[dict[str, Any]]:
    """``history --json``'s document: :func:`read_history` as JSON."""
    return cast("list[dict[str, Any]]", as_json(read_history(journal, config, name, limit)))


def read_history(journal: Journal, config: Config, name: str | None, limit: int) -> tuple[HistoryRow, ...]:
    """Rotations newest first; each row lists the tokens it retired and how they were revoked."""
    names = {str(t.connection_id): t.name for t in config.targets}
    if name is None:
        rotations: list[RotationRecord] = journal.rotations(None, limit=limit)
    else:
        # A row shows its connection's configured name, else the name it was recorded with (so a
        # removed target's history stays readable): the pairs that show as `name` are asked for.
        pairs = journal.recorded_names()
        seen = {names.get(key.connection_id, target) for key, target in pairs}
        configured = [t.name for t in config.targets]
        require_known(name, [*configured, *sorted(seen - set(configured))])
        wanted = [(key, target) for key, target in pairs if names.get(key.connection_id, target) == name]
        rotations = journal.rotations_of(wanted, limit) if wanted else []
    rows = []
    tokens_by_key: dict[str, list[TokenRecord]] = {}
    for r in rotations:
        tokens = tokens_by_key.setdefault(str(r.key), journal.tokens(r.key))
        rows.append(
            shown(
                HistoryRow(
                    rotation=r.id,
                    target=names.get(r.key.connection_id, r.target),
                    trigger=r.trigger,
                    started=_iso(r.planned_at),
                    finished=_iso(r.finished_at),
                    outcome=r.outcome.value,
                    step=r.step.value,
                    old_token_id=r.old_token_id,
                    new_token_id=r.new_token_id,
                    expires_at=r.expires_at.isoformat() if r.expires_at else None,
                    pre_hash=short_hash(r.pre_hash),
                    patch_hash=short_hash(r.patch_hash),
                    reread_hash=short_hash(r.reread_hash),
                    retired=tuple(
                        RetiredToken(token_id=t.token_id, revoked_at=_iso(t.revoked_at), evidence=t.evidence)
                        for t in tokens
                        if t.retired_by == r.id
                    ),
                    error=r.error,
                )
            )
        )
    return tuple(rows)


def history_table(rows: Sequence[HistoryRow]) -> str:
    """The human form of :func:`read_history`."""
    header = ("STARTED", "TARGET", "ROTATION", "OUTCOME", "STEP", "OLD>NEW", "HASH", "RETIRED", "ERROR")
    table = [header]
    for r in rows:
        retired = ",".join(f"{t.token_id}{'(revoked)' if t.revoked_at else ''}" for t in r.retired)
        table.append(
            (
                (r.started or "")[:19],
                r.target,
                r.rotation[:8],
                r.outcome,
                r.step,
                f"{r.old_token_id or '-'}>{r.new_token_id or '-'}",
                r.patch_hash or "-",
                retired or "-",
                (r.error or "-")[:60],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )
